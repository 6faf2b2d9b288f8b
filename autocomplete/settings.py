"""The sampling settings: one frozen, validated :class:`SamplingConfig` and the valid range of each of its fields.

This is the only place where the sampling knobs' defaults and ranges are written: the CLI's argument types, the
session's ``:temp``/``:topk``/``:len``/``:k`` commands, the Alt-+/Alt-- keys and the completion adapters all read them
from here (:data:`LIMITS`). The largest model sizes live here too (:data:`MODEL_SIZE_LIMITS`). Standard library only,
so the CLI can build its parser without loading PyTorch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from autocomplete.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """The valid range of one setting, and how to say it."""

    kind: type  # int or float
    low: float
    high: float | None = None  # None: no upper bound
    low_open: bool = False  # ``low`` itself is not allowed
    note: str = ""  # what the extreme values mean, shown with the range

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.high is None:
            bound = f"{'>' if self.low_open else '≥'} {self.low:g}"
        else:
            bound = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return f"{what} {bound}" + (f" ({self.note})" if self.note else "")

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def parse(self, text: str, name: str) -> int | float:
        """``text`` as a valid value, or a :class:`ConfigError` that names the setting and its range (also for what
        is no text nor number: ``None``, True or False)."""
        try:
            if isinstance(text, bool):
                raise TypeError
            value = self.kind(text)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {self.describe()}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {text!r} (not a finite number)")
        if not self.accepts(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {text} (out of range)")
        return value

    def clamp(self, value: float) -> float:
        value = max(self.low, value)
        return value if self.high is None else min(self.high, value)


#: The largest model this tool builds or reads: far above any it trains (a 16,384-wide LSTM layer alone is 8.6 GB of
#: float32 weights), low enough that a mistyped or hostile size is refused instead of allocating until memory runs
#: out. :class:`~autocomplete.model.ModelConfig` enforces them; ``train``'s options say them at once.
MODEL_SIZE_LIMITS = {"vocab_size": 10_000_000, "embedding_dim": 16_384, "hidden_dim": 16_384, "num_layers": 32}

#: The valid range of every :class:`SamplingConfig` field: the single source for every parser and command.
LIMITS: dict[str, Limit] = {
    "temperature": Limit(float, 0.0, 5.0, note="0 = greedy, 1 = the model's own distribution"),
    "top_k": Limit(int, 0, note="0 = no limit"),
    "top_p": Limit(float, 0.0, 1.0, low_open=True, note="1 = no limit"),
    "max_words": Limit(int, 1, 10_000),
    "suggestions": Limit(int, 1, 100),
}


@dataclass(frozen=True)
class SamplingConfig:
    """How words are chosen. Frozen and validated: change it with :meth:`replace` (or :meth:`with_temperature`)."""

    temperature: float = 0.8  # 0 = greedy; 1 = the model's own distribution; higher = more adventurous
    top_k: int = 40  # sample among the k most likely tokens (0 = no limit)
    top_p: float = 0.95  # ... within the smallest set whose probability reaches p (1.0 = no limit)
    max_words: int = 20  # words in a sampled continuation, a chat reply or `generate`'s output
    suggestions: int = 5  # candidates in a next-word list (the menu, the toolbar, `predict`)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            limit = LIMITS[f.name]
            if limit.kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                object.__setattr__(self, f.name, value)
            if not limit.accepts(value):
                raise ConfigError(f"{f.name.replace('_', '-')} must be {limit.describe()}, got {value!r}")

    def replace(self, **changes: object) -> SamplingConfig:
        """A copy with ``changes`` applied, validated like a new one."""
        unknown = set(changes) - set(LIMITS)
        if unknown:
            raise ConfigError(f"unknown sampling settings {sorted(unknown)}; known: {', '.join(LIMITS)}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_temperature(self, value: float) -> SamplingConfig:
        """A copy at ``value`` clamped into the valid range and rounded to 2 decimals (for keys that step it).

        NaN (or anything that is not a number) is a :class:`ConfigError`: there is no end of the range to clamp it
        to, and taking it as 0 would silently switch to greedy choices."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ConfigError(f"temperature must be {LIMITS['temperature'].describe()}, got {value!r}")
        return self.replace(temperature=round(LIMITS["temperature"].clamp(value), 2))

    @staticmethod
    def parse(name: str, text: str) -> int | float:
        """A value for the field ``name`` read from user text, or a :class:`ConfigError` naming the valid range (or,
        for a name that is no field, the fields there are)."""
        limit = LIMITS.get(name) if isinstance(name, str) else None
        if limit is None:
            raise ConfigError(f"unknown sampling setting {name!r}; known: {', '.join(LIMITS)}")
        return limit.parse(text, name.replace("_", "-"))
