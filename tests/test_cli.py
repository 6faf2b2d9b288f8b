import errno
import io
import json
import re
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autocomplete import checkpoint
from autocomplete.cli import _exit_on_termination, main

from .conftest import SHAKESPEARE, held_by_another_program, personal_info
from .test_data import EndlessStream


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_the_next_words_with_probabilities(capsys, toy_model_path):
    code, out, _ = run(capsys, "predict", "how are", "-k", "2", "--model", str(toy_model_path))
    assert code == 0
    first = out.splitlines()[0].split()
    assert first[0] == "you" and first[1].endswith("%")


def test_predict_completes_an_unfinished_last_word_by_default(capsys, toy_model_path):
    code, out, _ = run(capsys, "predict", "how are yo", "--model", str(toy_model_path), "--json")
    assert code == 0 and [s["word"] for s in json.loads(out)] == ["you"]  # the one word that starts with "yo"


def test_predict_reads_the_text_from_standard_input_given_as_a_dash(capsys, monkeypatch, toy_model_path):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"how are yo\n")))
    code, out, _ = run(capsys, "predict", "-", "--model", str(toy_model_path), "--json")
    assert code == 0 and [s["word"] for s in json.loads(out)] == ["you"]  # the last word completed: no end of line


def test_ctrl_c_during_generate_ends_the_line_of_text_so_far_before_it_says_interrupted(capsys, monkeypatch,
                                                                                        trained_model_path):
    from autocomplete.predictor import Predictor

    def two_words_then_ctrl_c(self, *args, **kwargs):
        yield 5, " the"
        yield 6, " king"
        raise KeyboardInterrupt

    monkeypatch.setattr(Predictor, "stream", two_words_then_ctrl_c)
    code, out, err = run(capsys, "generate", "Speak", "--model", str(trained_model_path))
    assert code == 130 and out == "Speak the king\n" and err == "interrupted\n"

    class EndedByTheSameCtrlC(io.StringIO):  # generate | cat: cat died of the Ctrl-C too
        def write(self, text):
            if text == "\n":
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    monkeypatch.setattr(sys, "stdout", EndedByTheSameCtrlC())
    code, _, err = run(capsys, "generate", "Speak", "--model", str(trained_model_path))
    assert code == 130 and err == "interrupted\n"  # not a quiet 0, as for a reader gone of its own accord


def test_predict_completes_a_word_in_the_case_it_is_typed_in(capsys, cased_lm, tmp_path):
    model = tmp_path / "cased.pt"
    checkpoint.save(cased_lm, model)
    code, out, _ = run(capsys, "predict", "how are yo", "--model", str(model), "--json")
    assert code == 0 and sorted(s["word"] for s in json.loads(out)) == ["you", "young"]  # not yoU, not twice
    code, out, _ = run(capsys, "predict", "how are xxx", "--model", str(model), "--json")
    assert code == 0 and [s["word"] for s in json.loads(out)] == ["xxxviii"]


def test_predict_takes_a_whole_last_word_as_finished_unless_told_to_complete_it(capsys, toy_model_path):
    model = str(toy_model_path)
    assert run(capsys, "predict", "how are", "--model", model)[1].split()[0] == "you"
    assert run(capsys, "predict", "how are", "--complete", "--model", model)[1].split()[0] == "are"
    assert run(capsys, "predict", "how are", "-c", "--model", model)[1].split()[0] == "are"
    assert run(capsys, "predict", "hello", "--next", "--model", model)[1].split()[0] == "how"
    code, out, _ = run(capsys, "predict", "zebra", "--model", model)  # no word starts like it: the words after it
    assert code == 0 and out.count("%") == 5


def test_predict_help_says_how_the_last_word_is_read(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "without a space after it is completed" in text and "--next" in text and "--json" in text


def test_generate_is_reproducible_with_a_seed_and_greedy_at_temperature_zero(capsys, trained_model_path):
    args = ["generate", "Before we", "--words", "12", "--seed", "3", "--model", str(trained_model_path)]
    _, first, _ = run(capsys, *args)
    _, second, _ = run(capsys, *args)
    assert first == second and first.startswith("Before we") and len(first) > len("Before we")
    _, greedy1, _ = run(capsys, *args[:-4], "--temperature", "0", "--model", str(trained_model_path))
    _, greedy2, _ = run(capsys, *args[:-4], "--temperature", "0", "--seed", "9", "--model", str(trained_model_path))
    assert greedy1 == greedy2


def test_generate_prints_several_samples(capsys, trained_model_path):
    code, out, _ = run(capsys, "generate", "All:", "--num", "3", "--words", "5", "--seed", "1", "--model", str(trained_model_path))
    assert code == 0 and out.count("All:") == 3


def test_generate_shows_a_prompts_escape_sequences_instead_of_sending_them_to_the_terminal(capsys, trained_model_path):
    code, out, _ = run(capsys, "generate", "\x1b[2JAll:", "--words", "2", "--model", str(trained_model_path))
    assert code == 0 and out.startswith("\\x1b[2JAll:") and "\x1b" not in out


def test_generate_reads_the_prompt_from_stdin(capsys, monkeypatch, trained_model_path):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("Speak, speak. \xff\n".encode("latin-1"))))
    code, out, _ = run(capsys, "generate", "-", "--words", "3", "--model", str(trained_model_path))
    assert code == 0 and out.startswith("Speak, speak. \ufffd")  # a byte that is not UTF-8 is replaced, not fatal


def test_generate_refuses_binary_data_on_stdin_in_one_line(capsys, monkeypatch, trained_model_path):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x7fELF\x02\x01\x00\x00garbage")))
    code, out, err = run(capsys, "generate", "-", "--model", str(trained_model_path))
    assert code == 1 and out == "" and err.strip() == (
        "autocomplete: error: standard input looks like binary data, not text (a NUL byte in it)")


@pytest.mark.parametrize("pattern, error", [
    (b"\0", "standard input looks like binary data, not text (a NUL byte in it)"),  # generate - < /dev/zero
    (b"y", "standard input holds more than 1 MiB, the most a prompt can be;"),  # yes | tr -d '\\n' | generate -
])
def test_generate_reads_a_prompt_from_an_endless_stdin_only_up_to_a_bound(capsys, monkeypatch, pattern, error):
    import io

    endless = EndlessStream(pattern)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(endless)))
    code, out, err = run(capsys, "generate", "-")
    assert code == 1 and out == "" and err.startswith(f"autocomplete: error: {error}") and err.count("\n") == 1
    assert endless.given <= 4 << 20


def test_a_prompt_of_up_to_a_mebibyte_is_read_whole(monkeypatch):
    import io

    from autocomplete.cli import MAX_PROMPT, _read_prompt

    prompt = ("speak " * (1 << 20))[:MAX_PROMPT]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(prompt.encode())))
    assert _read_prompt() == prompt


