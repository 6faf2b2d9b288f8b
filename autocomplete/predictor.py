"""The stateful next-word engine behind every keystroke.

A :class:`Predictor` holds the LSTM state for the text typed so far. The text is split into *committed context*
(finished lines, conversation turns: :meth:`Predictor.commit`) and the *text being edited*, which every query passes
in full. Only complete words are fed to the network; the word under the cursor filters the suggestions.

Cost model:

* appending one word costs one LSTM step, however long the text already is;
* the state after every recent token and after every ``checkpoint_every``-th token is cached, so backspace, an edit in
  the middle or a paste recomputes only from the first changed token (from the nearest cached state before it);
* the next-word distribution of the current state is computed once and reused by every query until the text changes.

Thread safety: every public method may be called from any thread. Calls are serialised by one internal lock and each
one is atomic, so a worker thread can run queries while the UI thread commits lines. :meth:`stream` holds the lock
only while it synchronises; sampling then runs on a private copy of the state, so suggestions are not blocked by a
long generation. The network is used read-only and never trained here.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from autocomplete import checkpoint
from autocomplete.checkpoint import LanguageModel
from autocomplete.model import State, quantize_dynamic
from autocomplete.personal import Mixture, Personal, is_word
from autocomplete.sampling import make_generator, sample, validate_sampling
from autocomplete.tokenizer import EOS, SPECIALS, Detokenizer, capitalize, ends_sentence, sentence_starts
from autocomplete.vocab import EOS_ID, UNK_ID

StopAt = Literal["sentence", "utterance", "never"]
_SENTENCE_END = frozenset({".", "!", "?", "...", "…", "?!", "!?", "!!", "??"})


@dataclass(frozen=True)
class Suggestion:
    word: str  # how the word should appear here (capitalised at a sentence start)
    probability: float  # P(word | text before it) under the model; not renormalised over the partial-word matches
    token_id: int

    def completion_for(self, partial: str) -> str:
        """The characters to append after the typed ``partial`` word to complete it to this suggestion."""
        return self.word[len(partial) :]


@dataclass(frozen=True)
class Continuation:
    text: str  # what to append to the input text: the rest of the partial word, then the new words
    tokens: tuple[str, ...]  # the sampled tokens (the completed partial word first, if there was one)
    words: int  # how many of them are words (punctuation does not count)
    ended: bool  # stopped at the end of a sentence or utterance rather than at the word limit


@contextlib.contextmanager
def batch_one() -> Iterator[None]:
    """oneDNN's LSTM has a fixed cost per call that dwarfs one batch-1 step on a CPU (≈ 4×): step without it."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Predictor:
    def __init__(
        self,
        lm: LanguageModel,
        *,
        device: torch.device | str = "cpu",
        checkpoint_every: int = 32,
        keep_recent: int = 64,
        quantize: bool = False,
        personal: Personal | None = None,
    ) -> None:
        self.lm = lm
        self.personal = personal  # what the model learned from its user; None: the base model alone
        self.model = lm.model.to(device).eval()
        if quantize and torch.device(device).type == "cpu":
            self.model = quantize_dynamic(self.model)
        self.vocab = lm.vocab
        self.tokenizer = lm.tokenizer
        self.device = torch.device(device)
        self.checkpoint_every = checkpoint_every
        self.keep_recent = keep_recent
        self.steps = 0  # LSTM token steps run so far (for tests and benchmarks)
        self.context_version = 0  # changes whenever the committed context does (a key for callers' caches)
        self._lock = threading.RLock()
        self._sentence_case = self.tokenizer.case_sensitive
        self._build_prefix_index()
        self.reset()

    @classmethod
    def load(cls, path: Path | str, **kwargs: object) -> Predictor:
        return cls(checkpoint.load(path), **kwargs)  # type: ignore[arg-type]

    # ---- context ---------------------------------------------------------------------------------------------

    def reset(self, context: str = "") -> None:
        """Forget everything; optionally start from ``context`` (committed as if typed and finished)."""
        with self._lock:
            self.context_version += 1
            self._base: list[int] = [EOS_ID]  # the model reads an utterance start before the first word
            self._base_line: list[str] = []  # surface tokens of the committed text's unfinished last line
            self._ids: list[int] = [EOS_ID]
            self._states: dict[int, tuple[State, Tensor | None]] = {0: (self.model.init_state(1, self.device), None)}
            self._encoded: dict[str, tuple[list[int], list[str]]] = {}  # recent texts → (ids, current line)
            # next-token log-probabilities by position, with the personal version they were computed under
            self._logps: dict[int, tuple[int, Tensor, Mixture | None]] = {}
            self._pos = 0  # how many of ``_ids`` the current state has read
            self._sync([EOS_ID])
            if context:
                self.commit(context)

    def commit(self, text: str, learn: bool = True) -> None:
        """Append ``text`` to the committed context for good (a finished line should end with ``"\\n"``).

        With a :attr:`personal` state, what the user wrote is also learned once its line ends (``learn=False`` for
        text the user did not write, such as the model's own replies; a line that starts with a space never is)."""
        if learn and self.personal is not None:
            self.personal.learn(text)
        with self._lock:
            tokens = self.tokenizer.tokenize(text)
            self.context_version += 1
            self._base.extend(self.vocab.encode(tokens, self._base_at_start()))
            line = self._base_line + tokens
            if EOS in line:
                line = line[len(line) - line[::-1].index(EOS) :]
            self._base_line = line[-200:]
            self._encoded = {}

    @property
    def context_length(self) -> int:
        """Tokens in the committed context (the leading utterance start included)."""
        return len(self._base)

    def _base_at_start(self) -> bool:
        return self._base[-1] == EOS_ID or ends_sentence(self._base_line)

    def _encode(self, text: str, finished: bool = False) -> tuple[list[int], list[str], str]:
        """(ids of context + complete part of ``text``, surface tokens of the current line, partial word).

        ``finished`` treats the last word of ``text`` as complete even without a space after it. Tokenising is
        incremental: a text that extends a recently seen one past a space only tokenises the new part, so a keystroke
        costs the same after 10 words as after 10,000.
        """
        complete, partial = (text, "") if finished else self.tokenizer.split_partial(text)
        cached = self._encoded.get(complete)
        if cached is None:
            cached = self._extend_encoding(complete)
            self._encoded[complete] = cached
            if len(self._encoded) > 8:
                self._encoded.pop(next(iter(self._encoded)))
        return cached[0], cached[1], partial

    def _extend_encoding(self, complete: str) -> tuple[list[int], list[str]]:
        base: tuple[str, list[int], list[str]] = ("", self._base, self._base_line)
        for known, (ids, line) in self._encoded.items():
            # tokens never span whitespace, so a prefix ending in whitespace keeps its tokens
            if len(known) > len(base[0]) and complete.startswith(known) and known[-1:].isspace():
                base = (known, ids, line)
        known, ids, line = base
        tokens = self.tokenizer.tokenize(complete[len(known) :])
        at_start = ids[-1] == EOS_ID or ends_sentence(line)
        ids = ids + self.vocab.encode(tokens, at_start)
        line = line + tokens
        if EOS in line:
            line = line[len(line) - line[::-1].index(EOS) :]
        return ids, line[-200:]

    # ---- state maintenance -----------------------------------------------------------------------------------

    def _sync(self, target: list[int]) -> None:
        """Bring the state to ``target``, recomputing only from the first token that differs.

        ``self._ids`` is the longest sequence the cached states belong to; it may run ahead of the current position
        (a greedy word computed for the grey text, or the word just deleted), so going back and forth costs nothing.
        """
        common = _common_prefix(self._ids, target)
        if common < len(self._ids) and common < len(target):  # diverged: states past ``common`` are stale
            for pos in [p for p in self._states if p > common]:
                del self._states[pos]
                self._logps.pop(pos, None)
            self._ids = self._ids[:common]
        pos = max(p for p in self._states if p <= len(target))
        state, features = self._states[pos]
        with torch.inference_mode(), batch_one():
            while pos < len(target):
                end = min(len(target), (pos // self.checkpoint_every + 1) * self.checkpoint_every)
                chunk = torch.tensor([target[pos:end]], dtype=torch.long, device=self.device)
                out, state = self.model.features(chunk, state)  # (1, T, D)
                features = out[0, -1]
                self.steps += end - pos
                pos = end
                self._states[pos] = (state, features)
        if len(target) > len(self._ids):
            self._ids = list(target)
        self._pos = len(target)
        self._evict()

    def _evict(self) -> None:
        """Keep every ``checkpoint_every``-th state, the recent ones, and those ahead of the current position."""
        floor = self._pos - self.keep_recent
        for pos in [p for p in self._states if p % self.checkpoint_every and p < floor]:
            del self._states[pos]
        for pos in [p for p in self._logps if p not in self._states or abs(p - self._pos) > 4]:
            del self._logps[pos]

    def _current(self) -> tuple[State, Tensor]:
        state, features = self._states[self._pos]
        assert features is not None
        return state, features

    def _log_probs(self) -> Tensor:
        """Log-probabilities (V,) of the next token at the current position (cached for nearby positions)."""
        return self._mixture()[0]

    def _mixture(self) -> tuple[Tensor, Mixture | None]:
        """The next-token log-probabilities and, when it is active, what the personal state adds to them."""
        personal = self.personal if self.personal is not None and self.personal.active else None
        version = personal.version if personal is not None else 0
        cached = self._logps.get(self._pos)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        _, features = self._current()
        if personal is not None:
            mixture: Mixture | None = personal.log_probs(self.model, features)
            logp = mixture.logp
        else:
            mixture = None
            with torch.inference_mode():
                logp = torch.log_softmax(self.model.logits(features).float(), dim=-1)
        self._logps[self._pos] = (version, logp, mixture)
        return logp, mixture

    def _prepare(self, text: str, finished: bool = False) -> tuple[list[str], str]:
        ids, line, partial = self._encode(text, finished)
        if len(ids) != self._pos or ids != self._ids[: self._pos]:
            self._sync(ids)
        return line, partial

    # ---- queries ---------------------------------------------------------------------------------------------

    def distribution(self, text: str = "") -> Tensor:
        """Probabilities (V,) of the next token after the complete words of ``text`` (the partial word ignored)."""
        with self._lock:
            self._prepare(text)
            return self._log_probs().exp()

    def suggest(self, text: str = "", k: int = 5, words_only: bool = True) -> list[Suggestion]:
        """The ``k`` most likely next words, completing the word being typed at the end of ``text`` if any."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        with self._lock:
            line, partial = self._prepare(text)
            logp, mixture = self._mixture()
            ranked = self._rank(logp, partial, k, ends_sentence(line), words_only)
            if mixture is not None and self.personal is not None:
                ranked = self._with_own_words(ranked, mixture, partial, k, ends_sentence(line))
            return ranked

    def insertion(self, text: str, suggestion: Suggestion) -> str:
        """What to append to ``text`` so that it ends with ``suggestion``'s word.

        Completes the partial word, or starts a new word with the space the detokenizer would put there
        (``"Hello,"`` → ``" how"``, ``"Hello, "`` → ``"how"``, ``"("`` → ``"how"``).
        """
        complete, partial = self.tokenizer.split_partial(text)
        if partial:
            return suggestion.completion_for(partial)
        if not text or text[-1].isspace():
            return suggestion.word
        with self._lock:
            _, line, _ = self._encode(text)
        piece = Detokenizer(line, sentence_case=False).feed(self.vocab.itos[suggestion.token_id])
        return (" " if piece.startswith(" ") else "") + suggestion.word

    def _build_prefix_index(self) -> None:
        itos = self.vocab.itos
        entries = sorted((itos[i].lower(), i) for i in range(len(itos)) if not self.vocab.is_special(i))
        self._index_keys = [key for key, _ in entries]
        self._index_ids = torch.tensor([i for _, i in entries], dtype=torch.long)
        self._word_mask = torch.tensor([is_word(t) and not self.vocab.is_special(i) for i, t in enumerate(itos)])
        self._special_ids = torch.tensor([UNK_ID, EOS_ID])

    def candidates(self, partial: str) -> Tensor:
        """Ids of the vocabulary words that start with ``partial`` (case-insensitive); all words if it is empty."""
        if not partial:
            return self._index_ids
        key = partial.lower()
        lo = bisect.bisect_left(self._index_keys, key)
        hi = bisect.bisect_left(self._index_keys, key + "\U0010ffff", lo)
        return self._index_ids[lo:hi]

    def _display(self, token: str, at_start: bool) -> str:
        return capitalize(token) if at_start and self._sentence_case else token

    def _rank(self, logp: Tensor, partial: str, k: int, at_start: bool, words_only: bool) -> list[Suggestion]:
        ids = self.candidates(partial)
        if words_only and not partial:
            ids = ids[self._word_mask[ids]]
        if ids.numel() == 0:
            return []
        scores = logp[ids]
        top = torch.topk(scores, min(ids.numel(), 2 * k + 8))
        merged: dict[str, list[float | int]] = {}
        for score, index in zip(top.values.tolist(), ids[top.indices].tolist()):
            word = self._display(self.vocab.itos[index], at_start)
            if partial and not word.startswith(partial):
                word = partial + word[len(partial) :]  # keep what the user typed; complete the rest
            entry = merged.setdefault(word, [0.0, index])
            entry[0] += math.exp(score)
        ranked = sorted(merged.items(), key=lambda kv: -kv[1][0])
        if partial[:1].isupper() and not at_start:  # a capital mid-sentence: prefer names spelled that way
            exact = [kv for kv in ranked if self.vocab.itos[int(kv[1][1])].startswith(partial)]
            ranked = exact + [kv for kv in ranked if kv not in exact]
        return [Suggestion(word, float(p), int(i)) for word, (p, i) in ranked[:k]]

    def _with_own_words(
        self, ranked: list[Suggestion], mixture: Mixture, partial: str, k: int, at_start: bool
    ) -> list[Suggestion]:
        """Merge the user's own words outside the vocabulary into ``ranked`` by probability."""
        assert self.personal is not None
        extra = []
        for word, p in self.personal.unknown_words(mixture, partial, k):
            word = self._display(word, at_start)
            if partial and not word.startswith(partial):
                word = partial + word[len(partial) :]
            if all(s.word != word for s in ranked):
                extra.append(Suggestion(word, p, UNK_ID))
        if not extra:
            return ranked
        merged = sorted([*ranked, *extra], key=lambda s: -s.probability)
        if partial[:1].isupper() and not at_start:  # a capital mid-sentence: prefer names spelled that way
            exact = [s for s in merged if s.word.startswith(partial) and (s.token_id == UNK_ID or self.vocab.itos[s.token_id].startswith(partial))]
            merged = exact + [s for s in merged if s not in exact]
        return merged[:k]

    def stream(
        self,
        text: str = "",
        max_words: int = 10,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        stop_at: StopAt = "utterance",
        finished: bool = False,
        nonempty: bool = False,
    ) -> Iterator[tuple[str, str]]:
        """Sample a continuation of ``text``, yielding (token, text to append) as each token is drawn.

        The first token completes the partial word, if any. Temperature 0 is greedy. ``stop_at`` ends the
        continuation after a sentence-final token (``"sentence"``), at the end of the utterance (``"utterance"``:
        the end-of-line token is not yielded), or only at ``max_words`` (``"never"``: ends of line come out as
        ``"\\n"``). ``finished`` treats the last word of ``text`` as complete (a prompt rather than typing in
        progress). ``nonempty`` forbids ending before the first token (a reply must say something). Sampling never
        produces the unknown-word token.
        """
        validate_sampling(temperature, top_k, top_p)
        if max_words < 1:
            raise ValueError(f"max words must be at least 1, got {max_words}")
        with self._lock:
            line, partial = self._prepare(text, finished)
            state, _ = self._current()
            logp = self._log_probs()
            allowed = self.candidates(partial) if partial else None
        generator = generator or make_generator(seed)
        yield from self._sample_loop(
            state, logp, line, partial, text, allowed, max_words, temperature, top_k, top_p, generator, stop_at,
            nonempty,
        )

    def _sample_loop(
        self,
        state: State,
        logp: Tensor,
        line: list[str],
        partial: str,
        text: str,
        allowed: Tensor | None,
        max_words: int,
        temperature: float,
        top_k: int,
        top_p: float,
        generator: torch.Generator,
        stop_at: StopAt,
        nonempty: bool,
    ) -> Iterator[tuple[str, str]]:
        detok = Detokenizer(line, sentence_case=self._sentence_case)
        at_start = ends_sentence(line)
        needs_space = bool(text) and not text[-1].isspace() and not partial
        words = 0
        budget = 4 * max_words + 16  # tokens: punctuation and line ends do not count as words, but are bounded
        first = True
        while budget > 0:
            budget -= 1
            logits = logp.clone()
            logits[UNK_ID] = float("-inf")
            if allowed is not None:
                mask = torch.full_like(logits, float("-inf"))
                mask[allowed] = 0.0
                logits = logits + mask
                if not torch.isfinite(logits).any():
                    return  # the partial word matches nothing in the vocabulary
            if nonempty and first:
                logits[EOS_ID] = float("-inf")  # an empty continuation or reply is none at all
            index = sample(logits, temperature, top_k, top_p, generator)
            token = self.vocab.itos[index]
            if index == EOS_ID and stop_at != "never":
                return
            if allowed is not None:
                piece = self._display(token, at_start)[len(partial) :]
                detok = Detokenizer([*line, token], sentence_case=self._sentence_case)
                allowed = None
            else:
                piece = detok.feed(token)
                if not needs_space:
                    piece = piece.lstrip(" ")
            needs_space = True
            at_start = sentence_starts([token, "x"], at_start)[1]
            words += is_word(token)
            first = False
            yield token, piece
            if words >= max_words or (stop_at == "sentence" and token in _SENTENCE_END):
                return
            with torch.inference_mode(), batch_one():
                out, state = self.model.features(torch.tensor([[index]], device=self.device), state)
                logp = torch.log_softmax(self.model.logits(out[0, -1]).float(), dim=-1)

    def continuation(self, text: str = "", **kwargs: object) -> Continuation:
        """Like :meth:`stream`, collected: the whole sampled continuation at once."""
        tokens: list[str] = []
        pieces: list[str] = []
        max_words = int(kwargs.get("max_words", 10))  # type: ignore[arg-type]
        for token, piece in self.stream(text, **kwargs):  # type: ignore[arg-type]
            tokens.append(token)
            pieces.append(piece)
        words = sum(is_word(t) for t in tokens)
        return Continuation("".join(pieces), tuple(tokens), words, ended=words < max_words)
