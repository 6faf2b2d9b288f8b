"""One context's text and LSTM states: what a :class:`~autocomplete.predictor.Predictor` session owns.

A :class:`Context` holds the *committed context* as the single LSTM state at its end (however long it is) and the
*edited text* as tokens, word boundaries and a cache of states along it:

* :meth:`Context.locate` maps a text to a position in the edited text, tokenising only from the last word boundary
  before the first character that differs from the text seen before, and comparing only that tail;
* :meth:`Context.sync` brings the current position there, stepping only from the nearest cached state before it;
* the cache keeps the state after every recent token and after every ``checkpoint_every``-th one, least recently
  used first out, within ``cache_bytes``; the committed context's state and the current one always stay.

With a personal state (:attr:`Context.keep_line_features`), the context also keeps the LSTM output at each position
of the line being edited (its last 200 tokens at most: 2 KB each with the shipped model), which the personal cache
points at.

Not thread-safe by itself: the predictor holds its lock around every call. Only the read-only model is shared.
"""

from __future__ import annotations

import bisect
import contextlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from autocomplete.model import LSTMLanguageModel, State, TopLayer
from autocomplete.tokenizer import EOS, Tokenizer, ends_sentence, sentence_starts
from autocomplete.vocab import EOS_ID, Vocab

DEFAULT_CACHE_BYTES = 2 * 2**20  # cached states per context (the shipped model's state is 10 KB: ~200 of them)
LINE_TOKENS = 200  # surface tokens of the current line kept for sentence starts and quote pairing
_BLOCK_CHARS = 64  # the edited text is tokenised in blocks of about this size, each ending at a word boundary
_COMMIT_CHUNK = 512  # tokens per LSTM call when committing a long text
_SPACE = re.compile(r"\s+")

_onednn_lock = threading.Lock()
_onednn_users = 0
_onednn_saved = True


@contextlib.contextmanager
def batch_one() -> Iterator[None]:
    """Step without oneDNN: its LSTM has a fixed cost per call that dwarfs one batch-1 step on a CPU (≈ 4×).

    ``torch.backends.mkldnn.enabled`` is one flag for the whole process, so this counts its users: the first one in
    switches oneDNN off, the last one out restores what it was, and contexts stepping on several threads at once
    never restore it under each other's feet. (A host training in another thread meanwhile runs without oneDNN.)
    """
    global _onednn_users, _onednn_saved
    with _onednn_lock:
        if _onednn_users == 0:
            _onednn_saved = torch.backends.mkldnn.enabled  # type: ignore[assignment]  # a bool (stubs: ContextProp)
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        _onednn_users += 1
    try:
        yield
    finally:
        with _onednn_lock:
            _onednn_users -= 1
            if _onednn_users == 0:
                torch.backends.mkldnn.enabled = _onednn_saved  # type: ignore[assignment]


def _common_prefix(a: str, b: str, end: int) -> int:
    """Length of the common prefix of ``a[:end]`` and ``b`` (string compares in C; no copy when one extends the
    other, the usual case while typing)."""
    n = min(end, len(b))
    if a.startswith(b[:n] if n < len(b) else b, 0, end):
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid
    return lo


def _common_ids(a: list[int], b: list[int], a_tokens: list[str] | None = None, b_tokens: list[str] | None = None) -> int:
    """How many leading ids ``a`` and ``b`` share; given their surface tokens, how many tokens they share, id and
    surface alike: two words outside the vocabulary are one id (``<unk>``), and what the line says (its own words the
    cache offers, the word just typed) reads the surface."""
    n = 0
    for x, y in zip(a, b):
        if x != y or a_tokens is not None and b_tokens is not None and a_tokens[n] != b_tokens[n]:
            break
        n += 1
    return n


def _word_boundary(text: str, start: int, end: int) -> int:
    """The first position at or after ``start`` that ends a run of whitespace (not a lone CR: CR LF is one line
    break), or ``end``. Tokens never span whitespace, so the tokens of ``text[:p]`` stay those of any longer text."""
    while start < end:
        match = _SPACE.search(text, start, end)
        if match is None:
            return end
        if text[match.end() - 1] != "\r":
            return match.end()
        start = match.end()
    return end


def _line_of(tokens: list[str]) -> list[str]:
    """The tokens after the last end of line (the current line), at most the last ``LINE_TOKENS``."""
    tail = tokens[-LINE_TOKENS:]
    if EOS in tail:
        return tail[len(tail) - tail[::-1].index(EOS) :]
    return tail