def test_generate_continues_the_whole_prompt_it_reads_from_standard_input(capsys, monkeypatch, trained_model_path):
    import io

    prompt = ("speak " * 20_000)[:100_000]  # read a chunk at a time: more than one chunk
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(prompt.encode())))
    code, out, _ = run(capsys, "generate", "-", "--words", "1", "--model", str(trained_model_path))
    assert code == 0 and out.startswith(prompt.rstrip("\n")) and len(out) > len(prompt)


@pytest.mark.parametrize("pattern, error", [
    (b"\0", "standard input looks like binary data, not text (a NUL byte in line 1)"),  # autocomplete < /dev/zero
    (b"y", "line 1 of standard input is longer than 1,048,576 characters"),  # yes | tr -d '\\n' | autocomplete
])
def test_the_piped_session_refuses_an_endless_line_in_one_line(capsys, monkeypatch, trained_model_path, pattern, error):
    import io

    endless = EndlessStream(pattern)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(endless)))
    code, out, err = run(capsys, "--model", str(trained_model_path))
    assert code == 1 and out == "" and err.startswith(f"autocomplete: error: {error}") and err.count("\n") == 1
    assert endless.given <= 4 << 20


def test_eval_reports_perplexity_accuracy_and_keystroke_savings(capsys, trained_model_path):
    model = str(trained_model_path)
    code, out, _ = run(capsys, "eval", str(SHAKESPEARE), "--model", model, "--ksr-words", "40", "-k", "3", "--json")
    report = json.loads(out)
    assert code == 0 and report["perplexity"] > 1 and report["keystroke_savings"][0]["k"] == 3
    assert report["model"] == model
    code, out, _ = run(capsys, "eval", str(SHAKESPEARE), "-m", model, "--ksr-words", "40")
    assert "perplexity" in out and "top-1" in out and "saved with 5 suggestions" in out
    code, out, _ = run(capsys, "eval", str(SHAKESPEARE), "-m", model, "--ksr-words", "40", "-k", "3", "-k", "3")
    assert out.count("saved with 3 suggestions") == 1  # a -k given twice is measured once


def test_eval_defaults_to_the_shipped_model_like_the_other_commands(capsys, tmp_path):
    text = tmp_path / "few.txt"
    text.write_text("I would like to book a table for two.\nThank you very much.\n")
    code, out, _ = run(capsys, "eval", str(text), "--ksr-words", "5", "--json")
    assert code == 0 and json.loads(out)["model"].endswith("default.pt")


def test_eval_in_the_old_order_says_how_to_give_the_model(capsys, trained_model_path):
    code, _, err = run(capsys, "eval", str(trained_model_path), str(SHAKESPEARE))
    assert code == 1 and err.strip().count("\n") == 0
    assert f"{trained_model_path} is a model file: give it with --model (autocomplete eval --model" in err
    code, _, err = run(capsys, "eval", str(trained_model_path))
    assert code == 1 and err.strip().endswith(f"(autocomplete eval --model {trained_model_path} TEXT...)")


def test_eval_shows_a_progress_bar_on_a_terminal(capsys, monkeypatch, trained_model_path):
    monkeypatch.setattr("autocomplete.progress.choose_mode", lambda quiet=False, stream=None: "bar")
    code, out, err = run(capsys, "eval", str(SHAKESPEARE), "-m", str(trained_model_path), "--ksr-words", "30")
    assert code == 0 and "perplexity" in out
    assert "scoring: 100%" in err and "typing with 5 suggestions: 100%" in err and "30/30" in err


def test_train_writes_a_model_that_predict_can_use(capsys, tmp_path):
    corpus = tmp_path / "toy.txt"
    corpus.write_text("hello how are you hello how is\n")
    out = tmp_path / "toy.pt"
    code, _, err = run(
        capsys, "train", str(corpus), "-o", str(out), "--epochs", "150", "--batch-size", "1", "--bptt", "8",
        "--embedding-dim", "10", "--hidden-dim", "20", "--layers", "1", "--dropout", "0", "--min-count", "1",
        "--valid-fraction", "0", "--lr", "0.01", "--warmup", "0", "--quiet",
    )
    assert code == 0 and "model written to" in err
    code, text, _ = run(capsys, "predict", "how are", "-k", "1", "--model", str(out))
    assert text.split()[0] == "you"
    code, text, _ = run(capsys, "info", str(out))
    assert code == 0 and "1-layer LSTM" in text


