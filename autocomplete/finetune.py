"""Fine-tuning: start from a trained model, keep its vocabulary, and grow it with the user's own frequent words.

A model trained on novels knows neither ``rustc`` nor the user's colleagues' names; training from scratch on 50 K
words of the user's notes gives a poor model. Fine-tuning keeps everything the base model knows and appends the words
of the user's text that it lacks: ids ``0 … V-1`` keep their meaning (special tokens included), the new words get ids
``V …`` at the end of the vocabulary, which puts them in the last (rarest) cluster of an adaptive or two-level
softmax — where a word seen a few times belongs.

The new rows start as the *average rare word* (the mean of the rows of the rarest words of that cluster), in the
input embedding and in every output matrix and bias: a new word starts as likely as a typical rare word, below the
median word, and never as random noise that could outrank the words the model knows. Training then moves each row
toward its own contexts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from autocomplete.checkpoint import LanguageModel
from autocomplete.errors import ConfigError
from autocomplete.model import LSTMLanguageModel
from autocomplete.tokenizer import SPECIALS, capitalize
from autocomplete.vocab import Vocab

TEMPLATE_FRACTION = 0.1  # the rarest tenth of the last softmax cluster is the template for new rows
TEMPLATE_MAX = 2000  # … at most this many words (enough for a stable mean)


def check_settings(base: LanguageModel, **given: object) -> None:
    """Refuse, in one line, a size or tokenizer option that differs from the base model's: fine-tuning keeps the
    base model's network and text handling. ``given`` holds the options the user set (``None``: not set)."""
    c, t = base.model.config, base.tokenizer.config
    has = {
        "embedding_dim": c.embedding_dim, "hidden_dim": c.hidden_dim, "layers": c.num_layers,
        "adaptive": list(c.adaptive_cutoffs), "tie": c.tie_weights, "tokenizer": t.kind, "lowercase": t.lowercase,
    }
    for name, value in given.items():
        if name not in has:
            raise ValueError(f"unknown base model setting {name!r}")
        if value is None or (list(value) if isinstance(value, tuple) else value) == has[name]:
            continue
        if name == "tie":
            flag, theirs = "--no-tie", "tied weights"
        elif name == "lowercase":
            flag, theirs = "--lowercase", "case kept"
        else:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            flag, theirs = f"--{name.replace('_', '-')} {shown}", f"{name.replace('_', ' ')} {has[name]}"
        raise ConfigError(
            f"{flag} conflicts with the base model {base.name} ({theirs}): fine-tuning keeps the base model's "
            "sizes and tokenizer; drop the option, or train from scratch without --from"
        )


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, hex: names the exact base model a fine-tuned file came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def new_words(base: Vocab, text: Vocab, min_count: int, limit: int) -> list[tuple[str, int]]:
    """The words of the user's text (counted in ``text``) that ``base`` lacks: seen at least ``min_count`` times,
    most frequent first, at most ``limit`` of them.

    A capitalised word whose lower-case form the base knows better (``Ask`` when the base has ``ask``) is left out:
    the base vocabulary folds it to that word at a sentence start, where a small text has most of its capitals.
    """
    found = []
    for word, count in zip(text.itos, text.counts):
        if text.is_special(text.stoi[word]) or word in base.stoi or count < min_count:
            continue
        lower = word.lower()
        if base.case_fold and lower != word and capitalize(lower) == word and lower in base.stoi:
            if base.counts[base.stoi[lower]] >= count:
                continue
        found.append((word, count))
    found.sort(key=lambda wc: (-wc[1], wc[0]))
    return found[:limit]


def template_ids(vocab: Vocab, cutoffs: Sequence[int]) -> Tensor:
    """Ids of the rarest words (by count) of the last softmax cluster: the model of a word seen a few times."""
    start = min(max([len(SPECIALS), *cutoffs]), len(vocab) - 1)  # special tokens are never templates
    pool = sorted(range(start, len(vocab)), key=lambda i: (vocab.counts[i], -i))
    size = max(1, min(TEMPLATE_MAX, round(len(pool) * TEMPLATE_FRACTION)))
    return torch.tensor(sorted(pool[:size]))


