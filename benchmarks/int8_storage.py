"""What storing a model's weight matrices as int8 (per-row scales) costs: file size, and how far the next-word
distribution moves, measured at every position of a text.

    python -m benchmarks.int8_storage models/default.pt ../shared/data/books/ethan_frome_4517.txt --tokens 5000

Both models run with float32 arithmetic (the int8 file is dequantized at load), so the numbers are the storage's own
cost; the session's int8 arithmetic (``quantize_dynamic``) comes on top for either file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from autocomplete import checkpoint, data
from autocomplete.evaluate import read_eval_text
from autocomplete.vocab import EOS_ID


@torch.inference_mode()
def log_probs(lm: checkpoint.LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    stream = torch.cat([torch.tensor([EOS_ID]), ids])[:-1].unsqueeze(0)  # predict every token from the ones before
    features, _ = lm.model.features(stream)
    return torch.log_softmax(lm.model.logits(features[0]).float(), -1)  # (T, V)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("text", nargs="+")
    p.add_argument("--tokens", type=int, default=5000, help="positions compared (default 5000)")
    a = p.parse_args()
    torch.manual_seed(0)
    lm = checkpoint.load(a.model)
    ids, _ = read_eval_text(data.resolve_sources(a.text), lm.tokenizer, lm.vocab)
    ids = ids[: a.tokens]
    with tempfile.TemporaryDirectory() as tmp:
        int8_path, half_path = Path(tmp) / "int8.pt", Path(tmp) / "half.pt"
        checkpoint.save(lm, int8_path, torch.float16, int8=True)
        checkpoint.save(lm, half_path, torch.float16)
        sizes = (a.model.stat().st_size, half_path.stat().st_size, int8_path.stat().st_size)
        quantized = checkpoint.load(int8_path)
    p_log, q_log = log_probs(lm, ids), log_probs(quantized, ids)
    diff = (p_log.exp() - q_log.exp()).abs().amax(-1)  # (T,)
    kl = (p_log.exp() * (p_log - q_log)).sum(-1)  # (T,) KL(model ‖ int8) in nats
    same_top1 = (p_log.argmax(-1) == q_log.argmax(-1)).float().mean()
    nll = -p_log.gather(1, ids.unsqueeze(1)).mean(), -q_log.gather(1, ids.unsqueeze(1)).mean()
    print(f"file: {sizes[0] / 1e6:.1f} MB as given, {sizes[1] / 1e6:.1f} MB float16, {sizes[2] / 1e6:.1f} MB int8")
    print(f"{ids.numel():,} positions: max |Δp| {float(diff.max()):.4f} (median {float(diff.median()):.5f}); "
          f"KL mean {float(kl.mean()):.2e}, max {float(kl.max()):.2e} nats; same top-1 word {float(same_top1):.2%}; "
          f"perplexity {float(nll[0].exp()):.2f} → {float(nll[1].exp()):.2f}")


if __name__ == "__main__":
    main()