def test_the_notebook_toy_typed_as_is_predicts_you(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy.txt").write_text("hello how are you hello how is\n")
    code, _, err = run(capsys, "train", "toy.txt", "-o", "toy.pt", "--epochs", "300")
    assert code == 0
    startup = next(line for line in err.splitlines() if line.startswith("fitted to 8 tokens"))
    assert "min-count 1" in startup and "no validation" in startup and "warm-up" in startup
    assert "warning" not in err
    for text, word in (("how are", "you"), ("hello how are", "you"), ("hello", "how")):
        code, out, _ = run(capsys, "predict", text, "--model", "toy.pt")
        assert code == 0 and out.split()[0] == word, (text, out)


def test_a_one_word_text_trains_and_evaluates_in_the_singular_without_a_top_5_its_model_cannot_have(capsys, tmp_path):
    text, model = tmp_path / "one.txt", tmp_path / "one.pt"
    text.write_text("hello\n")
    code, _, err = run(capsys, "train", str(text), "-o", str(model), "--epochs", "1", "--no-cache", "--verbose")
    assert code == 0 and "(1 step)" in err and ": 1 step/epoch" in err and "; 1 token in" in err
    code, out, _ = run(capsys, "eval", str(text), "-m", str(model))  # 3 words in all: <unk>, <eos>, hello
    assert code == 0 and "top-3" in out and "top-5" not in out and out.rstrip().endswith(", 1 word)")


def test_an_empty_text_is_refused_before_settings_are_fitted_to_it(capsys, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n")
    code, _, err = run(capsys, "train", str(blank), "-o", str(tmp_path / "b.pt"), "--no-cache")
    assert code == 1 and "no text to train on" in err and "fitted to" not in err


def test_training_into_a_log_writes_a_few_plain_lines_without_carriage_returns(tmp_path):
    (tmp_path / "toy.txt").write_text("hello how are you hello how is\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autocomplete", "train", "toy.txt", "-o", "toy.pt", "--epochs", "300"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and len(proc.stderr.splitlines()) <= 20
    assert "epoch 300/300" in proc.stderr and "model written to toy.pt" in proc.stderr


def small_text(folder):
    path = folder / "small.txt"
    path.write_text("".join(SHAKESPEARE.read_text().splitlines(keepends=True)[:300]))
    return path


def test_a_small_text_on_defaults_learns_more_than_word_frequencies(capsys, tmp_path):
    code, _, err = run(capsys, "train", str(small_text(tmp_path)), "-o", str(tmp_path / "s.pt"), "--epochs", "3")
    assert code == 0 and "warning" not in err, err
    line = next(line for line in err.splitlines() if "word frequencies alone" in line)
    model, unigram = (float(word.rstrip(";")) for word in line.split() if word[0].isdigit())
    assert model < 0.9 * unigram


def test_a_run_no_better_than_word_frequencies_ends_with_a_warning(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", str(small_text(tmp_path)), "-o", str(tmp_path / "s.pt"), "--epochs", "1", "--lr", "1e-6"
    )
    assert code == 0 and "warning: the model is no better than word frequencies alone" in err


def test_training_removes_what_killed_saves_of_its_model_and_resume_file_left_beside_them(capsys, tmp_path):
    corpus = tmp_path / "toy.txt"
    corpus.write_text("hello how are you hello how is\n")
    leftovers = [tmp_path / ".toy.pt.a1b2c3d4.tmp", tmp_path / ".toy.pt.resume.e5f6g7h8.tmp"]
    for path in leftovers:
        path.write_bytes(b"PK" * 500)  # half a model: what `kill -9` during a save leaves
    code, _, err = run(capsys, "train", str(corpus), "-o", str(tmp_path / "toy.pt"), "--epochs", "1", "--no-cache")
    assert code == 0 and not any(path.exists() for path in leftovers)
    assert "removed 2 temporary files (2.0 kB) left by an interrupted save" in err


class ClosedPipe(io.TextIOBase):
    """Standard error piped into ``head -2`` after head has exited: every write is a broken pipe."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def test_training_goes_on_and_writes_the_model_when_its_log_is_no_longer_read(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stderr", ClosedPipe())  # `train … 2>&1 | head -2`
    out = tmp_path / "m.pt"
    code = main(["train", str(small_text(tmp_path)), "-o", str(out), "--epochs", "1", "--embedding-dim", "8",
                 "--hidden-dim", "8", "--layers", "1", "--no-cache", "--threads", "1"])
    assert code == 0 and checkpoint.load(out).model.config.hidden_dim == 8


class FullDisk(ClosedPipe):
    """Standard error redirected to a file on a full disk (``2>/dev/full``): every write fails with ENOSPC."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_training_goes_on_and_writes_the_model_when_its_log_is_on_a_full_disk(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stderr", FullDisk())
    out = tmp_path / "m.pt"
    code = main(["train", str(small_text(tmp_path)), "-o", str(out), "--epochs", "1", "--embedding-dim", "8",
                 "--hidden-dim", "8", "--layers", "1", "--no-cache", "--threads", "1"])
    assert code == 0 and checkpoint.load(out).model.config.hidden_dim == 8


class FullOnFlush(io.StringIO):
    """Standard output redirected to a file on a full disk, buffered: the writes succeed, the flush fails."""

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("command", [[], ["train"]])
@pytest.mark.parametrize("stdout", [FullDisk, FullOnFlush, type(None)])
def test_help_into_a_full_or_closed_standard_output_is_an_error(capsys, monkeypatch, command, stdout):
    monkeypatch.setattr(sys, "stdout", stdout())
    assert main([*command, "--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("autocomplete: error: standard output") and len(err.splitlines()) == 1  # not the help


def test_a_broken_pipe_that_stops_a_training_before_its_model_is_written_is_no_success(capsys, monkeypatch, tmp_path):
    from autocomplete.train import Trainer

    def broken(self):  # a write to a closed pipe somewhere in the run (not through the log, which goes on)
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    monkeypatch.setattr(Trainer, "run", broken)
    code, _, err = run(capsys, "train", str(small_text(tmp_path)), "-o", str(tmp_path / "m.pt"), "--epochs", "1",
                       "--embedding-dim", "8", "--hidden-dim", "8", "--no-cache", "--threads", "1")
    assert code == 1 and not (tmp_path / "m.pt").exists()
    assert err.splitlines()[-1] == "autocomplete: error: an output stream was closed before the model was written"


def test_info_draws_the_validation_curve_so_a_user_sees_whether_training_converged(capsys, trained_model_path):
    code, text, _ = run(capsys, "info", "-m", str(trained_model_path))
    row = next(line for line in text.splitlines() if line.strip().startswith("validation curve"))
    curve = row.split()[2]
    validations = [h for h in checkpoint.load(trained_model_path).metadata["history"] if h["valid_loss"] is not None]
    assert code == 0 and len(curve) == len(validations) >= 2 and set(curve) <= set("▁▂▃▄▅▆▇█")
    assert "█" in curve and "▁" in curve and f"over {len(validations)} validations (best" in row
    assert run(capsys, "info", str(trained_model_path))[1] == text  # MODEL or --model: the same


def narrow_streams(monkeypatch, encoding):
    """Standard output and error in an encoding that lacks most of Unicode (PYTHONIOENCODING, LC_ALL=C), strict as
    Python makes standard output; returns the bytes written to each."""
    import io

    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding=encoding, errors="strict"))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding=encoding, errors="strict"))

    def written():
        sys.stdout.flush(), sys.stderr.flush()
        return out.getvalue().decode(encoding), err.getvalue().decode(encoding)

    return written


def test_info_in_a_latin1_terminal_writes_the_curve_as_escapes_not_a_traceback(monkeypatch, trained_model_path):
    written = narrow_streams(monkeypatch, "latin-1")
    code = main(["info", str(trained_model_path)])
    out, err = written()
    assert code == 0 and err == "" and "validation curve  \\u25" in out and "\\u2588" in out and "\\u2581" in out


def test_words_an_ascii_output_cannot_hold_are_written_as_escapes(monkeypatch, tmp_path):
    import torch

    from autocomplete.checkpoint import LanguageModel
    from autocomplete.model import LSTMLanguageModel, ModelConfig
    from autocomplete.tokenizer import EOS, UNK, Tokenizer
    from autocomplete.vocab import Vocab

    vocab = Vocab([UNK, EOS, "שלום", "עולם", "café"], [1] * 5)
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(len(vocab), embedding_dim=8, hidden_dim=8, num_layers=1, dropout=0.0))
    checkpoint.save(LanguageModel(model.eval(), vocab, Tokenizer(), {"name": "שלום"}), tmp_path / "he.pt")
    written = narrow_streams(monkeypatch, "ascii")
    code = main(["predict", "שלום ", "-k", "4", "--model", str(tmp_path / "he.pt")])
    out, _ = written()
    assert code == 0 and "\\u05e9\\u05dc\\u05d5\\u05dd" in out and "caf\\xe9" in out


