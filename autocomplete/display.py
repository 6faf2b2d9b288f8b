"""How numbers from the model are written for people (the CLI, the session's toolbar, the menus, embedding programs).

Standard library only: formatting a probability must not load PyTorch or prompt_toolkit.
"""

from __future__ import annotations

import math

UNKNOWN = "?"  # what percent() shows for a number that is no probability
_ROUNDING = 1e-6  # how far float arithmetic may push a probability outside [0, 1] (float32 softmax: about 1e-7)


def percent(p: float) -> str:
    """A probability as a percentage with one decimal: ``42.0%``, ``10.0%``, ``9.9%``, ``0.1%``, ``<0.1%``.

    The same number of decimals everywhere, so a column of them lines up and 0.0995 and 0.1 read the same; a rare
    word is never shown as a misleading ``0.0%``. A number that is no probability (NaN, an infinity, or one outside
    [0, 1] by more than rounding: a diverged model, a caller's bug) is ``?``, never ``nan%``, ``150.0%`` or a
    reassuring ``<0.1%``; so is an integer too large for a float. What is no number (``None``, text, True or
    False) is a :class:`TypeError`: ``True`` is no probability of 100%.
    """
    if isinstance(p, bool):
        raise TypeError(f"percent takes a probability (a number), got {p!r}")
    try:
        finite = math.isfinite(p)
    except OverflowError:  # an integer beyond any float (10**400)
        return UNKNOWN
    except TypeError:
        raise TypeError(f"percent takes a probability (a number), got {type(p).__name__}") from None
    if not (finite and -_ROUNDING <= p <= 1 + _ROUNDING):
        return UNKNOWN
    return f"{min(p, 1.0):.1%}" if p >= 0.001 else "<0.1%"


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """``values`` as a row of block characters, lowest ``▁`` to highest ``█`` (``▅▃▂▂▁▁``): a curve in one
    line of text. Longer series are thinned to ``width`` evenly spaced points, the first and last kept."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return _BLOCKS[0] * len(values)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - low) / (high - low) * top)] for v in values)
