"""Issue 10: nothing lost, nothing injected. Each test names the item it guards; each failed before the fix.

Outputs that are inputs, outputs that are not files, diverging runs, two writers, leaked copies of standard input,
hostile model files (escape sequences, crafted settings, pickled code), damaged resume files and piped corpora: every
case gets one line and a non-zero exit, and nothing the user made is touched.
"""

import math
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import pytest
import torch

from autocomplete import atomic, checkpoint, data
from autocomplete.cli import main
from autocomplete.errors import CheckpointError
from autocomplete.evaluate import perplexity
from autocomplete.resume import resume_path
from autocomplete.tokenizer import MAX_TOKEN_CHARS, Tokenizer

from .conftest import SHAKESPEARE

TINY = ["--embedding-dim", "8", "--hidden-dim", "8", "--layers", "1", "--batch-size", "4", "--bptt", "8",
        "--quiet", "--no-cache", "--threads", "1"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(SHAKESPEARE.read_bytes()[:12000])
    return path


def train(capsys, *argv):
    code = main(["train", *map(str, argv)])
    return code, capsys.readouterr().err


def one_line_error(err):
    lines = [line for line in err.splitlines() if line.startswith("autocomplete: error:")]
    return len(lines) == 1 and "Traceback" not in err


# ---- item 1: an output that is an input ------------------------------------------------------------------------


def test_training_refuses_an_output_that_is_its_corpus(capsys, corpus):
    before = corpus.read_bytes()
    code, err = train(capsys, corpus, "-o", corpus, *TINY, "--max-steps", "1")
    assert code == 1 and one_line_error(err) and "also an input" in err
    assert corpus.read_bytes() == before


def test_training_refuses_an_output_that_reaches_the_corpus_through_a_link(capsys, corpus, tmp_path):
    (tmp_path / "model.pt").symlink_to(corpus)
    code, err = train(capsys, corpus, "-o", tmp_path / "model.pt", *TINY, "--max-steps", "1")
    assert code == 1 and "also an input" in err and corpus.read_bytes() == SHAKESPEARE.read_bytes()[:12000]


def test_training_refuses_a_resume_file_that_would_overwrite_the_validation_text(capsys, corpus, tmp_path):
    valid = tmp_path / "m.pt.resume"
    valid.write_text("some validation text\n")
    code, err = train(capsys, corpus, "--valid", valid, "-o", tmp_path / "m.pt", *TINY, "--max-steps", "1")
    assert code == 1 and "the resume file of -o" in err and valid.read_text() == "some validation text\n"


# ---- item 2: outputs that are not regular files ------------------------------------------------------------------


def test_training_refuses_a_named_pipe_as_its_output(capsys, corpus, tmp_path):
    fifo = tmp_path / "out.pt"
    os.mkfifo(fifo)
    code, err = train(capsys, corpus, "-o", fifo, *TINY, "--max-steps", "1")
    assert code == 1 and one_line_error(err) and "named pipe" in err and fifo.is_fifo()


def test_training_writes_a_symlinked_output_through_to_its_target(capsys, corpus, tmp_path):
    target = tmp_path / "v1.pt"
    link = tmp_path / "current.pt"
    link.symlink_to(target)
    code, err = train(capsys, corpus, "-o", link, *TINY, "--max-steps", "2")
    assert code == 0, err
    assert link.is_symlink() and checkpoint.load(target).model.config.hidden_dim == 8


# ---- items 3 and 4: diverging runs ----------------------------------------------------------------------------------


def test_a_diverging_run_stops_in_one_line_and_never_writes_or_replaces_a_model(capsys, corpus, tmp_path):
    out = tmp_path / "m.pt"
    assert train(capsys, corpus, "-o", out, *TINY, "--max-steps", "3")[0] == 0
    good = out.read_bytes()
    code, err = train(capsys, corpus, "-o", out, *TINY, "--max-steps", "30", "--lr", "1e38", "--warmup", "0")
    assert code == 1 and one_line_error(err)
    assert "training diverged" in err and "NaN" in err and "--lr" in err
    assert out.read_bytes() == good  # the good model is still there, unchanged


def test_a_run_whose_weights_grow_past_what_a_model_may_hold_writes_nothing_the_loader_would_refuse(capsys, corpus,
                                                                                                    tmp_path):
    out = tmp_path / "m.pt"
    code, err = train(capsys, corpus, "-o", out, *TINY, "--max-steps", "20", "--lr", "1e6", "--warmup", "0")
    assert code == 1 and one_line_error(err) and not out.exists()  # finite, but a model no command loads
    assert "training diverged" in err and "as large as" in err and "--lr" in err


def test_a_model_file_with_nan_weights_is_refused_in_one_line(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["weights"]["layers.0.weight_hh_l0"][0, 0] = math.nan
    torch.save(payload, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="non-finite weights .*layers.0.weight_hh_l0.*diverged"):
        checkpoint.load(tmp_path / "nan.pt")


def test_a_new_run_replaces_a_model_on_the_same_validation_text_only_with_a_better_one(capsys, corpus, tmp_path):
    out = tmp_path / "m.pt"
    assert train(capsys, corpus, "-o", out, *TINY, "--max-steps", "40", "--lr", "0.01")[0] == 0
    good = out.read_bytes()
    code, err = train(capsys, corpus, "-o", out, *TINY, "--max-steps", "1", "--lr", "1e-6")
    assert code == 0 and "replaced only by a better one" in err and "kept" in err
    assert out.read_bytes() == good


def test_perplexity_of_a_huge_loss_is_infinite_not_an_overflow_error():
    assert perplexity(1000.0) == math.inf and perplexity(math.log(5.0)) == pytest.approx(5.0)


def test_a_huge_validation_loss_is_reported_as_infinite_perplexity(capsys, corpus, tmp_path, monkeypatch):
    # item 4: --lr 1000 crashed at the end of the epoch with OverflowError: math range error (exp of loss 8508)
    from autocomplete.train import Trainer

    monkeypatch.setattr(Trainer, "validate", lambda self: 8508.0)
    code, err = train(capsys, corpus, "-o", tmp_path / "m.pt", *TINY, "--max-steps", "2", "--lr", "1000")
    assert code == 0 and "perplexity inf" in err and "Traceback" not in err
    assert checkpoint.load(tmp_path / "m.pt").metadata["valid_perplexity"] == math.inf


# ---- item 5: two writers -----------------------------------------------------------------------------------------


def test_a_second_training_on_a_locked_output_is_refused_in_one_line(capsys, corpus, tmp_path):
    out = tmp_path / "m.pt"
    with atomic.exclusive_lock(out):  # what a running training holds for its whole run
        code, err = train(capsys, corpus, "-o", out, *TINY, "--max-steps", "1")
    assert code == 1 and one_line_error(err) and "is writing this file" in err and not out.exists()


# ---- items 6 and 12: standard input and pipes ------------------------------------------------------------------------


def spools(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith("autocomplete-stdin-")]


@pytest.mark.parametrize("text, ok", [(b"", False), (SHAKESPEARE.read_bytes()[:8000], True)])
def test_the_copy_of_standard_input_is_removed_however_training_ends(capsys, tmp_path, monkeypatch, text, ok):
    import io

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    code, err = train(capsys, "-", "-o", tmp_path / "m.pt", *TINY, "--max-steps", "1")
    assert (code == 0) == ok, err
    assert spools(tmp_path) == []


def feed_fifo(path: Path, content: bytes) -> threading.Thread:
    def writer():
        with open(path, "wb") as f:
            f.write(content)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("breaks", ["auto", "line"])
def test_a_pipe_as_the_corpus_is_read_once_into_a_copy(capsys, tmp_path, monkeypatch, breaks):
    # item 12: `train <(cat corpus.txt)` raised io.UnsupportedOperation (or, with --breaks line, "no text")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = feed_fifo(fifo, SHAKESPEARE.read_bytes()[:8000])
    code, err = train(capsys, fifo, "-o", tmp_path / "m.pt", *TINY, "--max-steps", "1", "--breaks", breaks)
    writer.join(5)
    assert code == 0, err
    assert spools(tmp_path) == []


def test_eval_reads_a_piped_text(capsys, tmp_path, trained_model_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = feed_fifo(fifo, SHAKESPEARE.read_bytes()[:3000])
    code = main(["eval", "--model", str(trained_model_path), str(fifo), "--ksr-words", "0"])
    writer.join(5)
    out, err = capsys.readouterr()
    assert code == 0 and "perplexity" in out, err


# ---- item 7: escape sequences from a model file ----------------------------------------------------------------------

EVIL = "\x1b]0;owned\x07\x1b[2J"


@pytest.fixture
def evil_model(tiny_lm, tmp_path):
    """A model whose most likely word, and whose name, hold terminal escape sequences."""
    payload = checkpoint.to_payload(tiny_lm)
    payload["vocab"]["itos"][7] = "go" + EVIL
    payload["weights"]["decoder.bias"][7] = 100.0  # always the next word
    payload["metadata"] = {"name": "evil" + EVIL, "created": EVIL, "command": EVIL}
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("argv", [
    ["predict", "hello ", "-k", "3", "--no-quantize"],  # a trailing space: the next word, not a completion
    ["generate", "hello", "--words", "3", "--temperature", "0", "--no-quantize"],
    ["info"],
])
def test_nothing_a_model_file_holds_reaches_the_terminal_as_an_escape_sequence(capsys, evil_model, argv):
    command, rest = argv[0], argv[1:]
    args = [command, str(evil_model), *rest] if command == "info" else [command, *rest, "--model", str(evil_model)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07" in out  # shown, visibly, instead of obeyed


def test_chat_replies_and_session_messages_are_printable(capsys, evil_model):
    import io

    from autocomplete.predictor import Predictor
    from autocomplete.repl import Session, plain

    predictor = Predictor.load(evil_model, quantize=False)
    session = Session(predictor, predictor.lm.name, mode="chat")
    plain(session, io.StringIO("hello\n:model " + str(evil_model) + "\n"))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out


@pytest.fixture
def newline_model(tiny_lm, tmp_path):
    """A model whose name, and whose most likely word, hold a newline and a tab."""
    payload = checkpoint.to_payload(tiny_lm)
    payload["vocab"]["itos"][7] = "two\nlines"
    payload["weights"]["decoder.bias"][7] = 100.0  # always the next word
    payload["metadata"] = {"name": "name\nline2\tand a tab"}
    path = tmp_path / "nl.pt"
    torch.save(payload, path)
    return path


SHOWN_NAME = "name\\nline2\\tand a tab"


def test_info_shows_a_name_holding_a_newline_on_its_one_line(capsys, newline_model):
    assert main(["info", str(newline_model)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"{SHOWN_NAME}  ({newline_model}, {newline_model.stat().st_size / 1e6:.1f} MB)"


def test_fine_tuning_names_its_base_model_on_one_line_and_info_shows_it_so(capsys, corpus, newline_model, tmp_path):
    out = tmp_path / "ft.pt"
    code, err = train(capsys, corpus, "--from", newline_model, "-o", out, "--max-steps", "1", "--batch-size", "4",
                      "--bptt", "8", "--quiet", "--no-cache", "--threads", "1")
    assert code == 0, err
    assert f"fine-tuning {SHOWN_NAME} ({newline_model}): its" in err
    assert main(["info", str(out)]) == 0
    [origin] = [line for line in capsys.readouterr().out.splitlines() if "fine-tuned from" in line]
    assert f"fine-tuned from   {SHOWN_NAME} ({newline_model}, sha256 " in origin


def test_generate_shows_a_word_holding_a_newline_as_one_word(capsys, newline_model):
    argv = ["generate", "hello", "--words", "3", "--temperature", "0", "--no-quantize", "--model", str(newline_model)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count("two\\nlines") == 3


def test_the_session_shows_a_name_holding_a_newline_on_one_line(newline_model):
    from autocomplete.predictor import Predictor
    from autocomplete.repl import Session

    predictor = Predictor.load(newline_model, quantize=False)
    session = Session(predictor, predictor.lm.name)
    toolbar = "".join(text for _, text in session.toolbar(predictor.suggest("hello ", 3), 0.0))
    assert SHOWN_NAME in toolbar and "two\\nlines" in toolbar and "\n" not in toolbar and "\t" not in toolbar
    switched = session.command(f":model {newline_model}").message
    assert switched == f"model = {SHOWN_NAME} ({newline_model})"
    assert session.command(":model").message.startswith(f"model = {SHOWN_NAME} (")


# ---- item 8: crafted settings and metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("hidden_dim", 32.5, "hidden dim must be an integer"),
    ("num_layers", 10**9, "num layers must be an integer from 1 to"),
    ("embedding_dim", 10**7, "embedding dim must be an integer from 1 to"),
    ("num_layers", 3, "weights do not match the model settings"),  # within range, but not what the file holds
    ("tie_weights", "yes", "tie weights must be true or false"),
    ("dropout", math.inf, "dropout must be a number in"),
])
def test_crafted_model_settings_are_refused_in_one_line_before_allocating(tiny_lm, tmp_path, capsys, key, value, message):
    payload = checkpoint.to_payload(tiny_lm)
    payload["model_config"][key] = value
    torch.save(payload, tmp_path / "crafted.pt")
    code = main(["predict", "hi", "--model", str(tmp_path / "crafted.pt")])
    err = capsys.readouterr().err
    assert code == 1 and one_line_error(err) and message in err


@pytest.mark.parametrize("version", [True, -5, 0, "1"])
def test_a_format_version_that_is_not_a_positive_integer_is_refused(tiny_lm, tmp_path, version):
    payload = checkpoint.to_payload(tiny_lm)
    payload["format_version"] = version
    torch.save(payload, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="no valid format version"):
        checkpoint.load(tmp_path / "v.pt")


def test_metadata_that_is_not_a_table_is_refused_and_odd_values_are_shown(tiny_lm, tmp_path, capsys):
    payload = checkpoint.to_payload(tiny_lm)
    payload["metadata"] = "just a string"
    torch.save(payload, tmp_path / "s.pt")
    assert main(["info", str(tmp_path / "s.pt")]) == 1
    assert "metadata are a str" in capsys.readouterr().err
    payload["metadata"] = {"wall_time": math.inf, "tokens_seen": math.inf, "valid_perplexity": math.nan, "epochs": "x"}
    torch.save(payload, tmp_path / "inf.pt")
    assert main(["info", str(tmp_path / "inf.pt")]) == 0
    assert main(["info", str(tmp_path / "inf.pt"), "--json"]) == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out  # strict JSON



def test_info_describes_absurd_training_numbers_as_unknown_instead_of_printing_them(tiny_lm, tmp_path, capsys):
    payload = checkpoint.to_payload(tiny_lm)
    payload["metadata"] = {
        "tokens_seen": 10**300, "epochs": -3, "wall_time": 1e300, "valid_perplexity": 0.5,
        "history": [{"epoch": 1, "valid_loss": 1e300}, {"epoch": 10**300, "valid_loss": -5.0},
                    {"epoch": 3, "valid_loss": 2.0}],
        "fine_tuned_from": {"name": "base", "file": "base.pt", "sha256": "ab"}, "added_words": {"count": "many"},
        "corpus": {"files": [7, "\x1b[2Jnotes.txt"], "tokens": -4, "utterances": "lots"},
    }
    torch.save(payload, tmp_path / "absurd.pt")
    assert main(["info", str(tmp_path / "absurd.pt")]) == 0
    out, err = capsys.readouterr()
    rows = {line[2:20].strip(): line[20:] for line in out.splitlines() if line.startswith("  ")}
    for key in ("valid perplexity", "tokens seen", "epochs", "wall time"):
        assert rows[key] == "unknown (the file holds an impossible value)"
    assert rows["fine-tuned from"].endswith("words added: unknown (the file holds an impossible value)")
    assert rows["validation curve"].endswith("perplexity inf → 7.39 over 2 validations (best 7.39 at epoch 3)")
    assert rows["trained on"] == "2 files: 7, \\x1b[2Jnotes.txt"  # no token count from -4; the escape shown
    assert max(map(len, out.splitlines())) < 200 and err == ""


def test_info_still_shows_the_infinite_perplexity_of_a_diverged_run(tiny_lm, tmp_path, capsys):
    payload = checkpoint.to_payload(tiny_lm)
    payload["metadata"] = {"valid_perplexity": math.inf, "tokens_seen": 1234, "epochs": 0.5, "wall_time": 7627.8}
    torch.save(payload, tmp_path / "diverged.pt")
    assert main(["info", str(tmp_path / "diverged.pt")]) == 0
    rows = {line[2:20].strip(): line[20:] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert rows["valid perplexity"] == "inf" and rows["tokens seen"] == "1,234" and rows["epochs"] == "0.5"
    assert rows["wall time"] == "2 h 7 min (7,628 s)"


def _stored_oddly(how, tensor):
    if how == "sparse":
        return tensor.to_sparse()
    if how == "meta":
        return torch.empty(tensor.shape, device="meta")
    return tensor.to({"complex": torch.complex64, "int64": torch.int64, "bool": torch.bool, "int8": torch.int8,
                      "float8": torch.float8_e4m3fn}[how])


@pytest.mark.parametrize("how, message", [
    ("sparse", "is stored as a sparse_coo tensor, not a dense one"),
    ("meta", "is a meta tensor, not numbers held in the file"),
    ("complex", "holds complex64 values, not float16, bfloat16, float32 or float64 numbers"),
    ("int64", "holds int64 values"),
    ("bool", "holds bool values"),
    ("int8", "holds int8 values"),  # int8 without its per-row scales
    ("float8", "holds float8_e4m3fn values"),
])
def test_a_weight_stored_as_anything_but_dense_floating_point_numbers_is_refused_in_one_line(
    tiny_lm, tmp_path, capsys, how, message
):
    payload = checkpoint.to_payload(tiny_lm)
    payload["weights"]["layers.0.weight_hh_l0"] = _stored_oddly(how, payload["weights"]["layers.0.weight_hh_l0"])
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complex weight used to load with PyTorch's warning about the cast
        code = main(["predict", "hi", "--model", str(path), "--no-learn"])
    err = capsys.readouterr().err
    assert code == 1 and one_line_error(err)
    assert f"{path}: refused: 'layers.0.weight_hh_l0' {message}" in err


@pytest.mark.parametrize("how", ["sparse", "meta", "float8"])
def test_int8_scales_stored_oddly_are_refused_and_int8_files_still_load(tiny_lm, tmp_path, how):
    payload = checkpoint.to_payload(tiny_lm, int8=True)
    path = tmp_path / "int8.pt"
    torch.save(payload, path)
    assert checkpoint.load(path).model.embedding.weight.dtype == torch.float32
    scales = payload["int8_scales"]
    scales["embedding.weight"] = _stored_oddly(how, scales["embedding.weight"])
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused: the int8 scale tensor of 'embedding.weight' "):
        checkpoint.load(path)

def test_a_bad_model_switched_to_in_the_session_is_a_message_not_the_end(tiny_lm, tmp_path):
    from autocomplete.predictor import Predictor
    from autocomplete.repl import Session

    payload = checkpoint.to_payload(tiny_lm)
    payload["model_config"]["hidden_dim"] = 32.5
    torch.save(payload, tmp_path / "bad.pt")
    session = Session(Predictor(tiny_lm), "tiny")
    result = session.command(f":model {tmp_path / 'bad.pt'}")
    assert "hidden dim must be an integer" in result.message and not result.quit


# ---- item 9: pickled code -------------------------------------------------------------------------------------------


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_file_that_would_run_a_system_command_is_refused_as_code(tmp_path):
    torch.save({"format": checkpoint.FORMAT, "format_version": 1, "x": _System()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"tries to run code \(pickled Python objects\)"):
        checkpoint.load(tmp_path / "evil.pt")


# ---- item 10: resume files ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resumable")
    text = folder / "corpus.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:12000])
    assert main(["train", str(text), "-o", str(folder / "m.pt"), *TINY, "--max-steps", "2"]) == 0
    return folder


def damage(payload, how):
    t = payload["training"]
    if how == "missing key":
        del t["optimizer"]
    elif how == "state shapes":
        t["states"][0] = [(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))]
    elif how == "rng":
        t["rng"][0] = {"cpu": torch.zeros(5, dtype=torch.uint8)}
    elif how == "no states":
        t["states"] = []
    elif how == "world is text":
        t["world"] = "1"
    elif how == "optimizer shapes":
        first = next(iter(t["optimizer"]["state"].values()))
        first["exp_avg"] = torch.zeros(2, 2)
    # tester h, bug 6: a traceback (cli.py: 'int' object is not subscriptable; train.py: string indices ...)
    elif how == "history of numbers":
        t["history"] = [1]
    elif how == "history with text":
        t["history"] = [*t["history"], "a"]
    elif how == "history loss is text":
        t["history"] = [{"step": 2, "valid_loss": "low"}]
    # tester h, item 10: optimiser damage was said to be a divergence, to be cured with a lower --lr
    elif how == "optimizer betas":
        t["optimizer"]["param_groups"][0]["betas"] = (5.0, -1.0)
    elif how == "optimizer weight decay":
        t["optimizer"]["param_groups"][0]["weight_decay"] = math.inf
    elif how == "optimizer eps":
        t["optimizer"]["param_groups"][0]["eps"] = -1e-8
    # the re-check of those fixes: switches loading would turn on (a KeyError or PyTorch's RuntimeError mid-run)
    elif how == "optimizer amsgrad":
        t["optimizer"]["param_groups"][0]["amsgrad"] = True
    elif how == "optimizer differentiable":
        t["optimizer"]["param_groups"][0]["differentiable"] = True
    elif how == "optimizer without eps":
        del t["optimizer"]["param_groups"][0]["eps"]
    elif how in ("optimizer second moment", "optimizer step"):
        first = next(iter(t["optimizer"]["state"].values()))
        if how == "optimizer step":
            first["step"] = "many"  # was PyTorch's "could not convert string to float: '<generator object …>'"
        else:
            first["exp_avg_sq"] = -first["exp_avg_sq"] - 1


@pytest.mark.parametrize("how", [
    "missing key", "state shapes", "rng", "no states", "world is text", "optimizer shapes", "history of numbers",
    "history with text", "history loss is text", "optimizer betas", "optimizer weight decay", "optimizer eps",
    "optimizer second moment", "optimizer step", "optimizer amsgrad", "optimizer differentiable",
    "optimizer without eps",
])
def test_a_damaged_resume_file_is_one_line_naming_the_file(resumable, tmp_path, capsys, how):
    out = tmp_path / "m.pt"
    payload = torch.load(resume_path(resumable / "m.pt"), weights_only=True)
    damage(payload, how)
    torch.save(payload, resume_path(out))
    code, err = train(capsys, resumable / "corpus.txt", "-o", out, *TINY, "--max-steps", "3", "--resume")
    assert code == 1 and one_line_error(err) and f"{resume_path(out)}: resume file is " in err
    assert "generator object" not in err and not out.exists()


def test_resuming_with_other_settings_or_another_corpus_says_what_differs(resumable, tmp_path, capsys):
    out = tmp_path / "m.pt"
    resume_path(out).write_bytes(resume_path(resumable / "m.pt").read_bytes())
    other = tmp_path / "other.txt"
    other.write_bytes(SHAKESPEARE.read_bytes()[20000:32000])
    code, err = train(capsys, resumable / "corpus.txt", "-o", out, *TINY, "--hidden-dim", "16", "--resume")
    assert code == 1 and one_line_error(err) and "--hidden-dim 16 (the saved run: 8)" in err
    code, err = train(capsys, other, "-o", out, *TINY, "--max-steps", "3", "--resume")
    assert code == 1 and "the corpus changed since the run began" in err and "--resume-anyway" in err
    code, err = train(capsys, other, "-o", out, *TINY, "--max-steps", "3", "--resume-anyway")
    assert code == 0 and "resuming anyway" in err and "the best loss starts afresh" in err


def test_resuming_with_the_same_command_needs_no_options_repeated(resumable, tmp_path, capsys):
    out = tmp_path / "m.pt"
    resume_path(out).write_bytes(resume_path(resumable / "m.pt").read_bytes())
    code, err = train(capsys, resumable / "corpus.txt", "-o", out, "--quiet", "--no-cache", "--batch-size", "4",
                      "--max-steps", "3", "--resume")
    assert code == 0, err


# ---- item 11: the token cache ---------------------------------------------------------------------------------------


def cached_corpus(folder, log):
    from autocomplete.token_cache import TokenCache

    sources = data.resolve_sources([SHAKESPEARE])
    cache = TokenCache(folder, log=log)
    vocab = cache.vocab(sources, Tokenizer(), max_size=500)
    return cache.corpus(sources, Tokenizer(), vocab, valid_fraction=0.1), vocab


@pytest.mark.parametrize("damage_kind", ["same-size ids", "header", "vocabulary"])
def test_a_damaged_token_cache_entry_is_rebuilt_with_a_one_line_notice(tmp_path, damage_kind):
    first, vocab = cached_corpus(tmp_path, lambda message: None)
    expected = first.train.read()
    if damage_kind == "same-size ids":  # what crashed hours into a run with an IndexError
        with open(first.train.path, "r+b") as f:
            f.seek(400)
            f.write((10**6).to_bytes(4, sys.byteorder))
    elif damage_kind == "header":
        [header] = [p for p in tmp_path.glob("*.json") if not p.name.endswith(".vocab.json")]
        edited = header.read_text().replace('"train_tokens": ', '"train_tokens": "x", "was": ')
        header.write_text(edited)
    else:
        path = next(tmp_path.glob("*.vocab.json"))
        path.write_text(path.read_text().replace('"case_fold": true', '"case_fold": "yes"'))
    messages = []
    again, vocab_again = cached_corpus(tmp_path, messages.append)
    notices = [m for m in messages if "damaged token cache entry" in m]
    assert len(notices) == 1 and "\n" not in notices[0]
    assert torch.equal(again.train.read(), expected) and vocab_again.itos == vocab.itos


# ---- smaller ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["generate", "x", "--seed", str(2**64)],
    ["train", "a.txt", "-o", "m.pt", "--seed", str(2**70)],
    ["train", "a.txt", "-o", "m.pt", "--threads", "100000"],
])
def test_seeds_beyond_64_bits_and_more_threads_than_cpus_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["predict", "how are"], ["generate", "how are", "--words", "3"]])
def test_a_full_standard_output_is_one_line_and_a_failure(toy_model_path, command):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "autocomplete", *command, "--model", str(toy_model_path)],
                              stdout=full, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "autocomplete: error: standard output: cannot write (No space left on device)"


def test_a_closed_standard_output_is_one_line_and_a_failure(toy_model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "autocomplete", "generate", "hi", "--model", str(toy_model_path)],
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "standard output is closed" in proc.stderr


def test_carriage_returns_alone_end_lines(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"first line\rsecond line\r\rthird\r\nfourth\n")
    [source] = data.resolve_sources([path])
    lines = [text for text, _ in data.iter_utterances(source, "line", data.CorpusStats())]
    assert lines == ["first line", "second line", "third", "fourth"]


def test_a_nul_byte_after_the_first_8_kilobytes_still_means_binary(tmp_path):
    path = tmp_path / "late.bin"
    path.write_bytes(b"plain words\n" * 2000 + b"\x00\x01\x02 and more\n")
    sources = data.resolve_sources([path])
    with pytest.raises(data.CorpusError, match="late.bin: looks like a binary file"):
        data.build_vocab(sources, Tokenizer())


def test_a_megabyte_word_never_enters_the_vocabulary(tmp_path):
    path = tmp_path / "blob.txt"
    blob = "x" * (1 << 20)
    path.write_text(f"a b {blob}\n" * 3)
    vocab = data.build_vocab(data.resolve_sources([path]), Tokenizer())
    assert blob not in vocab and all(len(t) <= MAX_TOKEN_CHARS for t in vocab.itos)
    assert vocab.counts[0] == 3  # counted as unknown


def test_a_training_whose_log_pipe_is_closed_still_writes_its_model_and_exits_0(corpus, tmp_path):
    # `train FILE -o m.pt --epochs 1 2>&1 | head -2`: exit status 0 and no model file; the log's first broken write
    # ended the run as if it were `generate | head`
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "autocomplete", "train", str(corpus), "-o", str(tmp_path / "m.pt"), "--epochs",
             "1", *TINY[:-4], "--no-cache", "--threads", "1"],  # not --quiet: progress lines too
            stdout=write_end, stderr=write_end, timeout=300, check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and checkpoint.load(tmp_path / "m.pt").model.config.hidden_dim == 8


def test_the_copy_of_standard_input_is_removed_when_training_is_terminated(tmp_path):
    # item 6: a SIGTERM while standard input is being read left a full copy of it in the temporary folder
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "autocomplete", "train", "-", "-o", str(tmp_path / "m.pt"), "--no-cache"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    proc.stdin.write("words and more words\n" * 1000)  # and standard input stays open: still being read
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not spools(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spools(tmp_path), "the copy of standard input was never made"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert "Traceback" not in proc.stderr.read() and spools(tmp_path) == []
