"""Data-parallel training under ``torchrun``: two CPU processes talking gloo, as on a multi-GPU machine with NCCL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from autocomplete import checkpoint
from autocomplete.predictor import Predictor

from .conftest import SHAKESPEARE

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"),
]

TINY = ["--embedding-dim", "16", "--hidden-dim", "32", "--layers", "1", "--min-count", "1", "--vocab-size", "2000"]
FAST = ["--batch-size", "8", "--bptt", "16", "--lr", "5e-3", "--device", "cpu", "--threads", "1", "--quiet"]


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Two local processes under torchrun; the environment (isolated data dir) is inherited."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def train(tmp: Path, name: str, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp / name
    cache = ["--cache-dir", str(tmp / "cache")]
    command = ["-m", "autocomplete", "train", str(SHAKESPEARE), "-o", str(out), *TINY, *FAST, *cache, *options]
    done = torchrun(*command, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """One uninterrupted 24-step run, and one stopped at step 12 then resumed to 24 (same settings otherwise)."""
    tmp = tmp_path_factory.mktemp("torchrun")
    same = ["--schedule", "constant", "--warmup", "5", "--dropout", "0.3"]  # the rate must not depend on max-steps
    straight = train(tmp, "straight.pt", *same, "--max-steps", "24")
    first = train(tmp, "resumed.pt", *same, "--max-steps", "12")
    resumed = train(tmp, "resumed.pt", *same, "--max-steps", "24", "--resume")
    return {"straight": straight, "first": first, "resumed": resumed}


def test_train_under_torchrun_writes_a_model_the_single_process_predictor_loads(runs):
    done, out = runs["straight"]
    predictor = Predictor.load(out)
    assert len(predictor.suggest("my lord ", k=3)) == 3
    meta = checkpoint.load(out).metadata
    assert meta["steps"] == 24 and meta["device"] == "cpu ×2"
    assert meta["valid_perplexity"] < len(predictor.vocab) / 2  # an untrained model scores about the vocabulary size
    assert Path(str(out) + ".resume").exists()


def test_only_rank_zero_logs_and_it_reports_the_effective_batch(runs):
    err = runs["straight"][0].stderr
    assert err.count("corpus: 1 file(s)") == 1 and err.count("model written to") == 1
    assert "× 2 processes" in err and "effective batch 16 × 16 tokens" in err
    assert "tokenising 1 file(s)" in err or "token ids from the cache" in err


def test_a_second_run_reuses_the_token_cache(runs):
    err = runs["first"][0].stderr
    assert "vocabulary from the cache" in err and "token ids from the cache" in err


def test_resume_under_torchrun_reaches_the_same_weights_as_an_uninterrupted_run(runs):
    assert "resuming at epoch 1, step 12" in runs["resumed"][0].stderr
    straight = torch.load(Path(str(runs["straight"][1]) + ".resume"), weights_only=True)
    resumed = torch.load(Path(str(runs["resumed"][1]) + ".resume"), weights_only=True)
    assert resumed["training"]["step"] == straight["training"]["step"] == 24
    for name, tensor in straight["weights"].items():
        assert torch.allclose(resumed["weights"][name], tensor, atol=1e-6), name


def test_every_rank_starts_from_rank_zeros_weights_and_ends_with_the_same_weights(tmp_path):
    done = torchrun(str(REPO / "tests" / "torchrun_worker.py"), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["corpus_on_disk"]
    assert r0["steps"] == r1["steps"] > 20
    for name in r0["final"]:
        assert torch.equal(r0["initial"][name], r1["initial"][name]), name
        assert torch.equal(r0["final"][name], r1["final"][name]), name
    assert not torch.equal(r0["initial"]["embedding.weight"], r0["final"]["embedding.weight"])
    assert r0["after"] < r0["before"] - 0.5  # the loss fell
