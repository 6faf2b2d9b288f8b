"""Next-word suggestions and text generation from a local LSTM language model.

The front door for scripts, the CLI, the prompt_toolkit adapters and the plugins alike::

    import autocomplete

    predictor = autocomplete.load()                  # the shipped model; autocomplete.load("mine.pt") for yours
    predictor.suggest("I would like to ", k=5)       # [Suggestion(word='know', probability=0.176, ...), ...]
    predictor.commit("A finished line.\\n")          # what was written conditions the next suggestions
    other = predictor.session()                      # an independent context over the same weights

Nothing here imports prompt_toolkit (that is :mod:`autocomplete.completion`'s job), and PyTorch is only imported when
one of these names is first used, so ``import autocomplete`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autocomplete.display import percent
    from autocomplete.predictor import Continuation, Predictor, Suggestion, load
    from autocomplete.settings import SamplingConfig

__all__ = ["Continuation", "Predictor", "SamplingConfig", "Suggestion", "load", "percent"]

_HOMES = {
    "Continuation": "autocomplete.predictor",
    "Predictor": "autocomplete.predictor",
    "Suggestion": "autocomplete.predictor",
    "load": "autocomplete.predictor",
    "SamplingConfig": "autocomplete.settings",
    "percent": "autocomplete.display",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'autocomplete' has no attribute {name!r}")
    return getattr(import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