def test_info_takes_the_model_once(capsys, trained_model_path):
    code, _, err = run(capsys, "info", str(trained_model_path), "--model", str(trained_model_path))
    assert code == 1 and "give the model once" in err


@pytest.mark.parametrize("command, phrases", [
    ("eval", ["--model", "default: the shipped model", "--breaks", "blank-line paragraphs", "--json"]),
    ("info", ["default: the shipped model", "--json", "training metadata"]),
    ("predict", ["--json", "--next", "--complete"]),
    ("train", ["passes over the text (default 10)", "--batch-size", "derived from the corpus size", "--bptt",
               "--embedding-dim", "--hidden-dim", "--layers", "--verbose"]),
])
def test_help_describes_every_option_and_its_default(capsys, command, phrases):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in phrases:
        assert phrase in text, (command, phrase)


def test_info_describes_the_shipped_model_in_readable_units(capsys):
    code, text, _ = run(capsys, "info")
    assert code == 0 and "2-layer LSTM" in text and "adaptive softmax" in text and "tied" in text
    rows = {line[:20].strip(): line[20:] for line in text.splitlines()[1:]}
    assert rows["tokens seen"] == "25,475,520"
    assert rows["wall time"] == "3 h 54 min (14,075 s)"
    assert rows["valid perplexity"] == "75.52"
    assert rows["styles"] == "prose, dialogue, tech"
    assert rows["storage"] == "int8 matrices (per-row scales), float16 rest"
    assert rows["trained on"].endswith(": 8,666,692 tokens in 358,658 utterances")  # the text, not only the command


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "x", "-k", "0"], "out of range"),
        (["generate", "x", "--temperature", "-1"], "out of range"),
        (["generate", "x", "--temperature", "nan"], "not a finite number"),
        (["generate", "x", "--top-p", "1.5"], "out of range"),
        (["generate", "x", "--temperature", "6"], "temperature must be a number in [0, 5]"),
        (["--temperature", "50"], "temperature must be a number in [0, 5]"),
        (["predict", "x", "--threads", "100000"], "out of range"),
        (["train", "a.txt", "-o", "m.pt", "--epochs", "0"], "out of range"),
        (["predict", "x", "-t", "0.5"], "autocomplete predict: error: unrecognized arguments: -t 0.5 (see autocomplete predict --help)"),
        (["cache", "--clear", "--older-than", "abc"], "'abc' is not a valid number of days"),
    ],
)
def test_bad_arguments_get_a_usage_error_naming_the_valid_range(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


def test_user_errors_are_one_line_and_exit_non_zero(capsys, tmp_path):
    code, _, err = run(capsys, "predict", "x", "--model", str(tmp_path / "missing.pt"))
    assert code == 1 and err.strip().count("\n") == 0 and "missing.pt: no such model file" in err
    code, _, err = run(capsys, "train", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "m.pt"))
    assert code == 1 and "nope.txt: no such file or folder" in err
    code, _, err = run(capsys, "train", str(SHAKESPEARE), "-o", str(tmp_path / "no" / "m.pt"))
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "train", str(SHAKESPEARE), "-o", str(tmp_path / "m.pt"), "--resume")
    assert code == 1 and "nothing to resume" in err
    code, _, err = run(capsys, "predict", "x", "--model", str(tmp_path / "two\nlines\x1b[31m.pt"))  # a hostile path
    assert code == 1 and err == f"autocomplete: error: {tmp_path}/two\\nlines\\x1b[31m.pt: no such model file\n"


def test_a_resumed_run_whose_model_was_moved_away_writes_its_last_weights_there_and_never_claims_a_write(
    capsys, tmp_path
):
    # tester h, bug 7: "model written to m.pt", exit 0, and no m.pt
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(SHAKESPEARE.read_bytes()[:6000])
    out = tmp_path / "m.pt"
    train = ["train", str(corpus), "-o", str(out), "--epochs", "1", "--quiet", "--no-cache", "--embedding-dim", "8",
             "--hidden-dim", "8", "--layers", "1", "--batch-size", "4", "--bptt", "8", "--threads", "1"]
    assert run(capsys, *train)[0] == 0
    out.rename(tmp_path / "elsewhere.pt")
    code, _, err = run(capsys, *train, "--resume")  # the run had finished: nothing left to train
    assert code == 0 and f"{out} was missing: the run's last weights written to it" in err
    assert "model written" not in err and checkpoint.load(out).metadata["valid_loss"] is not None
    before = out.read_bytes()
    code, _, err = run(capsys, *train, "--resume")
    assert code == 0 and f"the run had finished already (its resume file says so): {out} left as it is" in err
    assert "model written" not in err and out.read_bytes() == before