class _Cached(NamedTuple):
    state: State
    features: Tensor  # the LSTM output (D,) at the position: what the next-token distribution is computed from
    nbytes: int


def _entry(state: State, features: Tensor) -> _Cached:
    """A cache entry in one allocation: the state's tensors and the features are views of one flat copy (fewer,
    longer-lived blocks between the step's temporary ones keep the allocator from fragmenting)."""
    parts = [t for pair in state for t in pair] + [features]
    flat = torch.cat([t.reshape(-1) for t in parts])
    packed = [v.view(t.shape) for v, t in zip(flat.split([t.numel() for t in parts]), parts)]
    state = [(packed[2 * i], packed[2 * i + 1]) for i in range(len(state))]
    return _Cached(state, packed[-1], flat.untyped_storage().nbytes())


class Context:
    """The committed context and the edited text of one session, with their LSTM states."""

    def __init__(
        self,
        model: LSTMLanguageModel,
        tokenizer: Tokenizer,
        vocab: Vocab,
        device: torch.device,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        checkpoint_every: int = 32,
        keep_recent: int = 64,
    ) -> None:
        if cache_bytes < 0 or checkpoint_every < 1 or keep_recent < 0:
            raise ValueError("cache_bytes and keep_recent must be ≥ 0 and checkpoint_every ≥ 1")
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.device = device
        self.cache_bytes = cache_bytes
        self.checkpoint_every = checkpoint_every
        self.keep_recent = keep_recent
        self.steps = 0  # LSTM token steps run so far (for tests and benchmarks)
        self.committed = 0  # tokens in the committed context, the utterance start included
        self.start: list[int] = [EOS_ID]  # the utterance-start tokens: end of line, then the style's token if any
        # the state right after the end of line that ends the committed context (None when it ends mid-line): a style
        # switch restarts the utterance from it (models with styles only)
        self._after_eos: _Cached | None = None
        # per-position values the predictor caches (its next-token distributions), dropped with their positions
        self.outputs: OrderedDict[int, Any] = OrderedDict()
        # keep the LSTM output at every position of the line being edited (for the personal cache, which points at
        # the words already written on the line): the predictor sets this when it has a personal state
        self.keep_line_features = False
        # what runs in place of the last LSTM layer (the personal state's adapted one; None: the model's own), and
        # whether any state held now was computed with such a replacement: the predictor sets and reads these
        self.top: TopLayer | None = None
        self.adapted = False

    def reset(self, start: list[int]) -> None:
        """Forget everything; the committed context becomes ``start`` (the utterance-start tokens)."""
        self.start = list(start)
        self.adapted = False
        with torch.inference_mode(), batch_one():
            state, features = self.feed(start[:1], self.model.init_state(1, self.device))
            self._after_eos = _entry(state, features) if self.vocab.styles else None
            if len(start) > 1:
                state, features = self.feed(start[1:], state)
        self.committed = len(start)
        self._line: list[str] = []  # surface tokens of the committed text's unfinished last line
        self._clear(_entry(state, features))

    def _clear(self, base: _Cached) -> None:
        """Start an empty edited text after the committed context, whose end state is ``base``."""
        self._text = ""  # the edited text the ids below belong to (the longest one seen since it last changed)
        self._tokens: list[str] = []  # its surface tokens
        self._ids: list[int] = []  # its token ids; the state at position p has read ``_ids[:p]``
        self._mark_chars: list[int] = [0]  # word boundaries in ``_text`` where tokenising may restart ...
        self._mark_ids: list[int] = [0]  # ... and how many ids come before each
        self._states: OrderedDict[int, _Cached] = OrderedDict({0: base})  # least recently used first
        self._bytes = base.nbytes
        self.outputs.clear()
        self._features: dict[int, Tensor] = {0: base.features}  # position → the output that predicts its token
        self._revision = getattr(self, "_revision", 0) + 1  # changes whenever the edited text's tokens do
        self._located: dict[tuple[str, bool], tuple[int, int, str]] = {}  # recent texts → (revision, position, partial)
        self.position = 0  # the position in the edited text the last :meth:`sync` went to

    def restart_utterance(self, start: list[int]) -> None:
        """Use ``start`` (another style's utterance start) from now on: for the utterances to come, for the edited
        text (encoded again), and for the current utterance when the committed context ends with an end of line (its
        style token is read again: one LSTM step). Lines committed before keep the style they were read in."""
        self.start = list(start)
        base = self._states[0]
        if self._after_eos is not None:
            state, features = self._after_eos.state, self._after_eos.features
            if len(start) > 1:
                with torch.inference_mode(), batch_one():
                    state, features = self.feed(start[1:], state)
            base = _entry(state, features)
        self._clear(base)

    def _encode(self, tokens: list[str], at_start: bool) -> tuple[list[int], list[str]]:
        """(ids, surface tokens aligned with them): the style token after each end of line has the end of line as
        its surface token, so the current line, sentence starts and spacing read as without styles."""
        style = self.start[1] if len(self.start) > 1 else None
        ids = self.vocab.encode(tokens, at_start, style)
        if len(ids) == len(tokens):
            return ids, tokens
        surface: list[str] = []
        for token in tokens:
            surface.append(token)
            if token == EOS:
                surface.append(EOS)
        return ids, surface

    def feed(self, ids: list[int], state: State, at: int | None = None) -> tuple[State, Tensor]:
        """Run the LSTM over ``ids`` from ``state``: (the state after them, the output at the last one).

        ``at``: the edited text's position of ``ids[0]``, to keep every output when :attr:`keep_line_features`."""
        chunk = torch.tensor([ids], dtype=torch.long, device=self.device)
        out, state = self.model.features(chunk, state, top=self.top)  # (1, T, D)
        self.adapted = self.adapted or self.top is not None
        self.steps += len(ids)
        if at is not None and self.keep_line_features:
            for j, features in enumerate(out[0].clone()):
                self._features[at + j + 1] = features
        return state, out[0, -1].clone()  # a copy: a view would keep the whole (1, T, D) output alive

    def commit(self, text: str) -> None:
        """Append ``text`` to the committed context: what the edited text already computed is reused, the rest is
        fed in batched chunks, and only the state at the end is kept. The edited text starts empty again."""
        i = bisect.bisect_right(self._mark_chars, _common_prefix(text, self._text, len(text))) - 1
        mark, n = self._mark_chars[i], self._mark_ids[i]
        line = self.line(n)
        tokens = self.tokenizer.tokenize(text[mark:])
        ids, _ = self._encode(tokens, ends_sentence(line))
        known = n + _common_ids(ids, self._ids[n : n + len(ids)])
        target = self._ids[:known] + ids[known - n :]  # the edited text's ids once committed
        # ending with an utterance start (after an end of line): keep the state after the end of line (a style switch
        # restarts the utterance there)
        restart = bool(self.vocab.styles) and target[-len(self.start) :] == self.start
        split = len(target) - (len(self.start) - 1) if restart else len(target)
        start = max(p for p in self._states if p <= split)
        entry = self._states[start]
        todo = target[start:split]
        state, features = entry.state, entry.features
        self._after_eos = None
        with torch.inference_mode(), batch_one():
            for at in range(0, len(todo), _COMMIT_CHUNK):
                state, features = self.feed(todo[at : at + _COMMIT_CHUNK], state)
            if restart:
                self._after_eos = _entry(state, features)
                if split < len(target):
                    state, features = self.feed(target[split:], state)
        self.committed += n + len(ids)
        self._line = _line_of(line + tokens)
        self._clear(_entry(state, features))

    def line(self, n: int) -> list[str]:
        """Surface tokens of the current line before position ``n`` of the edited text (committed text included)."""
        lo = max(0, n - LINE_TOKENS)
        tail = self._tokens[lo:n]
        if lo == 0 and EOS not in tail:
            tail = self._line + tail
        return _line_of(tail)

    def locate(self, text: str, finished: bool = False) -> tuple[int, str]:
        """(position of the complete part of ``text`` in the edited text, partial word).

        Re-tokenises only from the last word boundary before the first character that differs from the text seen
        before. A text whose tokens are a prefix of those seen before (the word behind the grey text's lookahead, the
        text before the cursor) leaves them, and their cached states, in place. ``finished`` treats the last word as
        complete even without a space after it.
        """
        known = self._located.get((text, finished))
        if known is not None and known[0] == self._revision:
            return known[1], known[2]
        n, partial = self._locate(text, finished)
        if len(self._located) >= 4:
            self._located.pop(next(iter(self._located)))
        self._located[(text, finished)] = (self._revision, n, partial)
        return n, partial

    def _locate(self, text: str, finished: bool) -> tuple[int, str]:
        complete, partial = (text, "") if finished else self.tokenizer.split_partial(text)
        end = len(complete)
        common = _common_prefix(text, self._text, end)
        i = bisect.bisect_right(self._mark_chars, common) - 1
        mark, n = self._mark_chars[i], self._mark_ids[i]
        if mark == end:
            return n, partial
        tokens: list[str] = []
        ids: list[int] = []
        marks: list[tuple[int, int]] = []
        at_start = ends_sentence(self.line(n))
        pos = mark
        while pos < end:
            cut = _word_boundary(text, pos + _BLOCK_CHARS, end)
            block = self.tokenizer.tokenize(text[pos:cut])
            block_ids, surface = self._encode(block, at_start)
            ids += block_ids
            tokens += surface
            at_start = sentence_starts([*block, "x"], at_start)[-1]
            if text[cut - 1].isspace() and text[cut - 1] != "\r":
                marks.append((cut, len(ids)))
            pos = cut
        same = _common_ids(ids, self._ids[n : n + len(ids)], tokens, self._tokens[n : n + len(tokens)])
        if same == len(ids) and (n + same < len(self._ids) or end <= len(self._text)):
            return n + same, partial  # a prefix of what was seen: keep the text ahead and its states
        self._truncate(n + same)
        self._revision += 1
        del self._mark_chars[i + 1 :], self._mark_ids[i + 1 :]
        self._ids += ids[same:]
        self._tokens += tokens[same:]
        for char, count in marks:
            self._mark_chars.append(char)
            self._mark_ids.append(n + count)
        self._text = complete
        return len(self._ids), partial

    def _truncate(self, n: int) -> None:
        """Forget the edited text's tokens from position ``n`` on, and the states and outputs that read them."""
        if n >= len(self._ids):
            return
        del self._ids[n:], self._tokens[n:]
        for pos in [p for p in self._states if p > n]:
            self._bytes -= self._states.pop(pos).nbytes
        for pos in [p for p in self.outputs if p > n]:
            del self.outputs[pos]
        for pos in [p for p in self._features if p > n]:
            del self._features[pos]

    def sync(self, n: int) -> None:
        """Make position ``n`` the current one, stepping only from the nearest cached state before it."""
        if n in self._states:
            self._states.move_to_end(n)
            self.position = n
            return
        pos = max(p for p in self._states if p <= n)
        self._states.move_to_end(pos)
        state = self._states[pos].state
        every = self.checkpoint_every
        with torch.inference_mode(), batch_one():
            while pos < n:
                end = min(n, (pos // every + 1) * every)
                state, features = self.feed(self._ids[pos:end], state, at=pos)
                pos = end
                entry = _entry(state, features)
                self._states[pos] = entry
                self._bytes += entry.nbytes
                if self._bytes > self.cache_bytes:
                    self.position = pos
                    self._evict()
        self.position = n
        self._evict()

    def _evict(self) -> None:
        """Thin out the states behind the recent ones to every ``checkpoint_every``-th, then drop the least recently
        used until the cache fits its budget. The committed context's state and the current one always stay."""
        floor = self.position - self.keep_recent
        every = self.checkpoint_every
        for pos in [p for p in self._states if p % every and p < floor]:
            self._bytes -= self._states.pop(pos).nbytes
        if len(self._features) > 2 * LINE_TOKENS:  # only the current line's are used
            for pos in [p for p in self._features if p < self.position - LINE_TOKENS]:
                del self._features[pos]
        while self._bytes > self.cache_bytes:
            victim = next((p for p in self._states if p and p != self.position), None)
            if victim is None:
                break
            self._bytes -= self._states.pop(victim).nbytes

    def line_entries(self, skip: int = 0) -> tuple[Tensor, Tensor, list[str]] | None:
        """(outputs (R, D), ids (R,), words) of the edited text's tokens on the current line before the current
        position, less the last ``skip``: each with the LSTM output that predicted it (committed lines are in the
        personal cache already)."""
        n = self.position
        first = max(0, n - LINE_TOKENS)
        tail = self._tokens[first:n]
        if EOS in tail:
            first += len(tail) - tail[::-1].index(EOS)
        rows = [j for j in range(first, n - skip) if j in self._features]
        if not rows:
            return None
        keys = torch.stack([self._features[j] for j in rows])
        ids = torch.tensor([self._ids[j] for j in rows], dtype=torch.long)
        return keys, ids, [self._tokens[j] for j in rows]

    def current(self) -> tuple[State, Tensor]:
        """(state, LSTM output) at the current position."""
        entry = self._states[self.position]
        return entry.state, entry.features

    @property
    def cache_size(self) -> int:
        """Bytes of LSTM states held now, the committed context's included."""
        return self._bytes
