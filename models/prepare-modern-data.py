#!/usr/bin/env python3
"""Lay out the training mix and the held-out texts of the next default model (see models/README.md).

    python models/prepare-modern-data.py ../shared/data /work/runs/modern-v2/data

Deterministic: the same data folder gives the same files. Nothing here is random; every held-out line is named below.
Writes, under OUT:

* ``train/prose/NNNN.txt``, ``train/dialogue/NNNN.txt``, ``train/tech/NNNN.txt``: CHUNKS files per style, each one
  utterance per line (book paragraphs unwrapped onto one line), so that ``autocomplete train --interleave
  --breaks line OUT/train/prose=prose OUT/train/dialogue=dialogue OUT/train/tech=tech`` alternates the three styles
  every few thousand words all along the training stream.
* ``heldout/*.txt``: texts the model never trains on, for the model card (the first ~20,000 words of each) —
  ``novels.txt``, ``dialogues.txt``, ``tech.txt`` (Rust book, then PEPs), ``tldr.txt``.

The mix (words are whitespace-separated strings, as ``wc -w`` counts them):

* prose: the 26 training novels of ``books/`` (all but *Ethan Frome* and *The Man Who Was Thursday*, held out whole);
* dialogue: every other dialogue of ``dialogues/sgd_train.txt`` (the 1st, 3rd, 5th... — SGD is templated and its
  full size would make a third of the mix booking dialogue) and all of ``tm4_coffee_dialogs.txt``;
  ``sgd_dev.txt`` is held out whole;
* tech: ``modern/peps.txt`` without its last 3 % of paragraphs, ``rust_book.txt`` without its last 5 % of paragraphs
  (the final chapter's end), and ``tldr.txt`` without every 25th page (the 25th, 50th, ... blank-line-separated
  page), the kept tldr pages twice (terminal commands are what the model is for, and they are short).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHUNKS = 1000  # files per style: the styles alternate every ~1/1000 of their text
HELDOUT_WORDS = 20_000  # words in each held-out evaluation file (whole utterances)
NOVELS_HELDOUT = ("ethan_frome_4517.txt", "man_who_was_thursday_1695.txt")
PEPS_HELDOUT = 0.03  # tail fraction of the PEPs' paragraphs
RUST_HELDOUT = 0.05  # tail fraction of the Rust book's paragraphs
TLDR_EVERY = 25  # every 25th tldr page is held out


def blocks(path: Path) -> list[list[str]]:
    """Blank-line-separated blocks of a file, each a list of its non-empty lines."""
    out: list[list[str]] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def paragraphs(path: Path) -> list[list[str]]:
    """A hard-wrapped book's paragraphs, each unwrapped onto one line (one utterance)."""
    return [[" ".join(block)] for block in blocks(path)]


def split(items: list, parts: int) -> list[list]:
    """``items`` cut into ``parts`` consecutive runs of (nearly) equal length."""
    return [items[len(items) * i // parts : len(items) * (i + 1) // parts] for i in range(parts)]


def words(groups: list[list[str]]) -> int:
    return sum(len(line.split()) for group in groups for line in group)


def first_words(groups: list[list[str]], limit: int) -> list[list[str]]:
    """Whole groups from the start until ``limit`` words are reached."""
    out: list[list[str]] = []
    total = 0
    for group in groups:
        if total >= limit:
            break
        out.append(group)
        total += words([group])
    return out


def write(path: Path, groups: list[list[str]]) -> None:
    """One utterance per line; a blank line between groups (dialogues, pages, paragraphs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(group) for group in groups) + "\n", encoding="utf-8")


def mix(data: Path) -> tuple[dict[str, list[list[list[str]]]], dict[str, list[list[str]]]]:
    """(the training sources of each style, the held-out texts by name) from the shared data folder."""
    books = sorted(p for p in (data / "books").glob("*_[0-9]*.txt") if p.name not in NOVELS_HELDOUT)
    if not books:
        sys.exit(f"{data}/books: no novels there (give the shared data folder)")
    prose = [par for book in books for par in paragraphs(book)]

    sgd = blocks(data / "dialogues" / "sgd_train.txt")
    tm4 = blocks(data / "dialogues" / "tm4_coffee_dialogs.txt")

    peps = blocks(data / "modern" / "peps.txt")
    rust = blocks(data / "modern" / "rust_book.txt")
    tldr = blocks(data / "modern" / "tldr.txt")
    peps_cut = round(len(peps) * (1 - PEPS_HELDOUT))
    rust_cut = round(len(rust) * (1 - RUST_HELDOUT))
    tldr_kept = [page for i, page in enumerate(tldr, 1) if i % TLDR_EVERY]
    tldr_held = [page for i, page in enumerate(tldr, 1) if not i % TLDR_EVERY]
    half = len(tldr_kept) // 2
    training = {
        "prose": [prose],
        "dialogue": [sgd[::2], tm4],
        "tech": [peps[:peps_cut], rust[:rust_cut], tldr_kept, tldr_kept[half:] + tldr_kept[:half]],
    }
    held = {
        "novels": [par for name in NOVELS_HELDOUT for par in first_words(paragraphs(data / "books" / name),
                                                                          HELDOUT_WORDS // 2)],
        "dialogues": first_words(blocks(data / "dialogues" / "sgd_dev.txt"), HELDOUT_WORDS),
        "tech": rust[rust_cut:] + first_words(peps[peps_cut:], HELDOUT_WORDS - words(rust[rust_cut:])),
        "tldr": first_words(tldr_held, HELDOUT_WORDS),
    }
    return training, held


def main(data: Path, out: Path) -> None:
    training, held = mix(data)
    counts = {}
    for style, sources in training.items():
        parts = [split(source, CHUNKS) for source in sources]  # every source spread evenly over the chunks
        for i in range(CHUNKS):
            write(out / "train" / style / f"{i:04d}.txt", [g for p in parts for g in p[i]])
        counts[style] = sum(words(source) for source in sources)
    for name, groups in held.items():
        write(out / "heldout" / f"{name}.txt", groups)
    for style, n in counts.items():
        print(f"train/{style}: {n:,} words in {CHUNKS} files")
    for name, groups in held.items():
        print(f"heldout/{name}.txt: {words(groups):,} words")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: prepare-modern-data.py DATA_FOLDER OUTPUT_FOLDER")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