def test_a_corrupt_model_fails_cleanly_through_the_real_command(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    proc = subprocess.run(
        [sys.executable, "-m", "autocomplete", "predict", "hi", "--model", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"autocomplete: error: {bad}: not a valid model file (truncated or corrupt)"
    assert "Traceback" not in proc.stderr


def test_the_batch_commands_never_load_prompt_toolkit_and_run_on_one_thread(tmp_path, trained_model_path):
    text = tmp_path / "t.txt"
    text.write_text("hear me speak\n" * 20)
    model = str(trained_model_path)
    for argv in (["predict", "hear me", "--model", model], ["generate", "hear", "-n", "3", "--model", model],
                 ["eval", str(text), "--model", model, "--ksr-words", "5"], ["info", model]):
        code = (
            "import sys, torch; from autocomplete.cli import main\n"
            f"code = main({argv!r})\n"
            "assert 'prompt_toolkit' not in sys.modules, argv\n"
            f"assert {argv[0] == 'info'} or torch.get_num_threads() == 1\n"
            "sys.exit(code)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (argv, result.stderr)


def test_convert_stores_int8_weights_that_load_back(capsys, trained_model_path, tmp_path):
    out = tmp_path / "small.pt"
    code, printed, _ = run(capsys, "convert", str(trained_model_path), "-o", str(out))
    assert code == 0 and printed.startswith(f"{out}: ") and "(int8;" in printed
    assert out.stat().st_size < trained_model_path.stat().st_size / 2
    code, info, _ = run(capsys, "info", str(out))
    assert code == 0 and "int8 matrices (per-row scales), float16 rest" in info
    code, printed, _ = run(capsys, "predict", "To be or", "--model", str(out))
    assert code == 0 and printed.strip()


def test_learn_teaches_the_model_your_words_and_info_and_forget_show_and_erase_them(capsys, trained_model_path, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("We deploy Kubernetes on Fridays.\nKubernetes restarts the pods.\n")
    code, out, _ = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    assert code == 0 and "learned" in out and "personal state:" in out
    code, out, _ = run(capsys, "info", str(trained_model_path), "--json")
    personal = json.loads(out)["personal"]
    assert personal["new_words"] >= 1 and personal["lines"] == 2 and personal["size_bytes"] > 0
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert code == 0 and f"{personal['words']:,} words ({personal['new_words']:,} new to the model)" in out
    assert f"{personal['tokens']:,} tokens, 2 lines; last " in out
    code, out, _ = run(capsys, "predict", "then Ku", "-c", "--model", str(trained_model_path))
    assert code == 0 and out.split()[0] == "Kubernetes"
    code, out, err = run(capsys, "predict", "then Ku", "-c", "--model", str(trained_model_path), "--no-learn")
    assert code == 1 and "no word in the vocabulary" in err
    code, out, _ = run(capsys, "forget", "--model", str(trained_model_path))
    assert code == 0 and "forgot" in out
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert "nothing yet" in out


@pytest.mark.parametrize("command", ["learn", "eval", "train"])
def test_a_subfolder_that_cannot_be_read_is_named_in_one_warning_and_the_rest_is_used(
    capsys, trained_model_path, tmp_path, command
):
    from .test_data import locked

    folder = tmp_path / "notes"
    (folder / "private").mkdir(parents=True)
    (folder / "notes.txt").write_text(SHAKESPEARE.read_text()[:5000])
    (folder / "private" / "diary.txt").write_text("dear diary\n")
    argv = {
        "learn": ["learn", str(folder), "--model", str(trained_model_path), "--quiet"],
        "eval": ["eval", str(folder), "--model", str(trained_model_path), "--quiet", "--ksr-words", "0"],
        "train": ["train", str(folder), "-o", str(tmp_path / "m.pt"), "--max-steps", "1", "--quiet", "--no-cache"],
    }[command]
    with locked(folder / "private"):
        code, _, err = run(capsys, *argv)
    warning = f"warning: cannot read {folder / 'private'} (Permission denied): skipped"
    assert code == 0 and [line for line in err.splitlines() if "cannot read" in line] == [
        warning if command == "train" else f"autocomplete: {warning}"
    ]


@pytest.mark.parametrize("stop, code", [(KeyboardInterrupt, 130), (SystemExit(143), 143)], ids=["ctrl-c", "kill"])
def test_an_interrupted_learn_keeps_and_saves_what_it_learned_until_then(capsys, monkeypatch, trained_model_path, stop,
                                                                         code):
    from autocomplete.personal import Personal, read_state

    learn = Personal.learn_tokens
    calls = []

    def learn_then_stop(self, tokens, *args, **kwargs):
        calls.append(len(tokens))
        if len(calls) == 2:  # Ctrl-C (or SIGTERM's SystemExit) in the middle of the second batch
            raise stop
        learn(self, tokens, *args, **kwargs)

    monkeypatch.setattr(Personal, "learn_tokens", learn_then_stop)
    argv = ["learn", str(SHAKESPEARE), "--model", str(trained_model_path)]
    if isinstance(stop, SystemExit):
        with pytest.raises(SystemExit) as ended:
            main(argv)
        assert ended.value.code == code
    else:
        assert main(argv) == code
    err = capsys.readouterr().err
    assert f"the {calls[0]:,} tokens learned until then are saved" in err
    [saved] = (Path(os.environ["AUTOCOMPLETE_DATA_DIR"]) / "personal").iterdir()
    assert read_state(saved)["stats"]["tokens"] == calls[0] >= 1024


def test_learn_with_standard_error_closed_learns_the_text_and_says_so_on_standard_output(trained_model_path, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("We deploy Kubernetes on Fridays.\n")
    command = [sys.executable, "-m", "autocomplete", "learn", str(notes), "--model", str(trained_model_path)]
    proc = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AUTOCOMPLETE_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0 and "learned" in proc.stdout and proc.stderr == ""
    assert len(list((tmp_path / "data" / "personal").glob("*.pt"))) == 1
    missing = [sys.executable, "-m", "autocomplete", "predict", "hi", "--model", str(tmp_path / "nope.pt")]
    proc = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *missing], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""  # an error with nowhere to go is not written into the output


def test_a_data_folder_that_cannot_be_written_is_said_at_the_start_and_learn_refuses_to_run(
    capsys, monkeypatch, trained_model_path, tmp_path
):
    import io

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the data folder should be\n")
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(blocked))
    monkeypatch.setattr(sys, "stdin", io.StringIO("hear me\n:learn\n"))
    code, out, err = run(capsys, "--model", str(trained_model_path), "--mode", "chat")  # line mode learns chat lines
    lines = out.splitlines()
    assert code == 0 and "what is learned is not saved" in err and (err + out).count("not saved") == 1  # at the start
    assert "kept in memory only" in lines[-1] and "cannot be written" in lines[-1]  # :learn, and no error at the end
    notes = tmp_path / "notes.txt"
    notes.write_text("We deploy Kubernetes on Fridays.\n")
    code, out, err = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    assert code == 1 and out == "" and err.startswith("autocomplete: error: ") and err.count("\n") == 1
    assert blocked.read_text() == "a file where the data folder should be\n"


def test_ctrl_c_on_learn_just_after_a_save_of_the_minute_still_says_what_is_kept(capsys, trained_model_path, tmp_path,
                                                                                   monkeypatch):
    # sweep k, item 5: only "interrupted" when the save of each minute had just written it all
    from autocomplete.personal import Personal

    learn_tokens = Personal.learn_tokens

    def saved_then_interrupted(self, *args, **kwargs):
        learn_tokens(self, *args, **kwargs)
        assert self.save()  # the save of the minute
        raise KeyboardInterrupt

    monkeypatch.setattr(Personal, "learn_tokens", saved_then_interrupted)
    notes = tmp_path / "notes.txt"
    notes.write_text("We deploy Kubernetes on Fridays.\nKubernetes restarts the pods.\n")
    code, _, err = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    assert code == 130 and re.search(r"stopped; the \d+ tokens learned until then are saved in .*\ninterrupted\n$", err)
    monkeypatch.setattr(Personal, "learn_tokens", learn_tokens)
    code, out, err = run(capsys, "predict", "then Ku", "-c", "--model", str(trained_model_path))
    assert out.split()[:1] == ["Kubernetes"], (code, out, err)


def test_forget_all_removes_what_a_kill_left_mid_save_and_makes_no_marker_for_it(capsys, isolated_user_dirs):
    folder = isolated_user_dirs / "personal"
    folder.mkdir(parents=True)
    leftover = folder / ".default-0123456789abcdef.pt.k9x_2ab7.tmp"
    leftover.write_bytes(b"half a state: the words typed")
    code, out, _ = run(capsys, "forget", "--all")
    assert code == 0 and f"removed {leftover}" in out
    assert sorted(f.name for f in folder.iterdir()) == ["default-0123456789abcdef.pt.forgotten"]


def test_forget_refuses_and_learn_hands_over_while_a_session_learns_into_the_same_state(capsys, trained_model_path, tmp_path):
    from autocomplete import checkpoint
    from autocomplete.personal import inbox_path, model_hash, state_path

    state = state_path(checkpoint.load(trained_model_path), model_hash(trained_model_path))
    state.parent.mkdir(parents=True, exist_ok=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("We deploy Kubernetes with Zorblax on Fridays.\n")
    other = tmp_path / "other.pt"  # a second model, whose state nobody holds: --all erases all or nothing
    other.write_bytes(trained_model_path.read_bytes() + b"\0")  # (another file: another state)
    assert run(capsys, "learn", str(notes), "--model", str(other))[0] == 0
    with held_by_another_program(state) as pid:  # a session that has not saved anything yet
        code, out, err = run(capsys, "forget", "--model", str(trained_model_path))
        assert code == 1 and out == "" and err.count("\n") == 1
        assert f"(process {pid}) is learning into {state}: quit it first (or use :forget in the session, %autocomplete forget in IPython)" in err
        kept = sorted(state.parent.glob("*.pt"))
        code, out, err = run(capsys, "forget", "--all")
        assert code == 1 and "is learning into" in err and sorted(state.parent.glob("*.pt")) == kept
        code, out, err = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
        assert code == 0 and err == "" and not state.exists()  # nothing saved over what the session learns
        assert out == (f"handed 9 tokens from 1 file(s) to the autocomplete session or program (process {pid}) that "
                       f"is learning into {state}: it learns them in its next quiet minute (or the next program to use "
                       "this model learns them when it starts)\n")
        assert len(list(inbox_path(state).glob("*.json"))) == 1
    assert run(capsys, "predict", "with Zo", "--model", str(trained_model_path))[0] == 0
    assert len(list(inbox_path(state).glob("*.json"))) == 1  # predict holds nothing: what was handed over waits
    (inbox_path(state) / "left.json").mkdir()  # something no program could learn: not counted
    out = run(capsys, "info", str(trained_model_path))[1]
    assert "  handed over       1 file of what other programs learned, waiting for the one that holds the state" in out
    (inbox_path(state) / "left.json").rmdir()
    code, _, err = run(capsys, "learn", str(notes), "--model", str(trained_model_path))  # the next holder: both
    assert code == 0 and "first learned the 9 tokens other programs had handed over\n" in err  # sweep k, item 7
    assert not inbox_path(state).exists()
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert "from 18 tokens, 2 lines" in out  # what was handed over, then the text learned here
    with held_by_another_program(state):  # a session learning into what was saved
        saved = state.read_bytes()
        code, out, err = run(capsys, "predict", "with Zo", "--model", str(trained_model_path))
        assert code == 0 and err == "" and out.split()[0] == "Zorblax"  # uses what was saved, holds nothing, says nothing
        assert run(capsys, "forget", "--model", str(trained_model_path))[0] == 1
        assert state.read_bytes() == saved  # neither undone nor overwritten
    code, out, _ = run(capsys, "forget", "--all")
    assert code == 0 and not state.exists() and "forgot" in out and not list(state.parent.glob("*.pt"))


def test_info_counts_one_word_and_one_line_in_the_singular(capsys, trained_model_path, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Zorblax\n")
    run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert "1 word (1 new to the model) from 2 tokens, 1 line; last " in out  # the word and the end of its line


@pytest.mark.parametrize("command, said", [("learn", "learned"), ("eval", "perplexity")])
def test_learn_and_eval_say_when_they_replaced_bytes_that_are_not_utf8(capsys, trained_model_path, tmp_path,
                                                                      command, said):
    notes = tmp_path / "notes.txt"
    notes.write_bytes("déjà vu: a café au lait with Zorblax\n".encode().replace("café".encode(), b"caf\xe9"))
    code, out, err = run(capsys, command, str(notes), "--model", str(trained_model_path), *(["-q"] * (command == "eval")))
    assert code == 0 and said in out  # UTF-8 with one Latin-1 byte in it: still UTF-8, that byte replaced
    # (eval also notes that most of these words are unknown to the tiny model)
    assert err.splitlines()[0] == f"autocomplete: warning: 1 undecodable byte sequence(s) replaced in {notes}"
    assert all(line.startswith("autocomplete: note: ") for line in err.splitlines()[1:])


@pytest.mark.parametrize("command, said", [("learn", "learned"), ("eval", "perplexity")])
def test_learn_and_eval_read_a_latin1_file_as_windows_1252_and_say_so(capsys, trained_model_path, tmp_path,
                                                                     command, said):
    notes = tmp_path / "latin1.txt"
    notes.write_bytes("Le garçon Brûlémont était très fâché.\n".encode("latin-1"))
    code, out, err = run(capsys, command, str(notes), "--model", str(trained_model_path), *(["-q"] * (command == "eval")))
    assert code == 0 and said in out
    assert err.splitlines()[0] == f"autocomplete: warning: {notes}: not UTF-8; read as Windows-1252 (Latin-1)"
    assert all(line.startswith("autocomplete: note: ") for line in err.splitlines()[1:])


def test_learn_takes_whole_accented_words_from_a_latin1_file_not_fragments(capsys, trained_model_path, tmp_path):
    notes = tmp_path / "latin1.txt"
    notes.write_bytes("Le garçon Brûlémont était très fâché.\n".encode("latin-1") * 5)
    assert run(capsys, "learn", str(notes), "--model", str(trained_model_path))[0] == 0
    for typed, word in [("le gar", "garçon"), ("le garçon Br", "Brûlémont")]:
        code, out, _ = run(capsys, "predict", typed, "--model", str(trained_model_path), "--json")
        assert code == 0 and json.loads(out)[0]["word"].lower() == word.lower()
    code, out, _ = run(capsys, "predict", "le", "--model", str(trained_model_path), "--json", "-k", "20")
    assert not {"gar", "on", "br", "l", "mont", "tait"} & {s["word"].lower() for s in json.loads(out)}


def test_learn_reads_a_utf16_file_with_a_byte_order_mark(capsys, trained_model_path, tmp_path):
    notes = tmp_path / "windows.txt"
    notes.write_bytes("\ufeffZorblax Quuxly\r\n".encode("utf-16-le"))
    code, out, err = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    assert (code, err) == (0, "") and "learned 3 tokens" in out and "2 new word(s)" in out


@pytest.mark.parametrize("command, error", [("eval", "the evaluation text holds no words"),
                                            ("learn", "the text holds no words to learn")])
def test_a_text_of_only_a_byte_order_mark_holds_no_words(capsys, trained_model_path, tmp_path, command, error):
    text = tmp_path / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbf\n")
    code, out, err = run(capsys, command, str(text), "--model", str(trained_model_path))
    assert (code, out, err) == (1, "", f"autocomplete: error: {error}\n")


def test_eval_says_when_most_of_the_text_is_outside_the_vocabulary(capsys, trained_model_path, tmp_path):
    gibberish = tmp_path / "gibberish.txt"
    gibberish.write_text("qxzvkjq zzkvqxj jvqxkzz kqzjvxq\n" * 20)
    code, out, err = run(capsys, "eval", str(gibberish), "--model", str(trained_model_path))
    assert code == 0 and "(80.0% unknown)" in out  # four unknown words and an end of line, in each line
    assert err.startswith("autocomplete: note: 80.0% of the tokens are outside the model's vocabulary") and err.count("\n") == 1
    code, out, err = run(capsys, "eval", str(SHAKESPEARE), "--model", str(trained_model_path), "--ksr-words", "20")
    assert code == 0 and err == ""


def test_learn_on_a_terminal_shows_how_much_of_the_text_is_read_of_how_much(capsys, monkeypatch, trained_model_path,
                                                                            tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    notes = tmp_path / "notes.txt"
    notes.write_text(SHAKESPEARE.read_text()[:30_000])
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    shown = terminal.getvalue()
    assert code == 0 and "learning:" in shown and "/29.3k" in shown  # 30,000 bytes, in KiB as tqdm writes them
    assert "100%" in shown and "tokens" in shown


def test_learn_reads_standard_input(capsys, monkeypatch, trained_model_path):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"commit 1a2b: fix Zorblax parser\n")))
    code, out, _ = run(capsys, "learn", "-", "--model", str(trained_model_path))
    assert code == 0 and "learned 7 tokens" in out and "5 new word(s)" in out  # the end of line is a token


def test_eval_with_learning_reports_the_same_text_with_and_without_adaptation(capsys, trained_model_path, tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("my lord, the crown is gold and the sword is old.\n" * 12)  # a user who repeats themselves
    code, out, _ = run(capsys, "eval", "--model", str(trained_model_path), str(text), "--ksr-words", "60", "--learn", "--json")
    report = json.loads(out)
    assert code == 0 and report["tokens"] == report["learning"]["tokens"]
    assert report["learning"]["perplexity"] < report["perplexity"] / 2
    assert report["learning"]["keystroke_savings"][0]["savings"] > report["keystroke_savings"][0]["savings"]
    code, out, _ = run(capsys, "eval", "--model", str(trained_model_path), str(text), "--ksr-words", "60", "--learn")
    assert "learning as it types" in out and "keystrokes saved, 5 shown" in out


def test_the_session_learns_by_default_but_not_with_no_learn_nor_a_line_that_starts_with_a_space(trained_model_path, tmp_path):
    import os

    for flags, folder in (([], tmp_path / "on"), (["--no-learn"], tmp_path / "off")):
        env = {**os.environ, "AUTOCOMPLETE_DATA_DIR": str(folder)}
        proc = subprocess.run(
            [sys.executable, "-m", "autocomplete", "--model", str(trained_model_path), "--plain", "--mode", "chat",
             *flags],  # line mode learns from chat messages (its type-mode lines are questions)
            input="my friend Zorblax\n my secret Quuxly\n", capture_output=True, text=True, env=env, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "off" / "personal").exists()
    personal = personal_info(trained_model_path, tmp_path / "on")
    assert personal["words"] == 3 and personal["new_words"] == 1  # my, friend, Zorblax; nothing of the private line


def test_a_corrupt_personal_state_is_a_warning_not_a_failure(capsys, trained_model_path, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello there\n")
    run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    code, out, _ = run(capsys, "info", str(trained_model_path), "--json")
    state = json.loads(out)["personal"]["path"]
    with open(state, "r+b") as f:
        f.truncate(100)
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert code == 0 and "not used: " in out and "truncated or corrupt" in out
    code, out, err = run(capsys, "predict", "hear me", "--next", "--model", str(trained_model_path))
    assert code == 0 and err.startswith("autocomplete: warning:") and err.count("\n") == 1


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_the_first_termination_signal_ends_the_program_and_a_second_does_not_cut_its_clean_up_short():
    if threading.current_thread() is not threading.main_thread():  # the handler could not be installed: the signal
        pytest.skip("signal handlers can only be installed on the main thread")  # would end the test run itself
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    cleaned_up = False
    with pytest.raises(SystemExit) as ended, _exit_on_termination():
        try:
            os.kill(os.getpid(), signal.SIGHUP)  # a closed terminal window...
            time.sleep(5)  # (the handler runs here)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # ...often followed by a SIGTERM, during the clean-up
            time.sleep(0.05)
            cleaned_up = True
    assert ended.value.code == 128 + signal.SIGHUP and cleaned_up
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before  # the handlers are back


def test_a_model_named_before_the_command_is_used_not_the_shipped_one(capsys, trained_model_path):
    code, text, _ = run(capsys, "--model", str(trained_model_path), "predict", "to be or not to", "--json")
    assert code == 0 and text == run(capsys, "predict", "to be or not to", "--json", "-m", str(trained_model_path))[1]
    assert text != run(capsys, "predict", "to be or not to", "--json")[1]


def test_convert_takes_its_model_once(capsys, trained_model_path, tmp_path):
    model = str(trained_model_path)
    with pytest.raises(SystemExit) as exit:
        main(["-m", model, "convert", model, "-o", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "`convert` takes no --model" in err and not (tmp_path / "x.pt").exists()


def test_convert_refuses_an_output_a_training_is_writing(capsys, trained_model_path, tmp_path):
    from autocomplete import atomic

    out = tmp_path / "t.pt"
    with atomic.exclusive_lock(out):  # what `train … -o t.pt` holds while it runs
        code, _, err = run(capsys, "convert", str(trained_model_path), "-o", str(out))
    assert code == 1 and "is writing this file" in err and not out.exists()


def test_convert_and_train_refuse_to_replace_a_file_that_is_not_a_model(capsys, trained_model_path, tmp_path):
    corpus = tmp_path / "toy.txt"
    corpus.write_text("hello how are you hello how is\n")
    precious = tmp_path / "notes.txt"
    precious.write_text("my own words\n")
    code, _, err = run(capsys, "convert", str(trained_model_path), "-o", str(precious))
    assert code == 1 and precious.read_text() == "my own words\n"
    assert err == (f"autocomplete: error: {precious}: exists and is not an autocomplete model; convert would replace "
                   "it. Remove it or choose another -o\n")
    code, _, err = run(capsys, "train", str(corpus), "-o", str(precious), "--epochs", "1", "--no-cache")
    assert code == 1 and "training would replace it" in err and precious.read_text() == "my own words\n"


def test_convert_and_train_replace_a_model_or_an_empty_file(capsys, trained_model_path, tmp_path):
    corpus = tmp_path / "toy.txt"
    corpus.write_text("hello how are you hello how is\n")
    out = tmp_path / "out.pt"
    out.touch()
    assert run(capsys, "convert", str(trained_model_path), "-o", str(out), "--to", "int8")[0] == 0
    assert run(capsys, "train", str(corpus), "-o", str(out), "--epochs", "1", "--no-cache")[0] == 0
    assert checkpoint.load(out).metadata["corpus"]["tokens"] == 8  # the int8 model was replaced by the new one


def test_a_word_of_the_vocabulary_with_a_newline_in_it_is_shown_on_its_line(capsys):
    from autocomplete.tokenizer import printable_word

    assert printable_word("x\ny\tz\x1b") == "x\\ny\\tz\\x1b"


def test_the_piped_session_reads_utf8_whatever_the_locale_says(trained_model_path, tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "autocomplete", "--model", str(trained_model_path)],
                          input="日本語 café my lord\n".encode(), capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr and proc.stdout.count(b"%") >= 1


def test_info_checks_a_saved_state_as_a_session_would(capsys, trained_model_path, tmp_path):
    from autocomplete import checkpoint
    from autocomplete.personal import read_state

    notes = tmp_path / "notes.txt"
    notes.write_text("my friend Zorblax\n")
    run(capsys, "learn", str(notes), "--model", str(trained_model_path))
    code, out, _ = run(capsys, "info", str(trained_model_path), "--json")
    state = Path(json.loads(out)["personal"]["path"])
    payload = read_state(state)
    payload["stats"]["updated"] = "\x1b[2J"  # a crafted file: a session sets it aside, info must not print it
    checkpoint.save_payload(payload, state)
    code, out, _ = run(capsys, "info", str(trained_model_path))
    assert code == 0 and "not used: " in out and "(stats times)" in out and "\x1b" not in out


def test_train_refuses_a_validation_text_with_nothing_in_it(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    out = tmp_path / "m.pt"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SHAKESPEARE), "--valid", str(empty), "-o", str(out), "--epochs", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no text to validate on" in err and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "argument --device: unknown device 'tpu'; expected auto, cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "argument --device: unknown device 'cuda:x'"),
    (["--vocab-size", "1"], "argument --vocab-size: 1 is out of range (must be ≥ 3 and ≤ 10000000)"),
    (["--valid", "{empty}"], "empty.txt: no text to validate on (--valid is empty or whitespace only)"),
    (["--hidden-dim", "100000"], "argument --hidden-dim: 100000 is out of range (must be ≥ 1 and ≤ 16384)"),
    (["--embedding-dim", "20000"], "argument --embedding-dim: 20000 is out of range (must be ≥ 1 and ≤ 16384)"),
    (["--layers", "33"], "argument --layers: 33 is out of range (must be ≥ 1 and ≤ 32)"),
    (["--adaptive", "5000,2000"], "argument --adaptive: '5000,2000': cutoffs must be ≥ 1 and increase strictly"),
    (["--adaptive", "0,100"], "cutoffs must be ≥ 1 and increase strictly"),
    (["--half", "--int8"], "argument --int8: not allowed with argument --half"),
    (["--embedding-dim", "64", "--hidden-dim", "32"],
     "with tied weights the hidden size (32) must be at least the embedding size (64)"),
    (["--from", "--vocab-size", "100"], "--vocab-size does not apply with --from"),
    (["--new-words", "5"], "--new-words goes with --from"),
    (["--no-cache", "--cache-dir", "{tmp}/cache"], "--cache-dir goes with the token cache, which --no-cache turns off"),
    (["--valid", "{corpus}", "--valid-fraction", "0.1"], "--valid-fraction holds out the tail of each file, --valid"),
    (["{corpus}=dialogue", "--vocab-size", "4"],
     "--vocab-size 4 leaves no room for a word next to the 2 special and 2 style tokens (must be > 4)"),
])
def test_train_options_that_cannot_work_are_usage_errors_before_the_corpus_is_read(
    capsys, monkeypatch, tmp_path, argv, message
):
    from autocomplete import data

    (tmp_path / "empty.txt").write_text(" \n")
    argv = [a.format(empty=tmp_path / "empty.txt", tmp=tmp_path, corpus=SHAKESPEARE) for a in argv]
    opened = []
    real = data.opened_sources
    monkeypatch.setattr(data, "opened_sources", lambda inputs, *a, **k: opened.append(list(inputs)) or real(inputs, *a, **k))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", f"{SHAKESPEARE}=prose", *argv, "-o", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("autocomplete train: error: ") and message in err
    assert err.endswith("(see autocomplete train --help)\n")
    assert not any(f"{SHAKESPEARE}=prose" in inputs for inputs in opened)  # refused before the corpus is read
    assert not (tmp_path / "m.pt").exists()


def test_a_gpu_that_is_not_there_is_said_before_the_corpus_is_read(capsys, monkeypatch, tmp_path):
    import torch

    from autocomplete import data

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(data, "opened_sources", lambda *a, **k: pytest.fail("the corpus was read"))
    code, _, err = run(capsys, "train", str(SHAKESPEARE), "-o", str(tmp_path / "m.pt"), "--device", "cuda:1")
    assert code == 1 and err == "autocomplete: error: device 'cuda:1' asked for, but no CUDA GPU is available (use --device cpu or auto)\n"


def test_one_model_size_given_with_tied_weights_gets_the_other_fitted_to_it_not_a_late_refusal(capsys, tmp_path):
    code, _, err = run(capsys, "train", str(SHAKESPEARE), "-o", str(tmp_path / "m.pt"), "--embedding-dim", "200",
                       "--epochs", "1", "--max-steps", "2", "--no-cache", "--quiet")
    assert code == 0 and "embedding 200, hidden 200" in err
    config = checkpoint.load(tmp_path / "m.pt").model.config
    assert (config.embedding_dim, config.hidden_dim, config.tie_weights) == (200, 200, True)


@pytest.mark.parametrize("command", [["learn", "-"], ["eval", "-"], ["train", "-", "-o", "out.pt"], ["generate", "-"]])
def test_reading_standard_input_when_it_is_closed_is_one_line_and_a_failure(capsys, monkeypatch, tmp_path, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", None)  # started with `<&-`
    code, out, err = run(capsys, *command)
    assert code != 0 and "standard input is closed" in err and err.count("\n") == 1 and "Traceback" not in err
