"""Unknown-word rate of held-out texts for several vocabulary sizes built from one training corpus (how the next
default model's vocabulary size was chosen, models/README.md).

    python -m benchmarks.vocab_coverage --train RUN/data/train/prose=prose RUN/data/train/dialogue=dialogue \\
        RUN/data/train/tech=tech --heldout RUN/data/heldout/*.txt --sizes 20000 32000 40000 50000 64000 \\
        [--compare models/default.pt]

The corpus is counted once (every token kept); a vocabulary of size K is its K most frequent tokens, so a held-out
token is unknown at size K when its id is K or more. ``--compare`` adds the unknown rate under a model's own
vocabulary.
"""

from __future__ import annotations

import argparse

from autocomplete import checkpoint, data
from autocomplete.evaluate import read_eval_text
from autocomplete.tokenizer import Tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", nargs="+", required=True, help="training corpus, as for autocomplete train (=STYLE ok)")
    p.add_argument("--heldout", nargs="+", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[20000, 32000, 40000, 50000, 64000])
    p.add_argument("--breaks", default="line")
    p.add_argument("--compare", default=None, help="a model whose vocabulary is measured too")
    a = p.parse_args()
    tokenizer = Tokenizer()
    vocab = data.build_vocab(data.resolve_sources(a.train, interleave=True), tokenizer, a.breaks, None, 1)
    other = checkpoint.load(a.compare).vocab if a.compare else None
    print(f"{len(vocab):,} distinct tokens in the training text")
    for text in a.heldout:
        sources = data.resolve_sources([text])
        ids, _ = read_eval_text(sources, tokenizer, vocab, a.breaks)
        row = [f"{text}: {ids.numel():,} tokens"]
        if other is not None:
            other_ids, _ = read_eval_text(sources, tokenizer, other, a.breaks)
            row.append(f"{a.compare} {float((other_ids == 0).float().mean()):.1%}")
        row += [f"{k:,}: {float(((ids == 0) | (ids >= k)).float().mean()):.1%}" for k in a.sizes]
        print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
