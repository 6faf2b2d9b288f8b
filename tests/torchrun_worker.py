"""Run under ``torchrun`` by tests/test_distributed.py: train a tiny model through the Trainer API on the disk-backed
(token cache) corpus and dump what each rank ends with, so the test can compare the ranks.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/torchrun_worker.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from autocomplete import data
from autocomplete.distributed import shutdown_distributed
from autocomplete.evaluate import evaluate_loss
from autocomplete.token_cache import TokenCache
from autocomplete.train import Trainer, TrainConfig
from tests.conftest import SHAKESPEARE, make_lm


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    lm = make_lm(seed=100 + rank)  # different weights on every rank: DistributedDataParallel must start from rank 0's
    sources = data.resolve_sources([SHAKESPEARE])
    corpus = TokenCache(out / "cache").corpus(sources, lm.tokenizer, lm.vocab, valid_fraction=0.1)
    config = TrainConfig(epochs=1, batch_size=8, bptt=16, lr=5e-3, warmup_steps=5, device="cpu")
    trainer = Trainer(lm, corpus, config, out / "model.pt", progress=False)
    initial = {k: v.clone() for k, v in lm.model.state_dict().items()}  # after the DDP broadcast
    before, _ = evaluate_loss(lm.model, corpus.valid)
    result = trainer.run()
    after, _ = evaluate_loss(lm.model, corpus.valid)
    report = {
        "initial": initial,
        "final": lm.model.state_dict(),
        "before": before,
        "after": after,
        "steps": result.steps,
        "world": trainer.dist.world,
        "corpus_on_disk": isinstance(corpus.train, data.TokenFile),
    }
    torch.save(report, out / f"rank{rank}.pt")
    trainer.close()
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