def grow(lm: LanguageModel, words: Sequence[tuple[str, int]], **changes: object) -> LanguageModel:
    """A copy of ``lm`` whose vocabulary ends with ``words`` (word, count in the user's text); ``changes`` are model
    settings that leave the weights' shapes alone (dropout rates) to train the copy with.

    Every tensor with a row per word (the embedding; the output weights and biases of a full, tied two-level or
    adaptive softmax) covers a suffix ``[V - rows, V)`` of the ids, so its new rows are appended and set to the mean
    of its rows for :func:`template_ids`. Everything else is copied unchanged.
    """
    old = lm.model
    config = old.config
    vocab = Vocab(
        [*lm.vocab.itos, *(w for w, _ in words)], [*lm.vocab.counts, *(c for _, c in words)], lm.vocab.case_fold,
        lm.vocab.styles,  # a styled base keeps its style tokens (ids 2...)
    )
    shaped = {"embedding_dim", "hidden_dim", "num_layers", "tie_weights", "adaptive_cutoffs", "vocab_size"}
    if shaped & set(changes):
        raise ValueError(f"fine-tuning cannot change {sorted(shaped & set(changes))}")
    grown = LSTMLanguageModel(replace(config, vocab_size=len(vocab), **changes))  # type: ignore[arg-type]
    template = template_ids(lm.vocab, config.adaptive_cutoffs)
    before = old.state_dict()
    weights: dict[str, Tensor] = {}
    for name, target in grown.state_dict().items():
        value = before[name].detach().float()
        if value.shape != target.shape:
            if value.shape[1:] != target.shape[1:] or target.size(0) - value.size(0) != len(words):
                raise ValueError(f"{name}: cannot grow {tuple(value.shape)} to {tuple(target.shape)}")
            offset = config.vocab_size - value.size(0)  # the first id this tensor has a row for
            row = value[template - offset].mean(0, keepdim=True)  # (1, ...)
            value = torch.cat([value, row.expand(len(words), *row.shape[1:])])
        weights[name] = value
    grown.load_state_dict(weights)
    grown.train(old.training)
    return LanguageModel(grown, vocab, lm.tokenizer, dict(lm.metadata), lm.path)


@dataclass(frozen=True)
class FineTuneDefaults:
    """Training settings that suit fine-tuning when the user sets none: a lower peak learning rate than training
    from scratch (the weights are already good), a short warm-up, and early stopping on the held-out tail of the
    user's text (the base model's own score on it is the first to beat)."""

    lr: float  # AdamW peak learning rate (on 50 K words of the Rust book, 3e-3 beat 1e-3; 2e-3 keeps a margin)
    warmup_steps: int  # linear warm-up
    patience: int  # validations without improvement before stopping
    eval_every: int  # steps between validations (0: at epoch ends)
    valid_fraction: float  # tail of the user's text held out for early stopping
    min_count: int  # a new word must occur this often in the user's text to be added
    batch_size: int  # parallel streams …
    bptt: int  # … of this many tokens per window


FULL_WINDOWS = (32, 35)  # batch × bptt of the shipped model's recipe


def finetune_windows(tokens: int, batch_size: int | None, bptt: int | None) -> tuple[int | None, int | None]:
    """The recipe's 32 × 35 windows when the text fills 20 of them and the user set neither; else the user's
    choice, ``None`` meaning "fit to the text as for training from scratch". A trained model needs no small batches
    to take enough steps, and a batch of 32 reads the weights once for 32 streams (several times more tokens per
    second on a CPU than the handful a small text gets fitted)."""
    if batch_size is None and bptt is None and tokens >= 20 * FULL_WINDOWS[0] * FULL_WINDOWS[1]:
        return FULL_WINDOWS
    return batch_size, bptt


def finetune_defaults(tokens: int, batch_size: int, bptt: int) -> FineTuneDefaults:
    """Defaults for fine-tuning on a text of ``tokens`` tokens read in ``batch_size`` × ``bptt`` windows."""
    valid_fraction = 0.1 if tokens < 200_000 else 0.05 if tokens < 2_000_000 else 0.02
    steps_per_epoch = max(1, int(tokens * (1 - valid_fraction)) // max(1, batch_size * bptt))
    return FineTuneDefaults(
        lr=2e-3 if tokens < 200_000 else 1e-3,  # from scratch: 5e-3 on a small text, 2e-3 on a large one
        warmup_steps=min(50, max(1, steps_per_epoch // 10)),
        patience=2,
        eval_every=steps_per_epoch // 4 if steps_per_epoch >= 400 else 0,
        valid_fraction=valid_fraction,
        min_count=1 if tokens < 20_000 else 2,
        batch_size=batch_size,
        bptt=bptt,
    )
