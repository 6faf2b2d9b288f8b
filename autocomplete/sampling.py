"""Pure functions from logits to a choice: temperature, top-k, top-p (nucleus), greedy.

No model, no state: given the same logits, settings and generator state, the same token comes out. The settings
themselves (:class:`~autocomplete.settings.SamplingConfig`, re-exported here) live in ``settings.py``.

Temperature 0 means greedy (argmax); as the temperature falls towards 0 the sampled distribution collapses onto the
argmax.
"""

from __future__ import annotations

import torch
from torch import Tensor

from autocomplete.settings import LIMITS, SamplingConfig

__all__ = ["LIMITS", "SamplingConfig", "filter_logits", "make_generator", "sample"]


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set every logit outside the top-k / top-p set to -inf. ``logits`` is (V,) or (B, V)."""
    out = logits.clone()
    if top_k and top_k < out.size(-1):
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out[out < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens strictly before it already reach top_p (the first one always stays)
        remove = (torch.cumsum(probs, dim=-1) - probs) >= top_p
        out.scatter_(-1, order, sorted_logits.masked_fill(remove, float("-inf")))
    return out


def sample(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """Draw one token id from ``logits`` (V,). Tokens that must never appear should already be -inf."""
    if temperature == 0:
        return int(torch.argmax(logits))
    filtered = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(filtered, dim=-1)
    if not torch.isfinite(probs).all() or probs.sum() <= 0:  # extreme temperatures: fall back to greedy
        return int(torch.argmax(logits))
    return int(torch.multinomial(probs, 1, generator=generator))


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
