"""Odd input, interruptions and abuse: each case gets a clear answer, nothing is lost, typing never stalls."""

import asyncio
import io
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from autocomplete import atomic, checkpoint, data
from autocomplete.cli import main
from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, key_bindings
from autocomplete.errors import CheckpointError
from autocomplete.predictor import Predictor
from autocomplete.train import TrainConfig, Trainer, resume_path

from .conftest import SHAKESPEARE, Tmux, make_lm, needs_tmux, prompt_line, saved_words, wait_for

# ---- corpora ------------------------------------------------------------------------------------------------------


def train_cli(capsys, *argv):
    code = main(["train", *argv])
    return code, capsys.readouterr().err


def test_an_empty_file_is_refused_by_name(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    code, err = train_cli(capsys, str(tmp_path / "empty.txt"), "-o", str(tmp_path / "m.pt"), "--no-cache")
    assert code == 1 and "empty.txt: no text to train on" in err and "Traceback" not in err


def test_standard_input_that_ends_at_once_is_an_empty_corpus(capsys, tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, err = train_cli(capsys, "-", "-o", str(tmp_path / "m.pt"), "--no-cache")
    assert code == 1 and "<stdin>: no text to train on" in err


def test_undecodable_bytes_are_reported_and_training_goes_on(capsys, tmp_path):
    corpus = tmp_path / "mixed.txt"
    damaged = b"\nbad \xff\xfe bytes in " + "a café, déjà vu\n".encode()  # UTF-8 but for two bytes: stays UTF-8
    corpus.write_bytes(SHAKESPEARE.read_bytes()[:20000] + damaged)
    code, err = train_cli(
        capsys, str(corpus), "-o", str(tmp_path / "m.pt"), "--max-steps", "2", "--embedding-dim", "8",
        "--hidden-dim", "8", "--quiet", "--no-cache",
    )
    assert code == 0 and "warning: 2 undecodable byte sequence(s) replaced in" in err and "mixed.txt" in err


def test_a_50_megabyte_line_is_read_in_bounded_pieces(tmp_path):
    path = tmp_path / "one-line.txt"
    word = b"lorem ipsum dolor "
    path.write_bytes(word * (50 * 2**20 // len(word)))
    [source] = data.resolve_sources([path])
    total, longest, pieces = 0, 0, 0
    for text, _ in data.iter_utterances(source, "line", data.CorpusStats()):
        total += len(text.split())
        longest = max(longest, len(text))
        pieces += 1
    assert total == 3 * (50 * 2**20 // len(word))
    assert longest <= data.MAX_SEGMENT and pieces >= 50


# ---- interruptions -------------------------------------------------------------------------------------------------

TRAIN_ARGS = [
    "--embedding-dim", "16", "--hidden-dim", "32", "--dropout", "0.3", "--epochs", "12", "--batch-size", "8",
    "--bptt", "16", "--valid-fraction", "0.1", "--threads", "1", "--quiet", "--seed", "7", "--no-cache",
]


def train_process(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autocomplete", "train", str(SHAKESPEARE), "-o", str(out), *TRAIN_ARGS, *extra],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def final_weights(path: Path) -> torch.Tensor:
    return torch.cat([p.flatten() for p in checkpoint.load(path).model.parameters()])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "m.pt"
    assert train_process(out).wait(timeout=300) == 0
    return out


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no resume state was written"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_training_resumes_to_the_same_model(uninterrupted, tmp_path, how):
    out = tmp_path / "m.pt"
    proc = train_process(out, "--save-every", "0.05")
    wait_for_file(resume_path(out), proc)
    time.sleep(0.1)
    # Twelve epochs take seconds even on a fast CPU; the first resume save comes after 0.05 s of training.
    assert proc.poll() is None, "the run finished before it could be interrupted: lengthen it"
    proc.send_signal(how)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    if how == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + how and "training state saved" in err and "Traceback" not in err  # 130, 143
    checkpoint.read_payload(resume_path(out), kind="resume")  # intact whatever the moment of the kill
    again = train_process(out)  # --resume forgotten: the interrupted run is not replaced by a new one
    assert again.wait(timeout=120) != 0 and "holds a run that did not finish" in again.stderr.read()
    resumed = train_process(out, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert torch.allclose(final_weights(out), final_weights(uninterrupted), atol=1e-4)


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing catches it."""


def test_a_kill_during_a_save_leaves_the_previous_resume_state_usable(tmp_path, monkeypatch):
    config = TrainConfig(epochs=3, batch_size=8, bptt=16, lr=3e-3, save_every=1e-3)  # a save after every step
    lm = make_lm(seed=2)
    corpus = data.load_corpus(data.resolve_sources([SHAKESPEARE]), lm.tokenizer, lm.vocab, valid_fraction=0.1)
    out = tmp_path / "m.pt"
    real_save = torch.save
    saves = {"n": 0}

    def dies_in_the_second_resume_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "training" in obj:
            saves["n"] += 1
            if saves["n"] == 5:
                f.write(b"half a checkpoint")
                raise Killed
            saves["last_step"] = obj["training"]["step"]
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_in_the_second_resume_save)
    with pytest.raises(Killed):
        Trainer(lm, corpus, config, out, progress=False).run()
    monkeypatch.setattr(torch, "save", real_save)
    state = checkpoint.read_payload(resume_path(out), kind="resume")
    assert state["training"]["step"] == saves["last_step"]  # the fourth save, untouched by the failed fifth
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    resumed = make_lm(seed=5)
    calmer = TrainConfig(epochs=3, batch_size=8, bptt=16, lr=3e-3, save_every=1e9)
    result = Trainer(resumed, corpus, calmer, out, progress=False).run(resume=True)
    assert result.steps == 3 * Trainer(make_lm(), corpus, config, tmp_path / "x.pt", progress=False).batches_per_epoch


def test_a_full_disk_at_save_time_is_one_clear_error(tmp_path, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    code = main(["train", str(SHAKESPEARE), "-o", str(tmp_path / "m.pt"), *TRAIN_ARGS[:-3], "--max-steps", "3",
                 "--no-cache"])
    err = capsys.readouterr().err
    assert code == 1 and "could not save (No space left on device)" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ---- checkpoints through the command line ---------------------------------------------------------------------------


def bad_models(tmp_path: Path, good: Path) -> dict[str, Path]:
    raw = good.read_bytes()
    files = {
        "truncated": raw[: len(raw) // 3],
        "corrupted": raw[:200] + bytes(b ^ 0xFF for b in raw[200:4000]) + raw[4000:],
        "text": b"just some text\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.pt"
        paths[name].write_bytes(content)
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "newer.pt")
    paths["newer"] = tmp_path / "newer.pt"
    payload = torch.load(good, weights_only=True)
    payload["vocab"]["itos"].append("extra")
    payload["vocab"]["counts"].append(1)
    torch.save(payload, tmp_path / "mismatch.pt")
    paths["mismatch"] = tmp_path / "mismatch.pt"
    return paths


BAD_MODEL_COMMANDS = (["predict", "hi", "--model"], ["--model"], ["eval", str(SHAKESPEARE), "--model"])


@pytest.mark.parametrize("kind", ["truncated", "corrupted", "text", "newer", "mismatch"])
def test_every_kind_of_bad_model_is_one_line_and_exit_1(kind, tmp_path, trained_model_path, capsys, monkeypatch):
    path = bad_models(tmp_path, trained_model_path)[kind]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    for argv in BAD_MODEL_COMMANDS:
        code = main([*argv, str(path)])
        err = capsys.readouterr().err
        assert code == 1, (kind, argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"autocomplete: error: {path}"), err


@pytest.mark.parametrize("argv", BAD_MODEL_COMMANDS, ids=["predict", "session", "eval"])
def test_a_bad_model_is_one_line_and_exit_1_through_the_real_program_too(argv, tmp_path, trained_model_path):
    path = bad_models(tmp_path, trained_model_path)["corrupted"]
    proc = subprocess.run([sys.executable, "-m", "autocomplete", *argv, str(path)], capture_output=True, text=True,
                          input="", timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"autocomplete: error: {path}: "), lines


# ---- the session ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_predictor(trained_model_path):
    return Predictor.load(trained_model_path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_probabilities_are_finite_and_sum_to_one_for_any_text(shared_predictor, text):
    dist = shared_predictor.distribution(text)
    assert torch.isfinite(dist).all() and abs(float(dist.sum()) - 1) < 1e-4
    for s in shared_predictor.suggest(text, k=3):
        assert 0 < s.probability <= 1 and math.isfinite(s.probability)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80), st.integers(0, 2**31 - 1))
def test_seeded_sampling_is_deterministic_and_cold_sampling_is_greedy(shared_predictor, text, seed):
    a = shared_predictor.continuation(text, max_words=5, temperature=1.0, seed=seed, stop_at="never")
    b = shared_predictor.continuation(text, max_words=5, temperature=1.0, seed=seed, stop_at="never")
    assert a == b
    cold = shared_predictor.continuation(text, max_words=5, temperature=1e-6, seed=seed, stop_at="never")
    greedy = shared_predictor.continuation(text, max_words=5, temperature=0, stop_at="never")
    assert cold == greedy


def test_arbitrary_unicode_gets_suggestions_without_errors(shared_predictor):
    for text in ("👨\u200d👩\u200d👧 emoji then ", "e\u0301\u0301 combining ", "שלום עולם ", "ctrl \x00\x1b[31m ",
                 "\ud800 lone surrogate ", "\u202eright-to-left override "):
        assert shared_predictor.suggest(text, k=3)


def test_a_100_kilobyte_paste_then_one_more_word_costs_one_step(trained_lm):
    predictor = Predictor(trained_lm)
    paste = (SHAKESPEARE.read_text() * 2)[:100_000].replace("\n", " ")
    started = time.perf_counter()
    assert predictor.suggest(paste)
    assert time.perf_counter() - started < 60
    steps = predictor.steps
    predictor.suggest(paste + " speak ")
    assert predictor.steps - steps <= 2


def test_ten_thousand_words_on_one_line_keep_memory_bounded_and_appends_cheap(trained_lm):
    predictor = Predictor(trained_lm)
    line = " ".join(["speak"] * 10_000) + " "
    predictor.suggest(line)
    assert predictor.cache_size() <= predictor.cache_bytes
    steps = predictor.steps
    predictor.suggest(line + "hear ")
    assert predictor.steps - steps == 1


class SlowPredictor(Predictor):
    """The trained model, made artificially slow: every query takes ``delay`` seconds, as a big model on a weak CPU."""

    delay = 0.15

    def suggest(self, *args, **kwargs):
        time.sleep(self.delay)
        return super().suggest(*args, **kwargs)


def test_typing_faster_than_the_model_never_blocks_the_ui_and_drops_stale_results(trained_lm):
    predictor = SlowPredictor(trained_lm)
    suggest = LanguageModelAutoSuggest(predictor)
    completer = LanguageModelCompleter(predictor)
    gaps: list[float] = []
    shown: list[tuple[str, str]] = []

    async def ticker():
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            gaps.append(time.monotonic() - before - 0.005)

    with create_pipe_input() as pipe:
        session = PromptSession(input=pipe, output=DummyOutput(), completer=completer, auto_suggest=suggest,
                                key_bindings=key_bindings(suggest), complete_while_typing=True)
        buffer = session.default_buffer
        buffer.on_suggestion_set += lambda b: shown.append((b.text, b.suggestion.text if b.suggestion else ""))

        def typist():
            for ch in "hear me speak of the people ":
                pipe.send_text(ch)
                time.sleep(0.02)  # 50 characters a second: far faster than the model answers
            wait_for(lambda: buffer.suggestion is not None and buffer.text == "hear me speak of the people ")
            typist.final = buffer.suggestion.text
            pipe.send_text("\r")

        thread = threading.Thread(target=typist)
        session.app.pre_run_callables.append(lambda: session.app.create_background_task(ticker()))
        thread.start()
        line = session.prompt()
        thread.join()
    assert line == "hear me speak of the people "
    assert max(gaps) < 0.1, f"the UI stalled for {max(gaps) * 1000:.0f} ms"
    fresh = LanguageModelAutoSuggest(Predictor(trained_lm)).compute(buffer, type(buffer.document)(line))
    assert typist.final == fresh.text
    assert all(text.startswith("hear") for text, _ in shown)  # a suggestion is only ever set for its own text


@needs_tmux
def test_the_session_survives_a_terminal_resize(trained_model_path, tmp_path):
    term = Tmux([sys.executable, "-m", "autocomplete", "--model", str(trained_model_path)],
                {"AUTOCOMPLETE_DATA_DIR": str(tmp_path), "TERM": "xterm-256color"})
    try:
        term.wait(lambda s: "│ temp" in s)
        term._run("resize-window", "-t", "main", "-x", "44", "-y", "12")
        term.send("-l", "hear me ")
        screen = term.wait(lambda s: len(prompt_line(s).rstrip()) > len("› hear me"))
        assert all(len(row) <= 44 for row in screen.splitlines())
        term._run("resize-window", "-t", "main", "-x", "120", "-y", "30")
        term.send("-l", "x")
        term.wait(lambda s: "x" in prompt_line(s))
        term.send("C-d")
    finally:
        term.close()


@needs_tmux
def test_a_dumb_terminal_gets_line_mode_with_a_message(trained_model_path, tmp_path):
    term = Tmux([sys.executable, "-m", "autocomplete", "--model", str(trained_model_path)],
                {"AUTOCOMPLETE_DATA_DIR": str(tmp_path), "TERM": "dumb"})
    try:
        term.wait(lambda s: "linemode" in "".join(s.split()))  # the banner may wrap at the pane width
        term.send("-l", "hear me")
        term.send("Enter")
        term.wait(lambda s: "%" in s)
        term.send("C-d")
    finally:
        term.close()


def test_a_missing_model_for_the_session_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autocomplete", "--model", str(tmp_path / "nope.pt")],
                          capture_output=True, text=True, input="", timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip() == f"autocomplete: error: {tmp_path / 'nope.pt'}: no such model file"


def test_an_unknown_device_for_training_names_the_valid_choices(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train_cli(capsys, str(SHAKESPEARE), "-o", str(tmp_path / "m.pt"), "--device", "gpu0")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown device 'gpu0'; expected auto, cpu, cuda or cuda:N" in err


def test_checkpoint_error_type_is_what_library_users_catch(tmp_path):
    with pytest.raises(CheckpointError):
        Predictor.load(tmp_path / "missing.pt")


def ended_after_saving(script, model_path, data_dir):
    """The exit status of ``script`` run on ``model_path``, once the personal state it saved in ``data_dir`` holds
    the name it learned."""
    done = subprocess.run([sys.executable, "-c", script, str(model_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AUTOCOMPLETE_DATA_DIR": str(data_dir)})
    assert "Zorblax" in saved_words(data_dir), done.stderr
    return done.returncode


def test_a_program_ended_by_a_signal_whose_exit_never_finishes_saves_what_it_learned_and_ends(trained_model_path,
                                                                                            tmp_path):
    # a closed terminal's SIGHUP ended the session, whose terminal event loop then waited for ever on a task that
    # never finished cancelling: it kept running, holding the personal state's lock, deaf to further signals
    script = """
import os, signal, sys, time
from autocomplete import checkpoint, cli, signals
from autocomplete.personal import open_personal

signals.END_WAIT = 0.5
personal, _ = open_personal(checkpoint.load(sys.argv[1]))
personal.learn("we met Zorblax at the harbour\\n", wait=True)
with cli._exit_on_termination():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    except SystemExit:
        while True:  # an exit that never finishes
            time.sleep(1)
"""
    assert ended_after_saving(script, trained_model_path, tmp_path) == 128 + signal.SIGTERM


def test_a_host_that_swallows_the_guests_hang_up_is_ended_once_what_it_learned_is_saved(trained_model_path, tmp_path):
    # ptpython with its standard error redirected caught the SystemExit of a closed window and spun on the dead
    # terminal for good, holding the state's lock
    script = """
import os, signal, sys, time
from autocomplete import checkpoint, signals
from autocomplete.personal import open_personal

signals.END_WAIT = 0.5
personal, _ = open_personal(checkpoint.load(sys.argv[1]))
personal.learn("we met Zorblax at the harbour\\n", wait=True)
signals.exit_on_hangup()
while True:  # a host's loop that takes SystemExit for one more error
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(30)
    except SystemExit:
        time.sleep(0.1)
"""
    assert ended_after_saving(script, trained_model_path, tmp_path) == 128 + signal.SIGHUP


def test_a_command_that_a_signal_ended_cleanly_is_not_ended_again_later():
    # the program that ran the command goes on (a test run, a host calling main()): nothing ends it afterwards
    script = """
import os, signal, time
from autocomplete import cli, signals

signals.END_WAIT = 0.2
try:
    with cli._exit_on_termination():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
except SystemExit:
    pass
time.sleep(1)
print("still here", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "still here\n"), done.stderr
