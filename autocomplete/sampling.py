"""Pure functions from logits to a choice: temperature, top-k, top-p (nucleus), greedy.

No model, no state: given the same logits, settings and generator state, the same token comes out. Temperature 0
means greedy (argmax); as the temperature falls towards 0 the sampled distribution collapses onto the argmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from autocomplete.errors import ConfigError


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.8  # 0 = greedy; 1 = the model's own distribution; higher = more adventurous
    top_k: int = 40  # keep the k most likely tokens (0 = no limit)
    top_p: float = 0.95  # keep the smallest set whose probability reaches p (1.0 = no limit)

    def __post_init__(self) -> None:
        validate_sampling(self.temperature, self.top_k, self.top_p)


def validate_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or not 0 <= temperature <= 100:
        raise ConfigError(f"temperature must be a number in [0, 100] (0 = greedy), got {temperature}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"top-k must be an integer ≥ 0 (0 = no limit), got {top_k}")
    if not isinstance(top_p, (int, float)) or math.isnan(top_p) or not 0 < top_p <= 1:
        raise ConfigError(f"top-p must be in (0, 1], got {top_p}")


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
