#!/usr/bin/env python3
"""The model card's neutral-prompt table: the top next words after prompts that belong to no training domain.

    python models/neutral-prompts.py MODEL [STYLE...]

Prints one Markdown row per prompt (and per style, for a model trained with styles; a model without styles gets one
column): the five most likely next words with their probabilities, as `autocomplete predict "PROMPT " -k 5` gives
them (float weights).
"""

from __future__ import annotations

import sys

from autocomplete.completion import percent
from autocomplete.predictor import Predictor

PROMPTS = [
    "The weather today is",
    "git commit -m",
    "My name is",
    "https://example.com/foo",
    "I would like to",
    "To install the package, run",
    "The function returns",
    "She looked at him and",
]


def main(path: str, styles: list[str]) -> None:
    predictor = Predictor.load(path)
    styles = styles or list(predictor.styles) or [None]  # type: ignore[list-item]
    print("| prompt | " + " | ".join(f"style `{s}`" if s else "top 5 next words" for s in styles) + " |")
    print("|---" * (len(styles) + 1) + "|")
    for prompt in PROMPTS:
        cells = []
        for style in styles:
            predictor.set_style(style)
            predictor.reset()
            words = predictor.suggest(prompt + " ", 5)
            cells.append(", ".join(f"{w.word} {percent(w.probability)}" for w in words))
        print(f"| `{prompt}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: neutral-prompts.py MODEL [STYLE...]")
    main(sys.argv[1], sys.argv[2:])
