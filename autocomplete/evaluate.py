"""How good is a model: perplexity, next-word accuracy and keystroke savings.

* **Perplexity** and **top-k accuracy** are computed over every token of the text, end-of-line tokens included, each
  predicted from everything before it (the text starts after an end-of-line token, as the predictor does). With a
  style (a model trained with styles, ``eval --style``), every utterance starts with the style's token as in the
  session; those tokens are given, not predicted, so they are not counted.
* **Keystroke savings (KSR)** replays the text through the same :class:`~autocomplete.predictor.Predictor` code path
  the terminal uses. Every token counts as a word followed by one space. Before each character of a word (the first
  included) the user looks at the ``k`` suggestions for the partial word; if the word is among them, one keystroke
  selects it together with the following space; otherwise the user types the next character. A word typed to the end
  costs its length plus one for the space. A suggestion that differs from the word only in the case of its first
  letter counts as the word (the predictor capitalises sentence starts). ``KSR = 1 − keys_with / keys_without``, where ``keys_without`` counts every
  character and space. Suggestions never include special tokens, so an unknown word is always typed in full. So is a
  word longer than any suggestion could be (a base64 blob, a run of one letter): its prefixes are not looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from autocomplete.data import BatchedStream, Breaks, CorpusStats, Source, TokenIds, iter_token_lines
from autocomplete.model import LSTMLanguageModel, detach_state
from autocomplete.personal import Personal
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import EOS, Tokenizer
from autocomplete.vocab import EOS_ID, Vocab


def perplexity(loss: float) -> float:
    """``exp(loss)``: ``inf`` for a loss too large to exponentiate (a diverging run), never an OverflowError."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def shown_perplexity(loss: float) -> str:
    """The perplexity of ``loss`` as a person reads it: ``124.35``; a diverging run's ``3.84e+21`` (not 22 digits)."""
    value = perplexity(loss)
    return f"{value:.2f}" if value < 1e6 else f"{value:.3g}"


