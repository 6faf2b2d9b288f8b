"""Tokens/s of one training step (forward, backward, AdamW) for a model size and softmax, on random token ids.

    python -m benchmarks.train_step --vocab 20000 --embedding 256 --hidden 512 --batch 32
    python -m benchmarks.train_step --vocab 20000 --embedding 256 --hidden 512 --batch 32 --adaptive 2000,8000 --no-tie

Used to size the shipped model (models/README.md): it measures the step only, not data loading or validation.
"""

from __future__ import annotations

import argparse
import time

import torch

from autocomplete.model import LSTMLanguageModel, ModelConfig, detach_state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--embedding", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--adaptive", default="", help="cutoffs, e.g. 2000,8000")
    p.add_argument("--no-tie", action="store_true")
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.manual_seed(0)
    cutoffs = tuple(int(c) for c in a.adaptive.split(",") if c)
    config = ModelConfig(a.vocab, a.embedding, a.hidden, a.layers, tie_weights=not a.no_tie, adaptive_cutoffs=cutoffs)
    model = LSTMLanguageModel(config).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=True)
    # Zipf-distributed targets, like words: most of them fall in an adaptive softmax's head
    zipf = 1 / torch.arange(1, a.vocab + 1).float()
    x = torch.multinomial(zipf, a.batch * a.bptt, replacement=True).view(a.batch, a.bptt)
    y = torch.multinomial(zipf, a.batch * a.bptt, replacement=True).view(a.batch, a.bptt)
    state = None
    for i in range(a.steps + 3):
        if i == 3:
            start = time.perf_counter()
        features, state = model.features(x, state)
        state = detach_state(state)
        loss = model.loss(features, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rate = a.steps * a.batch * a.bptt / (time.perf_counter() - start)
    softmax = f"adaptive {list(cutoffs)}" if cutoffs else "full"
    print(f"vocab {a.vocab}, {a.layers}×{a.hidden} (emb {a.embedding}), {softmax}, {'untied' if a.no_tie else 'tied'}, "
          f"batch {a.batch}: {rate:,.0f} tokens/s, {model.num_parameters() / 1e6:.1f} M params, "
          f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
