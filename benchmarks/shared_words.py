"""Perplexity of several models on the same text, counted only where every one of them knows the next word.

Perplexities of models with different vocabularies do not compare: a model with a small vocabulary folds every rare
word into ``<unk>``, which is easy to predict, so training from scratch on a small text looks better than it is. Here
each model reads the whole text (its own ``<unk>`` included, so its state is what it would be), but the average is
taken over the positions whose next token is a word of *every* model's vocabulary (end-of-line included)::

    python -m benchmarks.shared_words TEXT MODEL [MODEL ...]

(the models must share a tokenizer; the text is read as ``autocomplete eval`` reads it: a model trained with styles
reads each utterance opened by its prose style's token, which is given, never scored).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from autocomplete import checkpoint, data
from autocomplete.evaluate import read_eval_text, styled_stream
from autocomplete.model import LSTMLanguageModel
from autocomplete.styles import pick_style
from autocomplete.vocab import UNK_ID


@torch.inference_mode()
def token_nll(model: LSTMLanguageModel, ids: torch.Tensor, start: list[int], chunk: int = 256) -> torch.Tensor:
    """Negative log-likelihood of every token of ``ids`` (N,), each predicted from all before it, the stream opened
    (and each utterance after an EOS) as ``start`` says (:meth:`~autocomplete.vocab.Vocab.start_ids`)."""
    model.eval()
    stream, style = styled_stream(ids, start)
    out, state = [], None
    for i in range(0, len(stream) - 1, chunk):
        x = stream[i : i + chunk].unsqueeze(0)  # (1, T)
        y = stream[i + 1 : i + 1 + chunk][: x.size(1)]
        x = x[:, : y.numel()]
        logits, state = model(x, state)  # (1, T, V)
        logp = torch.log_softmax(logits[0].float(), -1)  # already normalised for an adaptive softmax: unchanged
        nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)
        out.append(nll if style is None else nll[y != style])
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    sources = data.resolve_sources([args.text])
    runs = []
    for path in args.models:
        lm = checkpoint.load(path)
        ids, _ = read_eval_text(sources, lm.tokenizer, lm.vocab, "auto")
        start = lm.vocab.start_ids(pick_style(None, "type", lm.vocab.styles))  # as `autocomplete eval` reads it
        runs.append((path, ids, token_nll(lm.model, ids, start)))
    if len({len(ids) for _, ids, _ in runs}) != 1:
        raise SystemExit("the models tokenise the text differently: compare models with the same tokenizer")
    known = torch.stack([ids != UNK_ID for _, ids, _ in runs]).all(0)  # (N,)
    print(f"{args.text}: {len(known):,} tokens, {int(known.sum()):,} known to every model")
    print(f"{'model':<44} {'unknown':>8} {'perplexity':>11} {'on shared words':>16}")
    for path, ids, nll in runs:
        unknown = float((ids == UNK_ID).float().mean())
        own = math.exp(float(nll.mean()))
        shared = math.exp(float(nll[known].mean()))
        print(f"{str(path):<44} {unknown:>8.1%} {own:>11.1f} {shared:>16.1f}")


if __name__ == "__main__":
    main()
