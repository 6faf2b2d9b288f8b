"""The command line's options and argument types (what the commands run is tested in test_cli.py)."""

import pytest

from autocomplete.arguments import EXIT_USAGE, build_parser, typed_options


def test_typed_options_name_the_train_options_given_and_none_left_at_their_defaults():
    typed = typed_options(["train", "notes.txt", "-o", "mine.pt", "--hidden-dim", "64", "--resume"])
    assert {"--output", "--hidden-dim", "--resume"} <= typed
    assert not typed & {"--layers", "--batch-size", "--lr", "--dropout", "--valid-fraction"}


def test_defaults_are_filled_in_for_a_run():
    args = build_parser().parse_args(["train", "notes.txt", "-o", "mine.pt"])
    assert args.command == "train" and args.corpus == ["notes.txt"] and args.clip == 0.25


@pytest.mark.parametrize(
    "argv, prog, message",
    [
        (["--threads", "0"], "autocomplete", "argument --threads: 0 is out of range (must be ≥ 1 and ≤ "),
        (["generate", "x", "--seed", "-1"], "autocomplete generate",
         "argument --seed: -1 is out of range (must be ≥ 0 and ≤ 18446744073709551615)"),
        (["train", "a.txt", "-o", "m.pt", "--adaptive", "2000,x"], "autocomplete train",
         "argument --adaptive: '2000,x' is not a comma-separated list of integers"),
    ],
)
def test_a_bad_value_is_one_usage_line_with_the_valid_range(capsys, argv, prog, message):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USAGE and err.count("\n") == 1
    assert err.startswith(f"{prog}: error: {message}") and err.rstrip().endswith(f"(see {prog} --help)")
