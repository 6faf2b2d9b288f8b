"""Shared fixtures: a tiny untrained model for structural tests, a briefly trained one for behaviour, and an
isolated user data directory so no test touches the real one."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from autocomplete import checkpoint, data
from autocomplete.checkpoint import LanguageModel
from autocomplete.model import LSTMLanguageModel, ModelConfig
from autocomplete.tokenizer import EOS, UNK, Tokenizer
from autocomplete.train import TrainConfig, Trainer
from autocomplete.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
SHAKESPEARE = FIXTURES / "shakespeare.txt"
TOY = "hello how are you hello how is"

torch.set_num_threads(1)  # the test models are tiny: more threads only add synchronisation overhead

# The hang-up tests play a terminal window closing on a program, which a suite started under ``nohup`` would not see:
# its programs inherit SIGHUP ignored, and a guest rightly leaves an ignored SIGHUP alone (such a program is meant to
# outlive its terminal). So this suite's programs start with SIGHUP as a terminal's programs do.
if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
# Likewise Ctrl-C: a suite started in the background of a script (`pytest &`) inherits SIGINT ignored, which Python
# and its programs leave ignored; the Ctrl-C tests play a user's Ctrl-C at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("userdata")
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(home))
    monkeypatch.delenv("AUTOCOMPLETE_MODEL", raising=False)
    return home


def make_lm(text_path: Path = SHAKESPEARE, seed: int = 0, **config: object) -> LanguageModel:
    tokenizer = Tokenizer()
    sources = data.resolve_sources([text_path])
    vocab = data.build_vocab(sources, tokenizer, max_size=2000, min_count=1)
    torch.manual_seed(seed)
    settings = {"embedding_dim": 16, "hidden_dim": 32, "num_layers": 2, "dropout": 0.0, **config}
    model = LSTMLanguageModel(ModelConfig(vocab_size=len(vocab), **settings))  # type: ignore[arg-type]
    return LanguageModel(model.eval(), vocab, tokenizer, {"name": "tiny"})


@pytest.fixture
def tiny_lm() -> LanguageModel:
    """An untrained two-layer model over the Shakespeare fixture's vocabulary."""
    return make_lm()


@pytest.fixture
def cased_lm() -> LanguageModel:
    """An untrained model over a vocabulary holding one word in three cases, all-capital numerals and a name."""
    itos = [UNK, EOS, "how", "are", "you", "You", "YOU", "young", "XXXVIII", "xxi", "Okonkwo", "okay", "."]
    vocab = Vocab(itos, [1] * len(itos))
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(len(vocab), embedding_dim=8, hidden_dim=8, num_layers=1, dropout=0.0))
    return LanguageModel(model.eval(), vocab, Tokenizer(), {"name": "cased"})


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained for a few seconds on the Shakespeare fixture (shared by the whole session)."""
    out = tmp_path_factory.mktemp("trained") / "tiny.pt"
    lm = make_lm(embedding_dim=32, hidden_dim=64)
    corpus = data.load_corpus(data.resolve_sources([SHAKESPEARE]), lm.tokenizer, lm.vocab, valid_fraction=0.05)
    config = TrainConfig(epochs=6, batch_size=8, bptt=20, lr=1e-2, warmup_steps=10, device="cpu")
    Trainer(lm, corpus, config, out, progress=False).run()
    return out


@pytest.fixture
def trained_lm(trained_model_path: Path) -> LanguageModel:
    return checkpoint.load(trained_model_path)


@pytest.fixture(scope="session")
def toy_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teaching notebook's toy, trained with the real trainer: Embedding(10) → LSTM(20) → Linear."""
    folder = tmp_path_factory.mktemp("toy")
    corpus_file = folder / "toy.txt"
    corpus_file.write_text(TOY + "\n")
    tokenizer = Tokenizer()
    sources = data.resolve_sources([corpus_file])
    vocab = data.build_vocab(sources, tokenizer)
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(len(vocab), embedding_dim=10, hidden_dim=20, num_layers=1, dropout=0.0))
    lm = LanguageModel(model, vocab, tokenizer, {"name": "toy"})
    corpus = data.load_corpus(sources, tokenizer, vocab)
    config = TrainConfig(epochs=300, batch_size=1, bptt=8, lr=0.01, warmup_steps=0, device="cpu")
    Trainer(lm, corpus, config, folder / "toy.pt", progress=False).run()
    return folder / "toy.pt"


# ---- helpers shared by the test modules -------------------------------------------------------------------------

RIGHT, ALT_F, ALT_N, ALT_P, CTRL_T, ESC, TAB, SHIFT_TAB, BACKSPACE, ENTER = (
    "\x1b[C", "\x1bf", "\x1bn", "\x1bp", "\x14", "\x1b", "\t", "\x1b[Z", "\x7f", "\r",
)


@contextlib.contextmanager
def held_by_another_program(state: Path) -> Iterator[int]:
    """Another process holds the lock of the personal state ``state``, as a running session would; its pid."""
    code = ("import sys; from autocomplete.atomic import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, str(state)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.communicate("", timeout=30)


def saved_words(data_dir: Path) -> list[str]:
    """The words of the personal state saved in the data folder ``data_dir`` (none while none is saved)."""
    from autocomplete.personal import read_state

    states = list((data_dir / "personal").glob("*.pt"))
    return read_state(states[0])["lexicon"]["words"] if states else []


def personal_info(model: Path, data_dir: Path) -> dict:
    """What ``autocomplete info MODEL --json`` says of the personal state in the data folder ``data_dir``, asked in
    this process: a program of its own would spend seconds importing PyTorch."""
    import io
    import json
    import os

    from autocomplete.cli import main

    out, before = io.StringIO(), os.environ.get("AUTOCOMPLETE_DATA_DIR")
    os.environ["AUTOCOMPLETE_DATA_DIR"] = str(data_dir)
    try:
        with contextlib.redirect_stdout(out):
            assert main(["info", str(model), "--json"]) == 0
    finally:
        if before is None:
            del os.environ["AUTOCOMPLETE_DATA_DIR"]
        else:
            os.environ["AUTOCOMPLETE_DATA_DIR"] = before
    return json.loads(out.getvalue())["personal"]


def wait_for(condition, timeout=30.0):  # generous: the suite may share a busy machine
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the session")
        time.sleep(0.01)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command: list[str], env: dict[str, str], width: int = 100, height: int = 20) -> None:
        self.socket = f"ac-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        shell = f"cd {ROOT} && env {exports} {' '.join(command)}"
        self._run("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "main", shell)

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def send(self, *keys: str) -> None:
        self._run("send-keys", "-t", "main", *keys)

    def screen(self) -> str:
        return self._run("capture-pane", "-t", "main", "-p")

    def wait(self, predicate, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def prompt_line(screen: str, prefix: str = "› ") -> str:
    """The screen's first prompt line, or "" while there is none (a capture taken mid-redraw, e.g. after a resize,
    can show a cleared screen: waits retry instead of failing on it)."""
    line = next((line for line in screen.splitlines() if line.startswith(prefix.rstrip())), None)
    if line is None:
        return ""
    return line if len(line) >= len(prefix) else prefix
