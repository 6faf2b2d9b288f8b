"""The command line's options and argument types (what the commands run is tested in test_cli.py)."""

import pytest

from autocomplete.arguments import EXIT_USAGE, build_parser, resolve, typed_options


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


@pytest.mark.parametrize("before, after", [
    (["--model", "mine.pt"], ["predict", "how are"]),
    (["--model", "mine.pt"], ["generate", "once"]),
    (["--model", "mine.pt"], ["eval", "notes.txt"]),
    (["--model", "mine.pt"], ["learn", "notes.txt"]),
    (["--model", "mine.pt"], ["forget"]),
    (["-m", "mine.pt"], ["info"]),
])
def test_a_model_named_before_the_command_is_the_one_the_command_uses(before, after):
    assert build_parser().parse_args(before + after).model.name == "mine.pt"
    assert build_parser().parse_args(after).model is None


def test_every_option_the_top_level_shares_with_a_command_counts_before_or_after_it():
    typed = ["--style", "tech", "--threads", "1", "--no-quantize", "-t", "0.3", "--no-learn"]
    before = build_parser().parse_args(typed + ["generate", "x"])
    after = build_parser().parse_args(["generate", "x"] + typed)
    for args in (before, after):
        chosen = (args.style, args.threads, args.no_quantize, args.temperature, args.no_learn)
        assert chosen == ("tech", 1, True, 0.3, True)


def test_train_picks_its_own_threads_unless_told_and_everything_else_runs_on_one():
    assert resolve(build_parser().parse_args(["train", "a.txt", "-o", "m.pt"])).threads is None
    assert resolve(build_parser().parse_args(["--threads", "1", "train", "a.txt", "-o", "m.pt"])).threads == 1
    assert resolve(build_parser().parse_args(["predict", "x"])).threads == 1
    assert resolve(build_parser().parse_args([])).threads == 1
    assert "--threads" in typed_options(["--threads", "1", "train", "a.txt", "-o", "m.pt", "--resume"])


@pytest.mark.parametrize("argv, message", [
    (["--plain", "predict", "x"], "--plain is for the interactive session (no COMMAND), not `predict`"),
    (["--mode", "chat", "generate", "x"], "--mode is for the interactive session (no COMMAND), not `generate`"),
    (["--no-history", "learn", "notes.txt"], "--no-history is for the interactive session (no COMMAND), not `learn`"),
    (["-t", "0.5", "predict", "x"], "`predict` takes no --temperature"),
    (["--threads", "2", "cache"], "`cache` takes no --threads"),
])
def test_an_option_typed_before_a_command_that_does_not_take_it_is_a_usage_error(capsys, argv, message):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit:
        resolve(parser.parse_args(argv), parser)
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USAGE and err.count("\n") == 1
    assert err.startswith(f"autocomplete: error: {message} (see autocomplete --help)")


def test_the_session_options_still_open_the_session_and_a_command_takes_what_it_shares():
    parser = build_parser()
    session = resolve(parser.parse_args(["--plain", "--mode", "chat", "--no-history", "-t", "0.4"]), parser)
    assert (session.command, session.plain, session.mode, session.no_history, session.temperature) == (
        None, True, "chat", True, 0.4)
    generate = resolve(parser.parse_args(["-t", "0.4", "--threads", "2", "generate", "x"]), parser)
    assert (generate.temperature, generate.threads) == (0.4, 2)


@pytest.mark.parametrize("command", [["eval", "t.txt"], ["predict", "how are"]])
def test_eval_and_predict_take_the_same_range_of_suggestions(capsys, command):
    assert build_parser().parse_args([*command, "-k", "100"]).k in (100, [100])
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*command, "-k", "1000000000"])  # eval ran for ever, looking at a billion
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USAGE
    assert "argument -k: suggestions must be an integer in [1, 100], got 1000000000 (out of range)" in err


@pytest.mark.parametrize("argv", [["predict", "x", "-m", ""], ["train", "a.txt", "-o", ""], ["convert", "", "-o", "b.pt"],
                                  ["train", "a.txt", "-o", "m.pt", "--from", ""], ["learn", ""], ["learn", "a.txt", ""],
                                  ["eval", ""], ["train", "", "-o", "m.pt"], ["train", "a.txt", "-o", "m.pt", "--valid", ""],
                                  ["train", "=prose", "-o", "m.pt"]])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(capsys, argv):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(argv)
    assert exit.value.code == EXIT_USAGE and "an empty path" in capsys.readouterr().err


def test_cache_older_than_without_clear_is_a_usage_error(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit:
        resolve(parser.parse_args(["cache", "--older-than", "5"]), parser)
    assert exit.value.code == EXIT_USAGE and "--older-than goes with --clear" in capsys.readouterr().err
    assert resolve(parser.parse_args(["cache", "--clear", "--older-than", "5"]), parser).older_than == 5


def test_from_alone_fine_tunes_the_shipped_model_and_from_a_file_that_file():
    assert build_parser().parse_args(["train", "a.txt", "-o", "m.pt", "--from"]).base == ""
    assert build_parser().parse_args(["train", "a.txt", "-o", "m.pt", "--from", "b.pt"]).base == "b.pt"
    assert build_parser().parse_args(["train", "a.txt", "-o", "m.pt"]).base is None


def test_generate_takes_up_to_ten_thousand_samples_not_an_endless_number(capsys):
    assert build_parser().parse_args(["generate", "x", "--num", "10000"]).num == 10_000
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["generate", "x", "--num", "99999999999999999999"])
    assert exit.value.code == EXIT_USAGE and "out of range (must be ≥ 1 and ≤ 10000)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, default", [
    ([], "default: dialogue in chat mode, prose otherwise"),
    (["predict"], "default: prose"), (["generate"], "default: prose"), (["eval"], "default: prose"),
])
def test_the_style_help_names_chat_mode_only_where_there_is_one_and_predict_gives_its_range(capsys, argv, default):
    # sweep j, item 7: predict, generate and eval have no chat mode, and predict -k named no range
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help to the terminal's width
    assert default + ")" in shown and ("chat" in shown) == (not argv)
    if argv == ["predict"]:
        assert "how many words (1 to 100; default 5)" in shown