@torch.inference_mode()
def evaluate_loss(model: LSTMLanguageModel, ids: TokenIds, batch_size: int = 10, bptt: int = 70) -> tuple[float, int]:
    """(mean negative log-likelihood, tokens scored) of a 1-D id stream laid out in ``batch_size`` columns.

    ``ids`` may be a :class:`~autocomplete.data.TokenFile`: it is then read a window at a time."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if len(ids) // batch_size < 2:
        batch_size = 1
    total, count, state = 0.0, 0, None
    for _, x, y in BatchedStream(ids, batch_size, device).windows(bptt):
        features, state = model.features(x, state)
        total += float(model.loss(features, y)) * y.numel()
        count += y.numel()
        state = detach_state(state)
    model.train(was_training)
    return (total / count if count else float("nan")), count


def unigram_loss(counts: Sequence[int], ids: TokenIds, chunk: int = 1 << 20) -> float:
    """Mean negative log-likelihood of ``ids`` under word frequencies alone: the add-one smoothed unigram
    distribution of ``counts`` (a vocabulary's, indexed by id). The baseline any language model must beat: a model no
    better than this has learnt which words are common and nothing about which word comes next."""
    freq = torch.tensor(counts, dtype=torch.float64) + 1.0
    logp = (freq / freq.sum()).log()
    total, count = 0.0, 0
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        part = part if isinstance(part, Tensor) else part.read()
        total -= float(logp[part.long()].sum())
        count += part.numel()
    return total / count if count else float("nan")


Advance = Callable[[int], None]  # told how many more units (tokens, words) are done
Phases = Callable[[str, int], Advance]  # given a phase's name and its units in all, returns how to report them


def _nothing(done: int) -> None:
    pass


def styled_stream(ids: Tensor, start: Sequence[int] = (EOS_ID,)) -> tuple[Tensor, int | None]:
    """(the stream a model reads for ``ids``: ``start`` first, and with a style its token after every end of
    utterance, as the predictor reads text; the style's id or None). The style tokens are given, never scored."""
    ids = ids.long().cpu()
    style = start[1] if len(start) > 1 else None
    if style is not None:  # each EOS is followed by the style token
        after = torch.cumsum((ids == EOS_ID).long(), 0) - (ids == EOS_ID).long()  # EOS tokens before each id
        styled = torch.full((ids.numel() + int((ids == EOS_ID).sum()),), style, dtype=torch.long)
        styled[torch.arange(ids.numel()) + after] = ids
        ids = styled
    return torch.cat([torch.tensor(list(start), dtype=torch.long), ids]), style


@torch.inference_mode()
def evaluate_stream(
    model: LSTMLanguageModel,
    ids: Tensor,
    ks: Sequence[int] = (1, 3, 5),
    chunk: int = 512,
    advance: Advance = _nothing,
    start: Sequence[int] = (EOS_ID,),
) -> tuple[float, dict[int, float], int]:
    """(mean NLL, {k: top-k accuracy}, tokens) over one stream, every token predicted from all before it;
    ``advance`` is told the tokens scored after each chunk.

    ``start`` opens the text (:meth:`~autocomplete.vocab.Vocab.start_ids`); with a style, its token is put after
    every end of utterance too, as the predictor does, and is given rather than predicted: it is never scored."""
    model.eval()
    stream, style = styled_stream(ids, start)
    stream = stream.to(next(model.parameters()).device)
    total, count, state = 0.0, 0, None
    hits = dict.fromkeys(ks, 0)
    kmax = max(ks)
    for i in range(0, stream.numel() - 1, chunk):
        x = stream[i : min(i + chunk, stream.numel() - 1)]
        y = stream[i + 1 : i + 1 + x.numel()]
        features, state = model.features(x.unsqueeze(0), state)
        logp = torch.log_softmax(model.logits(features[0]).float(), dim=-1)  # (T, V)
        scored = y != style if style is not None else torch.ones_like(y, dtype=torch.bool)
        total -= float(logp.gather(1, y.unsqueeze(1)).squeeze(1)[scored].sum())
        count += int(scored.sum())
        top = torch.topk(logp, kmax, dim=-1).indices  # (T, kmax)
        match = (top == y.unsqueeze(1)) & scored.unsqueeze(1)
        for k in ks:
            hits[k] += int(match[:, :k].any(dim=1).sum())
        advance(int(scored.sum()))
    accuracy = {k: hits[k] / count if count else 0.0 for k in ks}
    return (total / count if count else float("nan")), accuracy, count


def evaluate_learning(
    model: LSTMLanguageModel, personal: Personal, ids: Tensor, surface: Sequence[str], ks: Sequence[int] = (1, 3, 5),
    advance: Advance = _nothing, style: str | None = None,
) -> tuple[float, dict[int, float], int]:
    """Like :func:`evaluate_stream`, replaying the text as its user would type it: every token is predicted with
    what ``personal`` has learned so far, and each line is learned once it is finished (``surface`` is aligned with
    ``ids``, :data:`EOS` where they hold an end of line). ``style``: each utterance is read (and learned) opened by
    that style's token, for a model trained with styles; the style tokens are read, never scored."""
    model.eval()
    total, count, state, prev, start = 0.0, 0, None, EOS_ID, 0
    hits = dict.fromkeys(ks, 0)
    kmax = max(ks)
    ids = ids.long().cpu()
    while start < len(surface):
        end = start
        while end < len(surface) and surface[end] != EOS and end - start < personal.config.segment:
            end += 1
        end = min(end + 1, len(surface))  # the line's end-of-line token with it
        y = ids[start:end]
        read, rows = personal.vocab.read_in_style(y.tolist(), style, prev == EOS_ID)
        x = torch.tensor([prev, *read[:-1]])
        with torch.inference_mode():
            features, state = model.features(x.unsqueeze(0), state, top=personal.top_layer(model))
        h = features[0] if len(rows) == len(read) else features[0][torch.tensor(rows)]  # the outputs that predict y
        if personal.active:
            logp = personal.batch_log_probs(model, h, y)  # (T, V)
        else:  # nothing learned yet: the predictor does not consult the personal layer either
            with torch.inference_mode():
                logp = torch.log_softmax(model.logits(h).float(), dim=-1)
        total -= float(logp.gather(1, y.unsqueeze(1)).sum())
        count += y.numel()
        match = torch.topk(logp, kmax, dim=-1).indices == y.unsqueeze(1)
        for k in ks:
            hits[k] += int(match[:, :k].any(dim=1).sum())
        personal.learn_tokens(surface[start:end], style=style)
        prev, start = read[-1], end
        advance(y.numel())
    accuracy = {k: hits[k] / count if count else 0.0 for k in ks}
    return (total / count if count else float("nan")), accuracy, count


@dataclass
class KeystrokeResult:
    k: int
    words: int
    keys_without: int
    keys_with: int

    @property
    def savings(self) -> float:
        return 1 - self.keys_with / self.keys_without if self.keys_without else 0.0


def _same_word(suggested: str, wanted: str) -> bool:
    """Equal, or different only in the case of the first letter (sentence-start capitalisation)."""
    return suggested == wanted or suggested[1:] == wanted[1:] and suggested[:1].lower() == wanted[:1].lower()


# A suggestion is at most this many times as long as the word it comes from, plus this many characters: case mapping
# can lengthen a letter threefold (ŉ → ʼN) and a typed prefix can be longer than its match (İ matched by i̇).
_GROWTH = 6


def _longest_word(vocab: Vocab) -> int:
    """Characters in the vocabulary's longest suggestable entry."""
    return max((len(t) for i, t in enumerate(vocab.itos) if not vocab.is_special(i)), default=0)


def _may_become(source: str, word: str) -> bool:
    """Whether a suggestion made from ``source`` could be ``word``: it is at least as long as its source, at most
    :data:`_GROWTH` times longer, and starts with the letter typed first (in either case)."""
    return len(source) <= len(word) <= _GROWTH * (len(source) + 1) and source[:1].lower() == word[:1].lower()


def _may_be_suggested(predictor: Predictor, word: str, longest: float, typed: Sequence[str]) -> bool:
    """Whether some suggestion could be ``word``, given ``longest``, the characters of the longest word in the
    vocabulary, and, with a personal state, the long words ``typed`` so far and the user's lexicon (looked at only
    for a word too long for the vocabulary). A word no suggestion can be is typed in full: looking at the
    suggestions for each of its prefixes would cost time quadratic in its length, for nothing."""
    if len(word) <= _GROWTH * (longest + 1):
        return True
    personal = predictor.personal
    if personal is None:
        return False
    return any(_may_become(own, word) for own in (*typed, *tuple(personal.counts)))


def keystroke_savings(
    predictor: Predictor, tokens: Sequence[str], k: int = 5, max_words: int | None = None,
    advance: Advance = _nothing, each: Callable[[str, int], None] | None = None,
) -> KeystrokeResult:
    """Simulate typing ``tokens`` (surface tokens, :data:`EOS` at line ends) with ``k`` suggestions; ``advance`` is
    told each word typed, ``each`` each word and the keys it took. Each line is typed as the edited text and committed
    when it ends, as in the session."""
    predictor.reset()
    words = keys_without = keys_with = 0
    line = ""
    # a predictor without a vocabulary (presage, in the benchmarks) may suggest a word of any length
    vocab = getattr(predictor, "vocab", None)
    longest = _longest_word(vocab) if vocab is not None else math.inf
    long_typed: list[str] = []  # words too long for the vocabulary, typed so far: a personal state may suggest them
    for token in tokens:
        if token == EOS:
            predictor.commit(line + "\n")
            line = ""
            if predictor.personal is not None:
                predictor.personal.wait()  # the line is learned before the next one is typed, as in a session
            continue
        if max_words is not None and words >= max_words:
            break
        words += 1
        cost = len(token) + 1
        keys_without += cost
        for typed in range(len(token) if _may_be_suggested(predictor, token, longest, long_typed) else 0):
            if any(_same_word(s.word, token) for s in predictor.suggest(line + token[:typed], k)):
                cost = typed + 1
                break
        if predictor.personal is not None and len(token) > longest:
            long_typed.append(token)
        keys_with += cost
        if each is not None:
            each(token, cost)
        line += token + " "
        advance(1)
    return KeystrokeResult(k, words, keys_without, keys_with)


@dataclass
class EvalReport:
    tokens: int
    loss: float
    perplexity: float
    accuracy: dict[int, float]
    keystrokes: list[KeystrokeResult] = field(default_factory=list)
    unknown_rate: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "loss": self.loss,
            "perplexity": self.perplexity,
            "accuracy": {f"top{k}": v for k, v in self.accuracy.items()},
            "unknown_rate": self.unknown_rate,
            "keystroke_savings": [{**asdict(r), "savings": r.savings} for r in self.keystrokes],
        }


def read_eval_text(
    sources: Sequence[Source], tokenizer: Tokenizer, vocab: Vocab, breaks: Breaks = "auto",
    stats: CorpusStats | None = None,
) -> tuple[Tensor, list[str]]:
    """(ids with EOS after every utterance, surface tokens with EOS) of the evaluation sources; ``stats`` counts
    what was read (the undecodable bytes replaced among it)."""
    ids: list[int] = []
    surface: list[str] = []
    at_start = True
    for tokens, ends in iter_token_lines(sources, tokenizer, breaks, stats if stats is not None else CorpusStats()):
        ids.extend(vocab.encode(tokens, at_start))
        surface.extend(tokens)
        if ends:
            ids.append(EOS_ID)
            surface.append(EOS)
        at_start = ends
    return torch.tensor(ids, dtype=torch.long), surface


def evaluate(
    predictor: Predictor,
    ids: Tensor,
    surface: Sequence[str],
    ks: Sequence[int] = (1, 3, 5),
    ksr_k: Sequence[int] = (5,),
    ksr_words: int | None = None,
    phases: Phases | None = None,
) -> EvalReport:
    """Perplexity, accuracy and keystroke savings of ``predictor`` on the text; with a :attr:`Predictor.personal`
    state, the text is replayed line by line and learned as it goes (the state is emptied first).

    ``phases``, if given, is called as each part of the work starts (scoring every token, then one typing simulation
    per ``k``) with its name and size, and returns where that part reports its progress."""
    start = phases or (lambda name, total: _nothing)
    personal = predictor.personal
    scoring = start("scoring", ids.numel())
    if personal is not None:
        personal.forget()
        loss, accuracy, count = evaluate_learning(predictor.model, personal, ids, surface, ks, scoring, predictor.style)
        personal.forget()
    else:
        loss, accuracy, count = evaluate_stream(
            predictor.model, ids, ks, advance=scoring, start=predictor.utterance_start()
        )
    unknown = float((ids == 0).float().mean()) if ids.numel() else 0.0
    words = sum(1 for token in surface if token != EOS)
    words = words if ksr_words is None else min(words, ksr_words)
    results = []
    for k in ksr_k:
        typing = start(f"typing with {k} suggestion{'s' if k > 1 else ''}", words)
        results.append(keystroke_savings(predictor, surface, k, ksr_words, typing))
        if personal is not None:
            personal.forget()
    return EvalReport(count, loss, perplexity(loss), accuracy, results, unknown)
