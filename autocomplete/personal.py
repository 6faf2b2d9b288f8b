"""What the model learns from its user, as a layer the predictor consults (never a second engine).

Three techniques, each measured alone and together in BENCHMARKS.md ("Learning its user"):

* **Continuous cache** (Grave et al. 2017): the model's output features at the last ``window`` positions of the text
  the user committed, each paired with the word that actually followed, as it was typed. The next-word distribution
  becomes ``(1 − λ)·p_model + λ·p_cache`` with ``p_cache(w) ∝ Σ_{i: w_i = w} exp(θ·h·h_i)``. Entries keep the surface
  word, so a name outside the vocabulary typed once can be the next suggestion where its context repeats. The share λ
  starts at ``cache_weight`` and is learned from the user's text by online EM (each token's posterior responsibility
  of the cache, averaged in at ``cache_rate`` per token): text that repeats itself (commands, code) earns the cache a
  larger share than prose does.
* **Personal lexicon**: every word the user typed, with counts. Words outside the vocabulary share the model's
  probability of an unknown word, so ``Ku`` offers ``Kubernetes`` ranked on the same probability scale as the
  vocabulary's words: half of that probability (``unknown_context``) goes to the ones the cache points at here, by
  how much the contexts they were typed in resemble this one (the name typed after ``I met`` rather than the command
  typed after ``we run``), the rest to all of them in proportion to their counts.
* **Dynamic evaluation** (Krause et al. 2018): after each committed line, one gradient step on that line's loss, in
  a background thread, on two sets of float parameters kept beside the (int8-quantised) network:

  - the *output layer*: a linear map on the output features and a bias over the vocabulary,
    ``logits = decoder(h + A·h + c) + b`` (``W' = W·(I + A)``: D² + D + V floats, one D×D product per word), SGD with
    a norm limit per step;
  - the *top LSTM layer*: an adapted float copy of its weights (base + delta, 8 MB with the shipped model) updated
    with RMS-normalised steps (each weight matrix's gradient divided by the root of its recent mean square: Krause et
    al. normalise by RMS too, with statistics from the training data, which a user's machine does not have),
    re-quantised to int8 after each step for the keystroke path, so reading a new word costs the same one LSTM step
    as without it. States already computed keep the weights of their time (as in dynamic evaluation, nothing is read
    again).

  Each step also decays the deltas toward the base weights. Both are exactly removable: with no adaptation the
  predictor runs the base network untouched, and after :meth:`Personal.forget` a session whose context was read with
  the adapted layer starts its context afresh, so the base model's distribution comes back bit for bit.

Concurrency: the keystroke path reads immutable snapshots (the cache, the adapter, the lexicon index) through one
reference each and never waits for learning. The learner thread builds new snapshots and swaps the references;
:attr:`Personal.version` changes with every swap so callers can drop what they cached. The adapted weights belong to
the :class:`Personal` and so to every session of the predictor that holds it: one user, one model, one state.

Keystrokes first: the predictor marks each query in flight on the :class:`KeystrokeGate` and the learner does its work
in slices (the lexicon, the LSTM pass over a segment, the gradient step, the cache update, the index), starting none
while a query is in flight. A slice is a few tensor operations, which run without the GIL, and never a long stretch
of Python (the lexicon index is updated in place, not rebuilt), so a keystroke neither waits for the GIL nor shares
the CPU with more than the one slice it arrived during. Its learned result is the same as learning without pauses.

The state is saved per model file (keyed by the file's SHA-256) in the user data folder, atomically, as a
``torch.save`` file of tensors and plain data that is loaded with ``weights_only=True`` and validated.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import errno
import functools
import glob
import hashlib
import itertools
import json
import math
import os
import re
import queue
import shutil
import stat
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from autocomplete import checkpoint
from autocomplete.checkpoint import LanguageModel
from autocomplete.atomic import atomic_write
from autocomplete.errors import CheckpointError, ConfigError, NewerFormatError, OutputError
from autocomplete.model import Int8ProjectedLSTM, LSTMLanguageModel, State, TopLayer, quiet_notes, unfilled
from autocomplete.paths import data_dir, keep_private, private_folder
from autocomplete.signals import calm
from autocomplete.tokenizer import EOS, MAX_TOKEN_CHARS, SPECIALS, UNK, capitalize, sentence_starts
from autocomplete.vocab import EOS_ID, UNK_ID, Vocab

FORMAT = "autocomplete-personal"
FORMAT_VERSION = 2  # 2: the adapted top LSTM layer ("top") and the learned cache share; version 1 files load without
_LAMBDA_RANGE = (0.01, 0.9)  # where the learned cache share stays (a cache that once helped never vanishes)
_RMS_BETA = 0.99  # how fast the top layer's mean squared gradient follows new steps (RMSprop's decay)


@dataclass(frozen=True)
class LearnConfig:
    """How strongly and how fast the model adapts; defaults chosen on held-out text (BENCHMARKS.md)."""

    window: int = 2000  # positions of recent committed text the cache points at
    cache_weight: float = 0.1  # λ: the cache's share of the next-word distribution at first (0 switches the cache off)
    cache_rate: float = 0.003  # how fast λ follows the user's text (online EM, per token; 0: λ stays as set)
    flatness: float = 1.0  # θ: how sharply the cache prefers positions whose features resemble the current ones
    # the latest positions the cache never points at: nearby LSTM outputs resemble each other most, so the entries
    # of the last words typed would have the cache repeat them ("He was very very", "He was very much very")
    skip_recent: int = 2
    # a "none of these" position the cache may point at instead, scored this share of the current features' squared
    # norm: where no earlier position resembles the current one that much (a first line's words, when the text is
    # about something else), the cache's share goes back to the model, instead of a tenth of every prediction going
    # to the likeliest of a few poor matches; a name typed once where the context repeats still resembles it (0: off)
    sentinel: float = 0.5
    lr: float = 0.01  # dynamic evaluation: SGD learning rate of the output feature map (0: off)
    lr_bias: float = 0.1  # ... of the output bias over the vocabulary (0: off)
    lr_top: float = 0.0001  # ... RMS-normalised step of the top LSTM layer's weights (0: off)
    decay: float = 0.001  # after each step the deltas shrink by this fraction (back toward the base weights)
    clip: float = 1.0  # gradient norm limit of one step, feature map
    clip_bias: float = 10.0  # ... and bias
    lexicon: bool = True  # offer the user's own words outside the vocabulary
    lexicon_size: int = 50_000  # distinct words kept; the rarest are dropped beyond it
    unseen: float = 1.0  # pseudo-count kept for unknown words the user has not typed yet
    # the part of the model's probability of a word outside the vocabulary that goes to such words the cache points at
    # here (by how much their contexts resemble this one) rather than to the lexicon's by count
    unknown_context: float = 0.5
    segment: int = 128  # longest piece of text one learning step reads (longer lines are cut)

    def __post_init__(self) -> None:
        checks = {
            "window": self.window >= 0, "cache weight": 0.0 <= self.cache_weight < 1.0, "flatness": self.flatness >= 0,
            "skip recent": self.skip_recent >= 0, "sentinel": self.sentinel >= 0,
            "cache rate": 0.0 <= self.cache_rate <= 1.0,
            "lr": self.lr >= 0, "lr bias": self.lr_bias >= 0, "lr top": self.lr_top >= 0,
            "clip bias": self.clip_bias > 0, "decay": 0.0 <= self.decay < 1.0, "clip": self.clip > 0,
            "lexicon size": self.lexicon_size >= 0, "unseen": self.unseen > 0,
            "unknown context": 0.0 <= self.unknown_context <= 1.0, "segment": self.segment >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"learning setting {name} out of range: {getattr(self, name.replace(' ', '_'))}")

    def replace(self, **changes: object) -> LearnConfig:
        return LearnConfig(**{**asdict(self), **changes})  # type: ignore[arg-type]


def is_word(token: str) -> bool:
    """Tokens a person would call a word: a letter or digit in it, and nothing invisible (a zero-width joiner, a
    variation selector, a tag character: `qux\u200d` would be offered beside `qux`, looking the same); no longer
    than a vocabulary word may be (a base64 blob or a key is no word to offer)."""
    return (token not in SPECIALS and len(token) <= MAX_TOKEN_CHARS and any(ch.isalnum() for ch in token)
            and not any(map(_invisible, token)))


_NUMBER = re.compile(r"\d{3}")


def learnable(token: str) -> str:
    """``token`` as the personal state learns it: a number of three digits or more (a PIN, a card or phone number,
    an amount) and a token longer than any vocabulary word (a key, a base64 blob) are learned as an unknown word,
    never kept, counted or offered as themselves. The model's own vocabulary still offers its numbers."""
    return UNK if len(token) > MAX_TOKEN_CHARS or _NUMBER.search(token) else token


def _invisible(ch: str) -> bool:
    """Characters that show as nothing (Unicode's default-ignorable code points, as far as text here meets them)."""
    o = ord(ch)
    return (unicodedata.category(ch) == "Cf" or o in (0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0)
            or 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF)


def private(line: str) -> bool:
    """A line that starts with a space is never learned (as shells keep it out of their history)."""
    return line[:1].isspace()


def describe(personal: Personal, unsaved_why: str | None = None, wait: bool = True) -> str:
    """What ``personal`` holds and where it goes, in one line (``:learn``, ``%autocomplete learn``): whether it
    learns, its words and tokens, and where it is saved or why it is kept in memory only (``unsaved_why``: the
    caller's own reason not to save, such as ``--no-history``, where it has one). ``wait``: once what is queued is
    learned (else what is still queued is said)."""
    if wait:
        personal.wait()
    queued = personal.queued
    state = "on" if personal.enabled else "off (what was learned still helps)"
    if queued:
        state += f" ({queued:,} {'line' if queued == 1 else 'lines'} still to learn)"
    if personal.path is None:  # a model held in memory; or a saved state left alone (said at the start)
        where = "; kept in memory only (see the warning at the start)" if personal.warning else ""
    elif personal.saving:
        where = f"; kept in {personal.path} (saved within a minute, and at exit)"
    elif personal.hands_over and not unsaved_why:
        where = f"; handed over to another autocomplete session or program{personal.held_by}, which saves it"
        if personal.not_handed:
            where += (f" (a program hands over {HANDOVER_TOKENS:,} tokens at most: {personal.not_handed:,} more are"
                      " kept in memory only; give a long text to `autocomplete learn`)")
    else:  # not saving: the caller's choice, or a folder that cannot be written
        why = unsaved_why or f"{personal.path.parent} cannot be written"
        where = f"; kept in memory only ({why})"
    error = f"\n{personal.error}" if personal.error else ""
    return (f"learning {state}: {personal.words:,} words ({personal.new_words:,} new to the model) from "
            f"{personal.stats.tokens:,} tokens{where}{error}")


# ---- the three parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CacheSnapshot:
    keys: Tensor  # (N, D) output features before each cached word
    ids: Tensor  # (N,) the word's vocabulary id (<unk> for a word outside the vocabulary)
    surface: tuple[str, ...]  # (N,) the word as typed
    unknown_rows: Tensor  # (M,) rows whose word is outside the vocabulary
    unknown_words: tuple[str, ...] = ()  # (M,) their words as typed (built here, not per keystroke)

    @staticmethod
    def empty(dim: int) -> _CacheSnapshot:
        return _CacheSnapshot(torch.zeros(0, dim), torch.zeros(0, dtype=torch.long), (), torch.zeros(0, dtype=torch.long))

    def extended(self, keys: Tensor, ids: Tensor, surface: Sequence[str], window: int) -> _CacheSnapshot:
        keys = torch.cat([self.keys, keys.float()])[-window:] if window else self.keys[:0]
        ids = torch.cat([self.ids, ids])[-window:] if window else self.ids[:0]
        kept = (self.surface + tuple(surface))[len(self.surface) + len(surface) - keys.size(0) :]
        # offered as words: what is outside the vocabulary and a word (never a lone U+FFFD or zero-width space)
        rows = torch.tensor([r for r in (ids == UNK_ID).nonzero().squeeze(1).tolist() if is_word(kept[r])],
                            dtype=torch.long)
        return _CacheSnapshot(keys.contiguous(), ids, kept, rows, tuple(kept[r] for r in rows.tolist()))


@dataclass(frozen=True)
class _LexiconIndex:
    keys: tuple[str, ...]  # lower-cased words outside the vocabulary, sorted
    words: tuple[str, ...]  # the same words as typed
    counts: tuple[int, ...]
    top: tuple[int, ...]  # positions of the most frequent, for suggestions without a partial word
    total: float  # sum of their counts plus the pseudo-count of unseen words


@dataclass(frozen=True)
class Adapter:
    """The dynamic-evaluation deltas: ``logits = decoder(h + h·Aᵀ + c) + b``."""

    a: Tensor  # (D, D)
    c: Tensor  # (D,)
    b: Tensor  # (V,)

    @staticmethod
    def zeros(dim: int, vocab_size: int) -> Adapter:
        return Adapter(torch.zeros(dim, dim), torch.zeros(dim), torch.zeros(vocab_size))

    def features(self, h: Tensor) -> Tensor:
        return h + h @ self.a.T + self.c


def _go_on() -> None:
    """The pause of learning in the caller's own thread (``autocomplete learn``, evaluation): none."""


@dataclass(frozen=True)
class AdaptedTop:
    """The dynamically evaluated top LSTM layer: its adapted float weights and an int8 copy of them for the
    keystroke path."""

    weights: dict[str, Tensor]  # the base layer's parameters plus their deltas, by name
    layer: nn.Module = field(compare=False, repr=False)  # the base layer (what it is and its sizes)

    @staticmethod
    def of(
        layer: nn.Module, weights: dict[str, Tensor], eager: bool = True, pause: Callable[[], None] = _go_on
    ) -> AdaptedTop:
        """The adapted layer; its int8 copy made now (``eager``: the learner's, off the keystroke path, with ``pause``
        before each matrix) or when first used (``autocomplete learn``'s steps, of which only the last one's is ever
        used)."""
        top = AdaptedTop(weights, layer)
        if eager:
            top.__dict__["quantized"] = top._quantize(pause)  # what the cached property would compute
        return top

    @functools.cached_property
    def quantized(self) -> nn.Module:
        return self._quantize()

    def _quantize(self, pause: Callable[[], None] = _go_on) -> nn.Module:
        layer, weights = self.layer, self.weights
        if getattr(layer, "proj_size", 0):  # PyTorch's int8 LSTM has no projection: ours
            return Int8ProjectedLSTM(weights, pause)
        lstm = unfilled(nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True, device="meta"))
        holder = nn.Sequential(lstm)
        holder[0].load_state_dict(weights)
        return torch.ao.quantization.quantize_dynamic(holder.eval(), {nn.LSTM}, dtype=torch.qint8, inplace=True)[0]


@dataclass(frozen=True)
class Mixture:
    """The next-word distribution with everything learned, at one position."""

    logp: Tensor  # (V,) log-probabilities of the vocabulary's tokens (<unk> holds all words outside it)
    unknown: float  # the model's share for words outside the vocabulary that is spread over the lexicon by count
    cached: dict[str, float]  # the cache's probability of each word outside the vocabulary it holds, with its part
    # of the model's share for such words (``unknown_context``)
    cached_keys: tuple[tuple[str, str], ...]  # (lower-cased, as typed) of the words in ``cached``, sorted


class KeystrokeGate:
    """Keystrokes first: queries mark themselves in flight; the learner starts a slice of work only in a gap.

    The predictor wraps every query in :meth:`serving` (any thread, nested calls too); the learner calls :meth:`pause`
    before each slice, which returns once no query is in flight and none has been for ``quiet`` seconds: a typist
    leaves 50 ms or more between keys, so a slice starts early in such a gap and is usually done before the next key,
    while a burst of queries (a paste, key repeat, a program asking many at once) is not interrupted at all. While
    someone waits for the learning to finish (:meth:`Personal.wait`) there is no quiet period to wait for. The gate's
    lock is held only to count, never while anyone works, so a query never waits for the learner. ``patience`` bounds
    how long one slice is deferred, so a program that queries without ever pausing still gets its text learned."""

    def __init__(self, quiet: float = 0.02, patience: float = 10.0) -> None:
        self.quiet = quiet  # seconds without a query before the learner starts a slice
        self.patience = patience  # seconds the learner defers one slice at most
        self._idle = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._last_end = -math.inf  # when the last query ended (time.monotonic)
        self._hurry = 0  # callers waiting for the learning to finish
        self.waiting = False  # the learner is deferring a slice now (tests, benchmarks)
        self.deferrals = 0  # slices the learner deferred so far

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def serving(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._last_end = time.monotonic()
                if not self._in_flight:
                    self._idle.notify_all()

    @property
    def hurried(self) -> bool:
        """Someone waits for the learning to finish (:meth:`hurrying`)."""
        return self._hurry > 0

    @contextmanager
    def hurrying(self) -> Iterator[None]:
        """Someone waits for the learning to finish: the learner skips the quiet period (not the queries in flight)."""
        with self._idle:
            self._hurry += 1
            self._idle.notify_all()
        try:
            yield
        finally:
            with self._idle:
                self._hurry -= 1

    def pause(self) -> None:
        """Return when a slice of learning may start (see the class); at the latest after ``patience`` seconds."""
        deadline = time.monotonic() + self.patience
        with self._idle:
            while True:
                now = time.monotonic()
                calm = 0.0 if self._hurry else self._last_end + self.quiet - now
                if now >= deadline or not self._in_flight and calm <= 0:
                    break
                if not self.waiting:
                    self.deferrals += 1
                    self.waiting = True
                self._idle.wait(deadline - now if self._in_flight else min(calm, deadline - now))
            self.waiting = False



@dataclass
class Stats:
    lines: int = 0  # committed lines (or text segments) learned
    tokens: int = 0  # tokens read
    steps: int = 0  # dynamic-evaluation steps taken
    created: str = ""
    updated: str = ""


# ---- the layer ----------------------------------------------------------------------------------------------------


class Personal:
    """The personal state of one user for one model: cache, lexicon, adapted output layer, and their learner.

    ``model`` must be the float network (the learner computes gradients through it; the predictor may run an int8
    copy). :meth:`learn` queues text for the background thread; :meth:`wait` blocks until it is learned (tests,
    evaluation). ``path`` is where :meth:`save` writes, ``None`` to keep the state in memory only.
    """

    #: seconds: the learner saves at most this often (and :meth:`close` at the end); in a quiet spell it saves, and
    #: looks for what other programs handed over, this often
    save_every = 60.0
    #: how long the end of a program waits for what is still queued to be learned; the rest is handed over, to be
    #: learned by the next program that holds the state (a script that commits a book and exits ends in seconds)
    close_wait = 2.0

    def __init__(
        self,
        lm: LanguageModel,
        config: LearnConfig | None = None,
        path: Path | None = None,
        model_hash: str = "",
    ) -> None:
        self.config = config or LearnConfig()
        self.lm = lm
        self.model: LSTMLanguageModel = lm.model
        self.vocab: Vocab = lm.vocab
        self.path = path
        self.saving = True  # False: never written (a session run with --no-history); :meth:`forget` still erases it
        # the state file's lock, held from opening to closing by the one process that saves into it
        self._held = contextlib.ExitStack()
        self.held_by: str | None = None  # another process holds it (" (process 123)", or ""): this one never saves
        self.model_hash = model_hash
        self.enabled = True  # False: nothing new is learned (what was learned still counts)
        self._dim = self.model.config.output_dim
        self._top_layer: nn.Module = self.model.layers[-1]  # the base (float) top LSTM layer
        self._base_top = {name: w.detach() for name, w in self._top_layer.named_parameters()}
        self._lock = threading.RLock()  # serialises learning, forgetting and saving (never taken by queries)
        # lines to learn (tokens, style, generation) and inbox files (path, generation); None ends the learner
        self._queue: queue.Queue[tuple[list[str], str | None, int] | tuple[Path, int] | None] = queue.Queue()
        self._generation = 0  # a forget starts a new one: what was queued before is dropped, not learned
        self._erase_seen = forgotten_at(path)  # the last erase of the saved state this one has followed
        self._stopping = False  # the program ends in a hurry (Ctrl-C while it ends): learn no more, keep what is
        self._thread: threading.Thread | None = None
        # guards starting the learner thread only: never ``_lock``, which the learner holds while it learns a piece
        # (seconds for a long paste), and a line committed meanwhile must not wait for it (the session froze on Enter)
        self._thread_lock = threading.Lock()
        self._dirty = False
        self.error: str | None = None  # the last background failure, for the session to report
        self.warning: str | None = None  # why a saved state could not be used when it was opened
        self._saved_at = time.monotonic()
        self._pending_lock = threading.Lock()
        self._pending: list[str] = []  # tokens of the line being committed, learned once it ends
        self._pending_style: str | None = None  # the style they were written in
        self.gate = KeystrokeGate()  # the predictor's queries in flight, which the learner defers to
        self._line_start = True
        self._private_line = False
        self._watchers: list[Callable[[], object]] = []
        # handing over (see :func:`inbox_path`): what this process learned while another held the state, not yet
        # handed to it; the tokens handed over so far; the inbox files learned here (removed once a save holds them)
        # and those queued for learning
        self._outbox: list[tuple[int, str | None, list[str]]] = []
        self._handed = 0
        self.not_handed = 0  # tokens learned here past HANDOVER_TOKENS: kept in this program's memory only
        self._absorbed: list[Path] = []
        self._queued: set[Path] = set()
        self._closing = False
        self._deferring = False  # the program ends: what is still queued is handed over instead of learned here
        self._users = 1  # predictors of this process that share this state (:func:`open_personal`)
        self._save_lock = threading.Lock()  # a save's snapshot and its write, against an erase in between
        self._absorbing: set[Path] = set()  # inbox files being learned now (by the learner or absorb_inbox)
        self._kept: set[Path] = set()  # inbox files learned and saved that could not be removed: never learned again
        self._reset()

    def _reset(self) -> None:
        self.version = getattr(self, "version", 0) + 1
        self.epoch = getattr(self, "epoch", 0) + 1  # changes when what was learned is dropped or replaced at once
        self.counts: dict[str, int] = {}
        self.stats = Stats(created=time.strftime("%Y-%m-%d %H:%M:%S"))
        self._cache = _CacheSnapshot.empty(self._dim)
        self._adapter: Adapter | None = None
        self._top: AdaptedTop | None = None
        self._top_ms: dict[str, Tensor] = {}  # the top layer's running mean squared gradient, per weight matrix
        self._top_steps = 0
        self.cache_weight = self.config.cache_weight  # λ as learned so far (online EM)
        self._index = _LexiconIndex((), (), (), (), self.config.unseen)
        self._changed: set[str] = set()  # words whose counts changed since the index was last brought up to date
        self._state: State | None = None  # the learner's LSTM state after the text learned so far
        self._last_id = EOS_ID
        self._at_start = True
        self._in_line = False  # the text learned so far ends inside a line (for counting lines)
        self._handed_held: frozenset[str] = frozenset()  # inbox files the loaded state already holds (their names)

    # ---- queries (any thread, never blocking) ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether anything learned changes predictions (otherwise the predictor uses the base model untouched)."""
        return (
            self._adapter is not None or self._top is not None or self._cache.ids.numel() > 0 or bool(self._index.words)
        )

    def top_layer(self, model: LSTMLanguageModel) -> TopLayer | None:
        """What runs in place of ``model``'s last LSTM layer (int8 for an int8 model), or None while it is not
        adapted: the base network is then used untouched."""
        top = self._top
        if top is None:
            return None
        if not isinstance(model.layers[-1], nn.LSTM):
            return top.quantized
        return functools.partial(self._run_top, top.weights)

    def _run_top(
        self, weights: dict[str, Tensor] | None, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The float top layer with ``weights`` (None: the base ones)."""
        if weights is None:
            return self._top_layer(x, state)
        return functional_call(self._top_layer, weights, (x, state))

    @property
    def words(self) -> int:
        return len(self.counts)

    @property
    def new_words(self) -> int:
        """Distinct words the user typed that the model's vocabulary lacks."""
        return len(self._index.words)

    def log_probs(
        self, model: LSTMLanguageModel, features: Tensor, line: tuple[Tensor, Tensor, Sequence[str]] | None = None
    ) -> Mixture:
        """The adapted, cache-mixed next-word distribution after ``features`` (D,) of the (possibly int8) ``model``.

        ``line`` holds (features (R, D), ids (R,), words) of the words already written on the current line, which the
        cache points at along with the committed text (they are learned for good once the line is committed)."""
        cache, index = self._cache, self._index
        extra = None
        if line is not None:
            keys, ids, words = line
            extra = (keys.float(), ids, torch.ones(1, keys.size(0), dtype=torch.bool))
        lam = self.cache_weight
        logp, base_unknown, weights = self._mix(model, features.unsqueeze(0), self._adapter, cache, extra, lam)
        cached: dict[str, float] = {}
        share = lam * float(weights[0].sum()) if weights is not None else 0.0
        unknown = (1 - share) * float(base_unknown[0]) if index.words else 0.0
        if weights is not None:
            rows, words = cache.unknown_rows, cache.unknown_words
            if line is not None:
                unknown_here = (line[1] == UNK_ID).nonzero().squeeze(1).tolist()
                own = torch.tensor([i for i in unknown_here if is_word(line[2][i])], dtype=torch.long)
                rows = torch.cat([rows, own + cache.ids.size(0)])
                words = words + tuple(line[2][i] for i in own.tolist())
            pointed = weights[0, rows]
            total = float(pointed.sum())
            context = self.config.unknown_context * unknown / total if total > 0 else 0.0
            for word, weight in zip(words, pointed.tolist()):
                cached[word] = cached.get(word, 0.0) + weight * (lam + context)
            if context:
                unknown *= 1 - self.config.unknown_context
        return Mixture(logp[0], unknown, cached, tuple(sorted((w.lower(), w) for w in cached)))

    def batch_log_probs(self, model: LSTMLanguageModel, features: Tensor, ids: Tensor) -> Tensor:
        """Log-probabilities (T, V) after each of ``features`` (T, D) of one line whose tokens are ``ids`` (T,), each
        position pointing at the cache as it is now and at the line's tokens before it (evaluation)."""
        t = features.size(0)
        causal = self._causal(t)
        return self._mix(model, features, self._adapter, self._cache, (features.float(), ids, causal))[0]

    def _mix(
        self,
        model: LSTMLanguageModel,
        h: Tensor,
        adapter: Adapter | None,
        cache: _CacheSnapshot,
        line: tuple[Tensor, Tensor, Tensor] | None = None,
        lam: float | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(mixed log-probabilities (T, V), the model's own p(<unk>) (T,), cache weights (T, N + R) or None).

        ``line`` = (keys (R, D), ids (R,), visible (T or 1, R)): entries of the current line on top of the cache;
        ``lam``: the cache's share (default: the one learned so far)."""
        lam = self.cache_weight if lam is None else lam
        with torch.inference_mode():
            logp = self._model_log_probs(model, h, adapter)  # (T, V)
            unknown = logp[:, UNK_ID].exp()
            pointed = self._pointers(h, cache, line) if lam else None
            if pointed is None:
                return logp, unknown, None
            weights, ids, _ = pointed
            # the cache's share: λ times what its weights hold (positions with nothing to point at have none; the
            # sentinel's part goes back to the model)
            share = lam * weights.sum(1, keepdim=True)
            # log((1 − share)·p_model + λ·p_cache), in log space: the words the cache points at (≤ its window) are
            # mixed one by one, every other word is only scaled (no exp and log over the whole vocabulary)
            at = ids.expand(h.size(0), -1)
            cached = torch.zeros_like(logp).scatter_add_(1, at, weights * lam)
            mixed = logp + torch.log1p(-share)
            mixed.scatter_(1, at, torch.logaddexp(mixed.gather(1, at), cached.gather(1, at).log()))
            return mixed, unknown, weights

    @staticmethod
    def _model_log_probs(model: LSTMLanguageModel, h: Tensor, adapter: Adapter | None) -> Tensor:
        """The (adapted) model's log-probabilities (T, V) after the features ``h`` (T, D)."""
        h = h.float()
        if adapter is not None:
            return torch.log_softmax(model.logits(adapter.features(h)).float() + adapter.b, -1)
        return torch.log_softmax(model.logits(h).float(), -1)

    def _causal(self, t: int) -> Tensor:
        """(T, T): position i of a line points at the line's tokens j < i − skip_recent."""
        return torch.ones(t, t, dtype=torch.bool).tril(-1 - self.config.skip_recent)

    def _pointers(
        self, h: Tensor, cache: _CacheSnapshot, line: tuple[Tensor, Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """The cache's (weights (T, N + R), the ids they point at (N + R,), positions with anything to point at (T,)),
        or None when it is off or empty."""
        if not self.config.window or cache.ids.numel() == 0 and line is None:
            return None
        h = h.float()
        scores = self.config.flatness * (h @ cache.keys.T)  # (T, N)
        ids = cache.ids
        if line is not None:
            keys, line_ids, visible = line
            line_scores = (self.config.flatness * (h @ keys.T)).masked_fill(~visible, float("-inf"))
            scores = torch.cat([scores, line_scores], 1)
            ids = torch.cat([ids, line_ids])
        seen = torch.isfinite(scores).any(1)  # (T,) positions with anything to point at
        some = seen.unsqueeze(1)
        scores = scores.masked_fill(~some, 0.0)
        if self.config.sentinel:  # its weight is left out: what the cache does not point at goes back to the model
            none = self.config.flatness * self.config.sentinel * (h * h).sum(1, keepdim=True)
            return torch.softmax(torch.cat([scores, none], 1), 1)[:, :-1] * some, ids, seen
        return torch.softmax(scores, 1) * some, ids, seen  # (T, N + R)

    def _learn_cache_weight(self, h: Tensor, targets: Tensor, logp: Tensor | None = None) -> None:
        """Online EM for the cache's share λ: each token of the segment (features ``h`` (T, D), ``targets`` (T,))
        has a responsibility ``r = λ·q / ((1 − λ)·p_model + λ·q)`` of the cache for it (``q``: what its pointers
        give the token, plus the sentinel's part of the model's probability), and λ moves
        toward it at rate ``cache_rate`` per token: the cache gets the share the user's own text shows it earns (more
        for terminal commands and code, which repeat themselves, than for prose). ``logp``: the model's
        log-probabilities (T, V) after ``h`` when already computed (by the dynamic-evaluation step, before it)."""
        rate, lam = self.config.cache_rate, self.cache_weight
        if not rate or not lam:
            return
        t = h.size(0)
        causal = self._causal(t)
        with torch.no_grad():
            pointed = self._pointers(h, self._cache, (h.float(), targets, causal))
            if pointed is None:
                return
            weights, ids, seen = pointed
            if logp is None:
                logp = self._model_log_probs(self.model, h, self._adapter)
            p_model = logp.gather(1, targets.unsqueeze(1)).squeeze(1).exp()
            p_cache = (weights * (ids.unsqueeze(0) == targets.unsqueeze(1))).sum(1)
            # the cache's component: its pointers, and the sentinel's part, which gives back the model's distribution
            own = lam * ((1 - weights.sum(1)) * p_model + p_cache)
            r = own / ((1 - lam) * p_model + own).clamp_min(1e-30)
        for responsibility in r[seen].tolist():
            lam += rate * (responsibility - lam)
        self.cache_weight = min(max(lam, _LAMBDA_RANGE[0]), _LAMBDA_RANGE[1])

    def unknown_words(self, mixture: Mixture, partial: str, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` of the user's words outside the vocabulary that start with ``partial`` (any case), with
        their probabilities under ``mixture``, most likely first."""
        index = self._index
        scores: dict[str, float] = {}
        share = mixture.unknown / index.total if index.total else 0.0
        if self.config.lexicon:
            if partial:
                key = partial.lower()
                lo = bisect.bisect_left(index.keys, key)
                hi = bisect.bisect_left(index.keys, key + "\U0010ffff", lo)
                rows: Iterable[int] = range(lo, hi) if hi - lo <= 4 * limit + 64 else _most_frequent(index, lo, hi, limit)
            else:
                rows = index.top[:limit]
            for row in rows:
                scores[index.words[row]] = share * index.counts[row]
        key = partial.lower()
        keys = mixture.cached_keys
        for i in range(bisect.bisect_left(keys, (key,)), len(keys)):
            if not keys[i][0].startswith(key):
                break
            word = keys[i][1]
            scores[word] = scores.get(word, 0.0) + mixture.cached[word]
        return sorted(scores.items(), key=lambda kv: -kv[1])[:limit]

    # ---- learning ------------------------------------------------------------------------------------------------

    def learn(self, text: str, wait: bool = False, style: str | None = None) -> None:
        """Learn from ``text`` the user wrote, in the background, a line at a time (a line is learned once its
        newline is committed; a line that starts with a space never is). ``wait`` returns once it is learned.
        ``style``: the style it was written in, for a model trained with styles (read as the predictor read it: each
        utterance opened with its style's token).

        Does nothing while :attr:`enabled` is False."""
        if not self.enabled:
            return
        with self._pending_lock:
            if style != self._pending_style:
                self._flush()
                self._pending_style = style
            for i, piece in enumerate(text.split("\n")):
                if i:  # the previous piece ended its line
                    if not self._private_line:
                        self._pending.append(EOS)
                    self._flush()
                    self._line_start = True
                if not piece:
                    continue
                if self._line_start:
                    self._private_line = private(piece)
                    self._line_start = False
                if not self._private_line:
                    self._pending += self.lm.tokenizer.tokenize_line(piece)
            if len(self._pending) > 4 * self.config.segment:  # a very long line: learn it in pieces
                self._flush()
        if wait:
            self.wait()

    def _flush(self) -> None:
        """Queue what is pending, in pieces of a few segments: a program that ends hands over the pieces not yet
        learned, so a long paste (one line of thousands of words) never keeps it learning for many seconds at exit."""
        if self._pending:
            self._start()
            piece = 4 * self.config.segment
            for start in range(0, len(self._pending), piece):
                self._queue.put((self._pending[start : start + piece], self._pending_style, self._generation))
            self._pending = []

    def learn_tokens(self, tokens: Sequence[str], style: str | None = None, bulk: bool = False) -> None:
        """Learn surface tokens (:data:`EOS` at line ends) at once, in the calling thread (``autocomplete learn``),
        read in ``style`` (see :meth:`learn`). ``bulk``: no keystroke reads the state until all is learned, so the
        adapted top layer's int8 copy is made once at the end instead of after every step (its result is the same)."""
        with self._lock:
            self._learn(list(tokens), style=style, eager=not bulk)
            if self._top is not None:
                self._top.quantized  # noqa: B018 - made here, not at the next keystroke
            self._reindex()
        self._announce()

    def wait(self) -> None:
        """Block until everything committed so far is learned (an unfinished line included)."""
        with self._pending_lock:
            self._flush()
        if self._thread is not None:
            with self.gate.hurrying():
                self._queue.join()

    def _wait_for(self, seconds: float) -> bool:
        """:meth:`wait` for at most ``seconds``; whether all was learned."""
        with self._pending_lock:
            self._flush()
        if self._thread is None:
            return True
        deadline = time.monotonic() + seconds
        with self.gate.hurrying(), self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, name="autocomplete-learner", daemon=True)
                self._thread.start()

    def _worker(self) -> None:
        try:  # on Linux a thread is a task with its own nice value: keystrokes get the CPU first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            try:
                item = self._queue.get(timeout=self.save_every)
            except queue.Empty:  # a quiet minute: save what is unsaved, look for what other programs handed over
                self._guarded(self._tick)
                continue
            try:
                if item is None:
                    return
                self._guarded(lambda: self._work(item))
            finally:
                self._queue.task_done()

    def _guarded(self, work: Callable[[], object]) -> None:
        try:
            work()
        except _Dropped:  # forgotten, or the program ends in a hurry: the rest of this piece is not learned
            pass
        except CheckpointError as e:  # a full disk: keep learning in memory, say so once
            self.error = str(e)
        except Exception as e:  # a learning failure must never take the session down; it is reported
            self.error = f"learning stopped: {type(e).__name__}: {e}"
            self.enabled = False

    def _pauser(self, generation: int) -> Callable[[], None]:
        """The pause before each slice of learning what was queued in ``generation``: the keystroke gate's, and the
        end of it (:class:`_Dropped`) once a forget has come since or the program ends in a hurry."""

        def pause() -> None:
            if self._stopping or generation != self._generation:
                raise _Dropped
            self.gate.pause()

        return pause

    def _work(self, item: tuple[list[str], str | None, int] | tuple[Path, int]) -> None:
        if isinstance(item[0], Path):
            self._absorb(item[0], self._pauser(item[1]))
        else:
            tokens, style, generation = item
            if self._deferring:  # the program ends: the next one to hold the state learns it
                if generation == self._generation:
                    self._defer(tokens, style)
                return
            pause = self._pauser(generation)
            with self._lock:
                self._learn(tokens, pause, style)
                if self.hands_over:
                    self._defer(tokens, style)
                pause()
                self._reindex()
            self._announce()
        if time.monotonic() - self._saved_at > self.save_every:
            self._tick()

    def _defer(self, tokens: list[str], style: str | None) -> None:
        """Put ``tokens`` in the outbox, for the program that holds the state next (up to :data:`HANDOVER_TOKENS`)."""
        if self.path is None or not (self.saving or self.hands_over):  # nowhere to keep it
            return
        with self._lock:
            if self._handed + len(tokens) <= HANDOVER_TOKENS:
                self._outbox.append((time.time_ns(), style, [learnable(t) for t in tokens]))
                self._handed += len(tokens)
            else:
                self.not_handed += len(tokens)

    def _tick(self) -> None:
        if self.path is None or self._stopping:
            return
        self.gate.pause()
        self._saved_at = time.monotonic()
        self._follow_erase()
        self.save()
        if self.hands_over and not self._closing:
            self._take_over()
        self._check_inbox()

    def _follow_erase(self) -> None:
        """In the learner, while another program holds the state: if it was erased since this one opened it (``:forget``
        there), what this one learned before the erase is erased here too (it is never handed over either), so its
        suggestions stop offering what the user asked to forget. What is learned from then on is kept and handed over."""
        if self.path is None or self.saving or (erased := forgotten_at(self.path)) <= self._erase_seen:
            return
        self._erase_seen = erased
        with self._pending_lock:
            self._generation += 1  # what is queued from before is dropped
            self._pending, self._line_start, self._private_line = [], True, False
        with self._lock:
            self._reset()
            self._outbox = [item for item in self._outbox if item[0] > erased]
            self._dirty = False
        self._announce()

    def _take_over(self) -> None:
        """If the program that held the state has ended, hold it from now on: what it saved, plus what this one
        learned meanwhile (just handed over, so learned again from the inbox on top of the saved state)."""
        assert self.path is not None
        by = self.held_by
        if _hold(self, self.path) is not None:  # still held (``_hold`` noted by whom)
            return
        try:
            payload = read_state(self.path) if self.path.exists() else None
            if payload is not None:
                self.load_payload(payload, str(self.path))
            else:
                with self._lock:
                    self._reset()
        except (OSError, CheckpointError):  # unusable now: let it be, and go on handing over
            self._held.close()
            self.held_by = by
            return
        with self._lock:
            self._outbox, self._handed, self.not_handed = [], 0, 0
            self.held_by, self.saving, self.warning = None, True, None
        self._announce()

    def _learn(
        self, tokens: list[str], pause: Callable[[], None] = _go_on, style: str | None = None, eager: bool = True
    ) -> None:
        """Learn ``tokens`` in segments: lexicon counts, then per segment the cache entries and one SGD step.

        ``pause`` is called before each slice of the work (the learner thread's defers to keystrokes in flight).
        ``eager``: each step's int8 copy of the top layer is made at once, off the keystroke path (False: when first
        used, for text learned at once that no keystroke reads before the end)."""
        quiet_notes()  # ahead of a host's filters set since ("error"): a note must not stop learning
        step = self.config.segment
        # counted as it goes: a save after an interruption (Ctrl-C in `autocomplete learn`) keeps what was learned
        self._dirty = True
        self.stats.updated = time.strftime("%Y-%m-%d %H:%M:%S")
        for start in range(0, len(tokens), step):
            segment = tokens[start : start + step]
            self._learn_segment(segment, pause, style, eager)
            for token in segment:  # lines are counted as they start: a long one learned in pieces counts once
                if token == EOS:
                    self._in_line = False
                elif not self._in_line:
                    self._in_line = True
                    self.stats.lines += 1

    def _learn_segment(
        self, tokens: list[str], pause: Callable[[], None] = _go_on, style: str | None = None, eager: bool = True
    ) -> None:
        pause()
        tokens = [learnable(token) for token in tokens]
        starts = sentence_starts(tokens, self._at_start)
        ids = self.vocab.encode(tokens, self._at_start)
        read, kept = self.vocab.read_in_style(ids, style, self._last_id == EOS_ID)  # as the predictor reads it
        for token, start in zip(tokens, starts):
            if is_word(token):
                word = self._fold(token, start)
                self.counts[word] = self.counts.get(word, 0) + 1
                self._changed.add(word)
        self._at_start = sentence_starts([*tokens[-1:], "x"], starts[-1])[1] if tokens else self._at_start
        inputs = torch.tensor([[self._last_id, *read[:-1]]])
        targets = torch.tensor(ids)
        rows = torch.tensor(kept) if len(kept) != len(read) else None  # the positions that predict ``ids``
        below: list[tuple[Tensor, tuple[Tensor, Tensor]]] = []  # the top layer's input and state, for its gradient

        def top(x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
            below.append((x, state))
            return self._run_top(self._top.weights if self._top is not None else None, x, state)

        pause()
        with torch.no_grad():
            features, self._state = self.model.features(inputs, self._state, top=top)  # (1, T, D)
        h = features[0].float() if rows is None else features[0].float()[rows]
        self._last_id = read[-1]
        self.stats.tokens += len(ids)
        before: Tensor | None = None  # the log-probabilities before the step, which the cache's share is learned from
        if self.config.lr > 0 or self.config.lr_bias > 0 or self.config.lr_top > 0:
            before = self._step(h, targets, *below[0], pause=pause, rows=rows, eager=eager)
        self._learn_cache_weight(h, targets, before)
        if self.config.window:
            pause()
            self._cache = self._cache.extended(h, targets, tokens, self.config.window)

    def _step(
        self, h: Tensor, targets: Tensor, below: Tensor, top_state: tuple[Tensor, Tensor], pause: Callable[[], None] = _go_on,
        rows: Tensor | None = None, eager: bool = True,
    ) -> Tensor:
        """One dynamic-evaluation step on the segment whose features are ``h`` (T, D), computed by the top layer from
        ``below`` (1, T, H) and ``top_state``; then decay toward the base. Returns the log-probabilities (T, V) the
        step started from.

        The loss is summed over the segment's tokens, so each word the user typed moves the weights as much however
        long its line; the bias and the feature map have their own learning rates and norm limits (their gradients
        differ in scale by orders of magnitude); the top layer's steps are normalised per weight (RMSprop). ``pause``
        comes before each of its slices: the loss, its gradients, each weight matrix's update, each one's int8 copy."""
        pause()
        current = self._adapter or Adapter.zeros(self._dim, len(self.vocab))
        a, c, b = (t.clone().requires_grad_() for t in (current.a, current.c, current.b))
        config = self.config
        weights = dict(self._top.weights if self._top is not None else self._base_top)
        if config.lr_top > 0:
            weights = {name: w.detach().clone().requires_grad_() for name, w in weights.items()}
        with torch.enable_grad():
            if config.lr_top > 0:
                h = self._run_top(weights, below, top_state)[0][0].float()
                h = h if rows is None else h[rows]  # ``below`` has the style tokens' positions too
            logits = self.model.logits(h + h @ a.T + c).float() + b
            loss = F.cross_entropy(logits, targets, reduction="sum")
            inputs = (a, c, b, *weights.values()) if config.lr_top > 0 else (a, c, b)
            pause()
            ga, gc, gb, *gw = torch.autograd.grad(loss, inputs)
        before = torch.log_softmax(logits.detach(), -1)
        keep = 1.0 - self.config.decay
        self.stats.steps += 1
        if gw:
            pause()
            self._step_top(weights, dict(zip(weights, gw)), pause, eager)
        if config.lr == 0 and config.lr_bias == 0:
            return before
        with torch.no_grad():
            map_norm = float(torch.sqrt((ga * ga).sum() + (gc * gc).sum()))
            map_scale = self.config.lr * min(1.0, self.config.clip / (map_norm + 1e-12))
            bias_norm = float(gb.norm())
            bias_scale = self.config.lr_bias * min(1.0, self.config.clip_bias / (bias_norm + 1e-12))
            new = Adapter((a - map_scale * ga) * keep, (c - map_scale * gc) * keep, (b - bias_scale * gb) * keep)
        self._adapter = Adapter(*(t.detach() for t in (new.a, new.c, new.b)))
        return before

    def _step_top(
        self, weights: dict[str, Tensor], grads: dict[str, Tensor], pause: Callable[[], None] = _go_on, eager: bool = True
    ) -> None:
        """An RMS-normalised step of the top layer, decayed toward its base weights; then the int8 copy.

        Each weight matrix's step is its gradient divided by the root of that matrix's running mean squared gradient:
        the step keeps the gradient's direction (a per-weight normalisation would turn the first steps into sign
        steps of the same size for every weight, which moved a tiny model *away* from a repeated phrase) while its
        size no longer depends on how long the line was or how surprising."""
        self._top_steps += 1
        correction = 1.0 - _RMS_BETA**self._top_steps
        lr, decay = self.config.lr_top, self.config.decay
        new: dict[str, Tensor] = {}
        with torch.no_grad():
            for name, w in weights.items():
                pause()
                g = grads[name]
                ms = self._top_ms.get(name)
                square = torch.dot(g.flatten(), g.flatten()) / g.numel()  # one pass over the matrix, no copy
                ms = square * (1 - _RMS_BETA) if ms is None else ms * _RMS_BETA + square * (1 - _RMS_BETA)
                self._top_ms[name] = ms
                w = torch.add(w.detach(), g, alpha=-lr / (math.sqrt(float(ms) / correction) + 1e-8))
                new[name] = w.lerp_(self._base_top[name], decay)  # w − decay·(w − base)
        self._top = AdaptedTop.of(self._top_layer, new, eager=eager, pause=pause)

    def watch(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback`` whenever what was learned changes the answers (after each line is learned, from the
        learner's thread, and after :meth:`forget`); returns the function that stops it. ``callback`` must return at
        once (``loop.call_soon_threadsafe(event.set)``); an exception from it is ignored, never stops learning."""
        self._watchers.append(callback)

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    def _announce(self) -> None:
        """A new :attr:`version` once a line is learned in full, the lexicon index included (one per line: each new
        version costs the next keystroke a fresh distribution; an answer computed between the swaps is filed under
        the older version, never asked for again), told to the watchers."""
        self.version += 1
        for callback in list(self._watchers):
            try:
                callback()
            except Exception:  # e.g. an event loop closed as its program ended
                pass

    def _fold(self, token: str, sentence_start: bool) -> str:
        """The lexicon's spelling of ``token``: a capital that only comes from sentence position is folded away when
        the lower-case word is already known."""
        if sentence_start and token[:1].isupper():
            lower = token[:1].lower() + token[1:]
            if capitalize(lower) == token and (lower in self.counts or lower in self.vocab):
                return lower
        return token

    def _reindex(self, full: bool = False) -> None:
        """Bring the prefix index of the words outside the vocabulary up to date (and cap the lexicon).

        Only the words counted since the last call are placed (a binary search each), so a line costs the same with a
        lexicon of fifty thousand words as with ten: a full rebuild sorts the whole lexicon in Python, tens of
        milliseconds holding the GIL that a keystroke would wait for. It rebuilds when ``full`` or when capping."""
        cap = self.config.lexicon_size
        if len(self.counts) > cap:
            kept = sorted(self.counts.items(), key=lambda kv: -kv[1])[: int(cap * 0.9)]
            self.counts = dict(kept)
            full = True
        changed, self._changed = self._changed, set()
        index = self._index
        if full:
            unknown = sorted((w.lower(), w, n) for w, n in self.counts.items() if w not in self.vocab)
            keys, words, counts = [k for k, _, _ in unknown], [w for _, w, _ in unknown], [n for _, _, n in unknown]
            candidates: Iterable[int] = range(len(keys))
        else:
            keys, words, counts = list(index.keys), list(index.words), list(index.counts)
            changed = {w for w in changed if w in self.counts and w not in self.vocab}
            for word in changed:
                i, found = _position(keys, words, word)
                if found:
                    counts[i] = self.counts[word]
                else:
                    keys.insert(i, word.lower())
                    words.insert(i, word)
                    counts.insert(i, self.counts[word])
            # counts only grow between rebuilds: the new most frequent are among the old ones and the words counted now
            chosen = changed | {index.words[i] for i in index.top}
            candidates = [_position(keys, words, word)[0] for word in chosen]
        top = tuple(sorted(sorted(candidates), key=lambda i: -counts[i])[:32])
        self._index = _LexiconIndex(tuple(keys), tuple(words), tuple(counts), top, sum(counts) + self.config.unseen)

    # ---- forgetting, saving, loading -----------------------------------------------------------------------------

    def forget(self) -> None:
        """Erase everything learned (in memory and the saved file): predictions are the base model's again. What is
        queued is dropped unlearned (the learner stops within a slice)."""
        with self._pending_lock:
            self._generation += 1
            self._pending, self._line_start, self._private_line = [], True, False
        self.wait()
        if self.held_by is not None and self.path is not None and _hold(self, self.path) is None:
            self.held_by, self.saving = None, True  # the other program has ended: the state is this one's now
        if self.held_by is not None and self.path is not None:  # erasing it here would not outlive that process
            raise CheckpointError(_learning_elsewhere(self.path, self.held_by) + _QUIT_FIRST)
        with self._save_lock, self._lock:
            if self.path is not None:  # the file first: if it cannot be erased, what is in memory stays too
                if self.saving:  # the lock is ours
                    _mark_forgotten(self.path)
                    for f in _state_files(self.path):  # the damaged copies set aside hold what was learned too
                        _remove(f)
                    _clear_inbox(self.path)
                else:
                    erase_states([self.path])
            self._reset()
            self._outbox, self._absorbed = [], []
            self._queued.clear()
            self._dirty = False
        self._announce()

    @property
    def queued(self) -> int:
        """Lines (and handed-over files) queued for the learner and not yet learned."""
        return self._queue.unfinished_tasks

    @property
    def hands_over(self) -> bool:
        """Another program holds the state: what this one learns is handed to it (:func:`inbox_path`)."""
        return self.path is not None and not self.saving and self.held_by is not None

    def save(self) -> bool:
        """Write the state atomically to :attr:`path` if it changed since the last save; True if written. While
        another program holds the state, hand it what was learned since the last save instead."""
        if self.path is None:
            return False
        if not self.saving:
            return self._hand_over() if self.hands_over else False
        with self._save_lock:  # an erase waits for a save under way, and the save never writes what was erased
            with self._lock:
                if not self._dirty and not self._absorbed:
                    return False
                payload = self.to_payload() if self._dirty else None
                # the inbox files this save holds: still counted as learned (never learned again) until removed
                absorbed = list(self._absorbed)
                if payload is not None:  # a kill before their removal below must not have them learned again
                    payload["handed_held"] = [handed.name for handed in absorbed]
                self._dirty = False
            self._saved_at = time.monotonic()
            written = False
            try:
                if payload is not None:
                    private_folder(self.path.parent)
                    checkpoint.save_payload(payload, self.path, private=True)
                written = True
            except OSError as e:
                raise CheckpointError(f"{self.path}: could not save ({e.strerror or e})") from None
            finally:  # a full disk, or a signal that ends the program mid-save: the next save writes it all again
                if not written:
                    with self._lock:
                        self._dirty = True
            for handed in absorbed:  # the saved state holds them now
                try:
                    handed.unlink(missing_ok=True)
                    self._queued.discard(handed)
                except OSError:  # (a read-only inbox) never learned again by this program
                    self._kept.add(handed)
            with self._lock:
                removed = set(absorbed)
                self._absorbed = [handed for handed in self._absorbed if handed not in removed]
            if absorbed:
                with contextlib.suppress(OSError):
                    inbox_path(self.path).rmdir()  # if it is empty
        return payload is not None

    def hand_over(self, tokens: Sequence[str], style: str | None = None) -> None:
        """Hand ``tokens`` (surface tokens, :data:`EOS` at line ends) to the program that holds the state without
        learning them here (``autocomplete learn`` while a session runs); written to the inbox as they come, in files
        of :data:`HANDOVER_TOKENS` at most, the rest by :meth:`save` (or :meth:`close`)."""
        if not self.hands_over:
            raise CheckpointError("no other program holds this state: learn the text instead")
        kept = [learnable(t) for t in tokens]  # a PIN or a 17-million-character "word" is never written down
        with self._lock:
            for start in range(0, len(kept), self.config.segment):  # short items: the holder yields between them
                self._outbox.append((time.time_ns(), style, kept[start : start + self.config.segment]))
            waiting = sum(len(item[2]) for item in self._outbox)
        if waiting >= HANDOVER_TOKENS:
            self._hand_over()

    def _hand_over(self) -> bool:
        """Leave what was learned since the last hand-over in the inbox, for the program that holds the state."""
        assert self.path is not None
        with self._lock:
            items, self._outbox = self._outbox, []
        forgotten = forgotten_at(self.path)
        items = [item for item in items if item[0] > forgotten]  # an erase since: never written down again
        if not items:
            return False
        folder, start, tries = inbox_path(self.path), 0, 0
        while start < len(items):
            try:
                if folder.is_symlink():
                    raise OSError(errno.ELOOP, "a link, not a folder: not written through")
                private_folder(folder)
                payload = {"format": INBOX_FORMAT, "model": self.model_hash, "items": items[start : start + _HANDED_ITEMS]}
                data = json.dumps(payload, ensure_ascii=True).encode("ascii")
                atomic_write(folder / f"{time.time_ns()}-{os.getpid()}.json", lambda f: f.write(data), private=True)
                start += _HANDED_ITEMS
            except (OSError, OutputError) as e:
                tries += 1
                if tries < 3 and not folder.is_dir():  # the holder removed the inbox it had emptied meanwhile
                    continue
                with self._lock:
                    self._outbox = items[start:] + self._outbox
                why = e.strerror or e if isinstance(e, OSError) else e
                raise CheckpointError(f"{folder}: could not hand over what was learned ({why})") from None
        return True

    def _check_inbox(self) -> None:
        """Queue for learning what other programs handed over while this one held the state (or before it did)."""
        if self.path is None or not self.saving or self._closing:
            return
        for handed in sorted(_inbox_files(self.path)):
            if handed not in self._queued:
                self._queued.add(handed)
                self._start()
                self._queue.put((handed, self._generation))

    def absorb_inbox(self) -> None:
        """Learn what other programs handed over, now, in the calling thread (``autocomplete learn``; tests)."""
        if self.path is None or not self.saving:
            return
        for handed in sorted(_inbox_files(self.path)):
            while handed in self._absorbing:  # the learner has it: its learning counts, what it leaves is ours
                time.sleep(0.01)
            self._absorb(handed, self._pauser(self._generation), yielding=False)

    def _absorb(self, handed: Path, pause: Callable[[], None], yielding: bool = True) -> None:
        """Learn one inbox file, an item (a line, or a piece of a text) at a time. It yields between items to anyone
        who waits for the learner (``:learn``, ``:forget``, the program's end: ``yielding``) and stops for good when
        the program ends: what is left of it is written back to the file, for later or for the next program that
        holds the state. Each item is learned once."""
        with self._pending_lock:
            if (handed in self._absorbing or handed in self._absorbed or handed in self._kept or self._closing
                    or not self.saving):
                self._queued.discard(handed)
                return
            self._absorbing.add(handed)
        try:
            if not os.path.lexists(handed):  # learned and removed meanwhile, or erased
                self._queued.discard(handed)
                return
            if handed.name in self._handed_held:  # learned into the saved state; its holder ended before removing it
                try:
                    handed.unlink()
                except OSError:
                    self._kept.add(handed)
                self._queued.discard(handed)
                return
            try:
                items = read_handed(handed, self.model_hash, forgotten_at(self.path))
            except CheckpointError as e:  # (one there at the start was set aside then, and said)
                aside = _set_aside_file(handed)
                self.error = f"{e}; moved to {aside.name}" if aside is not None else f"{e}; not learned"
                self._queued.discard(handed)
                return
            for n, (_, style, tokens) in enumerate(items):
                if self._stopping or self._closing or yielding and self.gate.hurried:
                    self._leave(handed, items[n:], learned=n > 0)
                    return
                try:
                    with self._lock:
                        self._learn(tokens, pause, style)
                        pause()
                        self._reindex()
                except _Dropped:
                    if self._stopping:  # the rest (this item too: it may be cut) waits in the file
                        self._leave(handed, items[n:], learned=True)
                    raise
            with self._lock:
                self._absorbed.append(handed)
                self._dirty = self._dirty or bool(items)
            if items:
                self._announce()
        finally:
            self._absorbing.discard(handed)

    def _leave(self, handed: Path, rest: Sequence[tuple[int, str | None, list[str]]], learned: bool) -> None:
        """Stop learning ``handed`` for now: ``rest`` is written back to it (a later tick takes it up again)."""
        if learned:
            _rewrite_handed(handed, self.model_hash, rest)
            with self._lock:
                self._dirty = True
        self._queued.discard(handed)

    def close(self) -> None:
        """Learn what is queued (an unfinished line included) for up to :attr:`close_wait` seconds, hand the rest
        over to the next program that holds the state (:func:`inbox_path`, as a second program does), stop the
        learner and save. Inbox files not yet learned wait for that program too. Ctrl-C while it ends hands the rest
        over at once; a second one stops the line being learned at its next slice (a learner thread left running
        inside PyTorch while the interpreter ends would abort the process, losing it all). A state shared by
        several predictors of this process (:func:`open_personal`) is only saved until the last one closes it. One
        that is kept nowhere (no file, or not saved) stops learning after :attr:`close_wait`: nothing would keep it."""
        with _sharing:
            self._users -= 1
            shared = self._users > 0
        if shared:
            self.save()
            return
        self._closing = True
        keeps = self.path is not None and (self.saving or self.hands_over)
        try:
            if not self._wait_for(self.close_wait):
                self._deferring = True
        except KeyboardInterrupt:
            self._deferring = True
        if self._deferring and not keeps:  # nowhere to hand it: what is learned now is lost at the end anyway
            self._stopping = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            while self._thread.is_alive():
                try:
                    self._thread.join()
                except KeyboardInterrupt:  # again: the learner stops at its next slice (a fraction of a second)
                    self._stopping = self._deferring = True
        try:
            self.save()
            if self.saving and self._outbox:  # what was still queued: for the next program that holds the state
                self._hand_over()
        finally:
            if self.path is not None and self.saving:  # another process (or a reopening here) may now save into it
                self._held.close()
                self.saving = False

    def to_payload(self) -> dict[str, Any]:
        cache, adapter, top = self._cache, self._adapter, self._top
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"sha256": self.model_hash, "vocab_size": len(self.vocab), "output_dim": self._dim},
            "stats": asdict(self.stats),
            "lexicon": {"words": list(self.counts), "counts": list(self.counts.values())},
            "cache": {"keys": cache.keys.to(torch.float16), "ids": cache.ids.clone(), "surface": list(cache.surface)},
            "adapter": None if adapter is None else {"a": adapter.a.clone(), "c": adapter.c.clone(), "b": adapter.b.clone()},
            "top": None if top is None else {
                "weights": {name: w.clone() for name, w in top.weights.items()},  # base + delta, exactly as used
                "mean_square": {name: ms.clone() for name, ms in self._top_ms.items()},
                "steps": self._top_steps,
            },
            "learner": {
                "state": None if self._state is None else [[h.clone(), c.clone()] for h, c in self._state],
                "last_id": self._last_id,
                "at_start": self._at_start,
                "cache_weight": self.cache_weight,
            },
        }

    def load_payload(self, payload: dict[str, Any], where: str) -> None:
        """Take the state from a loaded file, after checking every part of it against this model: every number and
        tensor by type, range and finiteness (anything else is one :class:`CheckpointError` line naming the part, and
        nothing is taken). What this version never learns (an over-long or empty word, a number) is dropped."""
        v, d = len(self.vocab), self._dim
        model = payload.get("model")
        if not isinstance(model, dict) or not all(_whole(model.get(k)) for k in ("vocab_size", "output_dim")) \
                or model["vocab_size"] != v or model["output_dim"] != d:
            raise CheckpointError(f"{where}: personal state of another model")
        if self.model_hash and (not isinstance(model.get("sha256"), str) or model["sha256"] != self.model_hash):
            raise CheckpointError(f"{where}: personal state of another model file (its SHA-256 differs)")
        part = "lexicon"  # the part being read, named when it is unreadable in a way no check below foresaw
        try:
            lexicon = payload["lexicon"]
            words, counts = list(lexicon["words"]), list(lexicon["counts"])
            if (len(words) != len(counts) or not all(isinstance(w, str) for w in words)
                    or not all(_whole(n) and n >= 1 for n in counts)):  # (an infinite or NaN count is no whole number)
                raise _Inconsistent("lexicon")
            if len(set(words)) != len(words) or max(counts, default=1) > _MAX_COUNT:
                raise _Inconsistent("lexicon words or counts")
            part = "cache"
            cache = payload["cache"]
            keys, ids, surface = _floats(cache["keys"], "cache values"), cache["ids"], tuple(cache["surface"])
            if not _integers(ids) or not all(isinstance(s, str) for s in surface):
                raise _Inconsistent("cache contents")
            n = keys.size(0) if keys.dim() else 0
            if keys.dim() != 2 or keys.size(1) != d or ids.shape != (n,) or len(surface) != n:
                raise _Inconsistent("cache shapes")
            ids = ids.long()
            if n and (int(ids.min()) < 0 or int(ids.max()) >= v):
                raise _Inconsistent("cache contents")
            part, adapter = "adapted output layer", None
            if payload["adapter"] is not None:
                a, c, b = (_floats(payload["adapter"][k], "adapter values") for k in ("a", "c", "b"))
                if a.shape != (d, d) or c.shape != (d,) or b.shape != (v,):
                    raise _Inconsistent("adapter shapes")
                adapter = Adapter(a, c, b)
            part = "adapted top layer"
            top, mean_square, top_steps = self._load_top(payload.get("top"))  # absent from version 1 files
            part = "learner"
            learner = payload["learner"]
            state = self._load_learner_state(learner["state"])
            last_id, at_start = learner["last_id"], learner["at_start"]
            if not _whole(last_id) or not 0 <= last_id < v or not isinstance(at_start, bool):
                raise _Inconsistent("learner position")
            lam = learner.get("cache_weight", self.config.cache_weight)  # absent from version 1 files
            if not _real(lam) or not 0.0 <= lam < 1.0:  # NaN fails too
                raise _Inconsistent("cache weight")
            lam = float(lam)
            if not self.config.cache_weight or not self.config.cache_rate:  # switched off or fixed by the settings
                lam = self.config.cache_weight
            part = "statistics"
            stats = Stats(**{f.name: payload["stats"].get(f.name, Stats.__dataclass_fields__[f.name].default)
                             for f in fields(Stats)})
            counted = (stats.lines, stats.tokens, stats.steps)
            if not all(_whole(n) and n >= 0 for n in counted):
                raise _Inconsistent("stats counts")
            if not all(isinstance(t, str) and t.isprintable() and len(t) <= 40 for t in (stats.created, stats.updated)):
                raise _Inconsistent("stats times")
            held = payload.get("handed_held", [])  # absent from files saved before it was noted
            if not isinstance(held, list) or not all(isinstance(name, str) for name in held):
                raise _Inconsistent("hand-over files")
        except KeyError as e:
            raise CheckpointError(f"{where}: personal state is incomplete (no {e.args[0]!s})") from None
        except (TypeError, ValueError, AttributeError, RuntimeError, OverflowError, IndexError) as e:
            detail = str(e) if isinstance(e, _Inconsistent) else f"unreadable {part}"
            raise CheckpointError(f"{where}: personal state is incomplete or inconsistent ({detail})") from None
        # what this version never learns is dropped, not refused (the rest of what was learned is kept): words too
        # long to be words, empty or without a letter, numbers of three digits or more (states saved before those
        # rules held them); a cache entry's surface becomes <unk> as it would be learned now
        lexicon = {w: n for w, n in zip(words, counts) if is_word(w) and learnable(w) == w}
        surface = tuple(learnable(s) if s else UNK for s in surface)
        with self._lock:
            self._reset()
            self.counts = lexicon
            self._cache = _CacheSnapshot.empty(d).extended(keys, ids, surface, self.config.window)
            self._adapter = adapter
            self._top, self._top_ms, self._top_steps = top, mean_square, top_steps
            self.cache_weight = lam
            self._state, self._last_id, self._at_start = state, last_id, at_start
            self.stats = stats
            self._handed_held = frozenset(held)
            self._reindex(full=True)
            self._dirty = False

    def _load_top(self, saved: Any) -> tuple[AdaptedTop | None, dict[str, Tensor], int]:
        """(the adapted top layer, its mean squared gradients, its steps) from a file's ``top`` entry, checked."""
        if saved is None:
            return None, {}, 0
        weights, mean_square, steps = dict(saved["weights"]), dict(saved["mean_square"]), saved["steps"]
        base = self._base_top
        if set(weights) != set(base) or not set(mean_square) <= set(base) or not _whole(steps) or steps < 0:
            raise _Inconsistent("top layer parameters")
        weights = {name: _floats(weights[name], "top layer shapes or values") for name in base}
        if any(t.shape != base[name].shape for name, t in weights.items()):
            raise _Inconsistent("top layer shapes or values")
        mean_square = {name: _floats(t, "top layer mean squares", None) for name, t in mean_square.items()}
        if any(t.shape != () or float(t) < 0 for t in mean_square.values()):
            raise _Inconsistent("top layer mean squares")
        return AdaptedTop.of(self._top_layer, weights), mean_square, steps

    def _load_learner_state(self, saved: Any) -> State | None:
        """The learner's LSTM state from a file's ``learner.state`` entry, checked against the model."""
        if saved is None:
            return None
        state = [(_floats(h, "learner state values"), _floats(c, "learner state values")) for h, c in saved]
        if [(h.shape, c.shape) for h, c in state] != [(h.shape, c.shape) for h, c in self.model.init_state(1)]:
            raise _Inconsistent("learner state shapes")
        return state

    def file_size(self) -> int:
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except OSError:
            return 0


class _Inconsistent(ValueError):
    """A part of a saved personal state that fails its check (its message names the part)."""


def _whole(value: object) -> bool:
    """A whole number as a state file holds one: an int, not True or False (nor a float, a string or a tensor)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: object) -> bool:
    """A real number as a state file holds one: an int or a float (not True or False)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _floats(value: object, what: str, bound: float | None = checkpoint.MAX_WEIGHT) -> Tensor:
    """``value`` as float32, if it is a dense tensor of real floating-point numbers, all finite (NaN or infinity
    would spread through the next learning step to everything learned) and, with ``bound``, none beyond it in size
    (the model's own bound on weights: a step from such values leaves float32's range); :class:`_Inconsistent`
    (``what``) else. A complex or integer tensor is refused, not cast (a cast drops the imaginary part, with
    PyTorch's warning)."""
    if not isinstance(value, Tensor) or value.layout != torch.strided or not value.is_floating_point():
        raise _Inconsistent(what)
    largest = float(torch.linalg.vector_norm(value, math.inf)) if value.numel() else 0.0  # NaN or inf if any is
    if not math.isfinite(largest) or bound is not None and largest > bound:
        raise _Inconsistent(what)
    return value.float()


def _integers(value: object) -> bool:
    """Whether ``value`` is a dense tensor of integers (not bools, floats or complex numbers)."""
    return (isinstance(value, Tensor) and value.layout == torch.strided and not value.is_floating_point()
            and not value.is_complex() and value.dtype != torch.bool)


_MAX_COUNT = 10**12  # more times than anyone types a word: a count beyond it is a damaged file


def _position(keys: list[str], words: list[str], word: str) -> tuple[int, bool]:
    """Where ``word`` is, or belongs, in the index's lists sorted by (lower-cased, as typed); whether it is there."""
    key = word.lower()
    i = bisect.bisect_left(keys, key)
    while i < len(keys) and keys[i] == key and words[i] < word:
        i += 1
    return i, i < len(keys) and keys[i] == key and words[i] == word


def _most_frequent(index: _LexiconIndex, lo: int, hi: int, limit: int) -> list[int]:
    return sorted(range(lo, hi), key=lambda i: -index.counts[i])[:limit]


# ---- where it lives -------------------------------------------------------------------------------------------


def model_hash(path: Path) -> str:
    """The SHA-256 of a model file: the identity its personal state is saved under."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    return digest.hexdigest()


def state_path(lm: LanguageModel, digest: str) -> Path:
    """``personal/<model name>-<hash prefix>.pt`` in the user data folder."""
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in lm.name)[:40] or "model"
    return data_dir() / "personal" / f"{name}-{digest[:16]}.pt"


def read_state(path: Path) -> dict[str, Any]:
    """Load a personal state file safely; one-line :class:`CheckpointError` for every way it can be wrong."""
    return checkpoint.read_payload(path, kind="personal state", fmt=FORMAT, version=FORMAT_VERSION)


def open_personal(
    lm: LanguageModel, config: LearnConfig | None = None, save: bool = True
) -> tuple[Personal, str | None]:
    """The personal state of ``lm`` from the user data folder (empty if none is saved), and a warning if what is
    learned cannot be saved or the saved file could not be used.

    One process at a time saves into a state: it holds the file's lock from here to :meth:`Personal.close` (with
    ``save``). Another process (a second session, ``autocomplete learn``) reads what was saved and keeps what it
    learns in memory, so neither undoes the other's learning nor a ``forget``; the same process opening the state
    again takes it over from its earlier :class:`Personal`. A damaged file is moved aside as
    ``*.corrupt…`` and learning starts afresh; one that cannot be read, or that a newer version wrote, is left alone
    (and nothing learned now is saved over it).

    A model held only in memory (no file) gets a state that is never saved; so does any with ``save=False`` (what was
    saved before is used, what is learned now is kept in memory only, and nothing in the folder is written or moved).
    """
    if lm.path is None:
        return Personal(lm, config), None
    digest = model_hash(lm.path)
    path = state_path(lm, digest)
    if save and (mine := _open_here(path, lm, config)) is not None:
        return mine, None  # said when it was opened
    personal = Personal(lm, config, path, digest)
    personal.saving = save
    warning = _hold(personal, path) if save else None
    try:
        exists = path.exists()
    except OSError as e:  # a folder that cannot be searched: the model still works, as with an unreadable file
        personal = _unsaved(personal, lm, config, digest)
        personal.warning = warning = f"{path.parent}: cannot read ({e.strerror or e}); what is learned is not saved"
        _open.add(personal)
        return personal, warning
    if exists:
        try:
            personal.load_payload(read_state(path), str(path))
        except NewerFormatError as e:
            personal = _unsaved(personal, lm, config, digest)
            warning = f"{e}; left as it is: what is learned now is not saved"
        except CheckpointError as e:
            warning, moved = _set_aside(personal, path, e)  # load_payload takes nothing from a file it refuses
            if not moved:
                personal = _unsaved(personal, lm, config, digest)
    if personal.saving and (damaged := _set_aside_damaged(personal)) is not None:
        warning = f"{warning}; {damaged}" if warning else damaged
    personal.warning = warning
    _open.add(personal)
    if personal.saving:  # what other programs handed over, now and as it comes
        if exists:
            keep_private(path)
        personal._start()
        personal._check_inbox()
    return personal, warning


def _hold(personal: Personal, path: Path) -> str | None:
    """Take the state file's lock for ``personal`` (until it is closed); why not, if it cannot be had."""
    from autocomplete.atomic import LockedError, exclusive_lock, remove_leftovers
    from autocomplete.errors import OutputError

    try:
        private_folder(path.parent.parent)  # the data folder (the history's too), then its personal/
        private_folder(path.parent)
        if not os.access(path.parent, os.W_OK):
            raise OutputError(f"{path.parent}: not writable")
        personal._held.enter_context(exclusive_lock(path, "another autocomplete process"))
        remove_leftovers(path)  # copies of the state a kill cut short mid-save: what was learned, never read again
    except LockedError as e:
        personal.saving, personal.held_by = False, e.by
        return _learning_elsewhere(path, e.by) + ": what is learned here is handed over to it"
    except OSError as e:  # a read-only home, a file where the folder should be
        personal.saving = False
        return f"{e.filename or path.parent}: {e.strerror or e}: what is learned is not saved"
    except OutputError as e:  # not writable; something that is not a lock file at the lock's place (a link)
        personal.saving = False
        return f"{e}: what is learned is not saved"
    return None


def _open_here(path: Path, lm: LanguageModel, config: LearnConfig | None) -> Personal | None:
    """The state ``path`` as this process holds it already, for another load of the same model file (``:model``
    with the same model or a copy; a program that calls :func:`autocomplete.load` twice; a shell plugin beside it):
    shared, so that both predictors learn into it and nothing either learns is lost. Not where they would learn
    differently (other settings, another device): the new one then hands what it learns over, as a second program
    does."""
    wanted = config or LearnConfig()
    with _sharing:
        for mine in list(_open):
            if (mine.path == path and mine.saving and not mine._closing and mine._users > 0 and mine.config == wanted
                    and _device(mine.model) == _device(lm.model)):
                mine._users += 1
                return mine
    return None


def _device(model: nn.Module) -> torch.device:
    return next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device


def _learning_elsewhere(path: Path, by: str) -> str:
    return f"another autocomplete session or program{by} is learning into {path}"


def _unsaved(personal: Personal, lm: LanguageModel, config: LearnConfig | None, digest: str) -> Personal:
    """A fresh state that is never saved, in place of ``personal`` (whose lock is let go)."""
    personal._held.close()
    fresh = Personal(lm, config, None, digest)
    fresh.saving = False
    return fresh


def _set_aside(personal: Personal, path: Path, error: CheckpointError) -> tuple[str, bool]:
    """Move a damaged state file aside (under a name no earlier one has) if ``personal`` may write: (the warning,
    whether it was moved and learning starts afresh in its place)."""
    try:  # (without waiting: opening a named pipe there would wait for a writer for ever)
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0))):
            pass
    except OSError as e:  # unreadable, not damaged: never moved, never saved over
        return f"{path}: cannot read ({e.strerror or e}); what is learned now is not saved", False
    if not personal.saving:
        return f"{error}; not used", False
    aside = _aside(path)
    try:
        path.replace(aside)
    except OSError:
        return f"{error}; what is learned now is not saved", False
    return f"{error}; moved to {aside.name}, starting afresh", True


def _aside(path: Path) -> Path:
    """Where a damaged ``path`` goes: ``*.corrupt-DATE``, under a name no earlier one has."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in itertools.count(2):
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return aside


# ---- handing over: what a program learns while another holds the state ------------------------------------------

INBOX_FORMAT = "autocomplete-handed-over-1"
HANDOVER_TOKENS = 200_000  # tokens one program hands over at most (more is a text to `autocomplete learn`)
_HANDED_BYTES = 16 << 20  # an inbox file larger than this is damage
_HANDED_ITEMS = 256  # items (lines, or pieces of a text) per inbox file: a few MB at most
_HANDED_TOKEN_CHARS = 1000  # a longer token is damage (what a program hands over is cut to this)


def inbox_path(path: Path) -> Path:
    """The folder beside the state ``path`` where programs that could not hold it (a second session, a second
    shell) leave what they learned, a file per minute of learning; the program that holds the state learns those
    files as they come (and at its start), and removes each once a save of the state holds it. So no learning is
    lost to the one-learner rule, and none is learned twice."""
    return path.with_name(path.name + ".inbox")


def forgotten_path(path: Path) -> Path:
    """The file beside the state ``path`` that says when it was last erased (ns since the epoch): what another
    program learned before then and hands over later is dropped, so an erase is never undone."""
    return path.with_name(path.name + ".forgotten")


def forgotten_at(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return int(forgotten_path(path).read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return 0


def read_handed(path: Path, model_hash: str, forgotten: int = 0) -> list[tuple[int, str | None, list[str]]]:
    """The items of an inbox file — (when learned, style, surface tokens) — learned after ``forgotten``;
    :class:`CheckpointError` for a file that is not one written for this model."""
    try:
        status = path.lstat()
        if not stat.S_ISREG(status.st_mode):  # a pipe would hang the reader, a link to a device flood it
            raise ValueError("not a regular file")
        if status.st_size > _HANDED_BYTES:
            raise ValueError("too large")
        payload = json.loads(path.read_bytes())
        if not isinstance(payload, dict) or payload.get("format") != INBOX_FORMAT:
            raise ValueError("not a hand-over file")
        if payload.get("model") != model_hash:
            raise ValueError("written for another model")
        items = payload.get("items")
        if not isinstance(items, list):
            raise ValueError("no items")
        kept: list[tuple[int, str | None, list[str]]] = []
        for item in items:
            when, style, tokens = item
            if (not isinstance(when, int) or isinstance(when, bool) or not (style is None or isinstance(style, str))
                    or not isinstance(tokens, list)
                    or not all(isinstance(t, str) and t and len(t) <= _HANDED_TOKEN_CHARS and "\n" not in t
                               for t in tokens)):
                raise ValueError("a malformed item")
            if when > forgotten:
                kept.append((when, style, tokens))
    except (OSError, ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not a hand-over file ({e})") from None
    return kept


class _Dropped(Exception):
    """Raised by a learning pause: what was being learned is no longer wanted (forgotten, or the program ends)."""


def _rewrite_handed(path: Path, model_hash: str, items: Sequence[tuple[int, str | None, list[str]]]) -> None:
    """Put ``items`` back in the inbox file ``path`` (what was not learned of it), in the format it was read in."""
    data = json.dumps({"format": INBOX_FORMAT, "model": model_hash, "items": list(items)}, ensure_ascii=True)
    with contextlib.suppress(OSError, OutputError):
        atomic_write(path, lambda f: f.write(data.encode("ascii")), private=True)


def _set_aside_file(path: Path) -> Path | None:
    """Move ``path`` (the file, or the link itself) aside as ``*.corrupt…``; where it went, None if it could not be."""
    aside = _aside(path)
    try:
        path.replace(aside)
    except OSError:
        return None
    return aside


def _state_files(path: Path) -> list[Path]:
    """The state ``path`` and the damaged copies of it set aside, those that exist."""
    return [f for f in (path, *sorted(path.parent.glob(glob.escape(path.name) + ".corrupt*"))) if f.exists()]


def _mark_forgotten(path: Path) -> None:
    """Note when the state ``path`` was erased (:func:`forgotten_path`): what other programs learned before now and
    hand over later is dropped. Written before anything is erased: if it cannot be, nothing is."""
    stamp = str(time.time_ns()).encode("ascii")
    try:
        atomic_write(forgotten_path(path), lambda f: f.write(stamp))
    except (OSError, OutputError) as e:
        raise CheckpointError(f"{forgotten_path(path)}: could not write ({e})") from None


def _clear_inbox(path: Path) -> bool:
    """Remove what was handed over for the state ``path`` and not learned (all of it, whatever it is: a file, a
    link, a folder); whether the inbox is gone. What cannot be removed is never learned: it is older than the erase
    noted by :func:`_mark_forgotten`."""
    folder = inbox_path(path)
    if folder.is_symlink() or folder.is_file():
        with contextlib.suppress(OSError):
            folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    return not os.path.lexists(folder)


def _inbox_files(path: Path) -> list[Path]:
    """The hand-over files waiting for the state ``path``, and whatever else is named like one (a pipe or a link
    would hang or flood the reader: :func:`read_handed` refuses them unread, and they are set aside)."""
    folder = inbox_path(path)
    if folder.is_symlink():  # its target is not this model's inbox: the files there (the user's own) are never touched
        return []
    try:
        return list(folder.glob("*.json"))
    except OSError:
        return []


def waiting(path: Path) -> int:
    """How many hand-over files wait for the state ``path`` (regular files: anything else is set aside unread)."""
    count = 0
    for handed in _inbox_files(path):
        with contextlib.suppress(OSError):  # (learned and removed meanwhile)
            count += stat.S_ISREG(handed.lstat().st_mode)
    return count


def _set_aside_damaged(personal: Personal) -> str | None:
    """Set aside what the inbox holds that is not a hand-over file for this model (damaged, a pipe, a link), before
    the learner reads it; what to say of it, once, with the other warnings of the start."""
    assert personal.path is not None
    if inbox_path(personal.path).is_symlink():
        return f"{inbox_path(personal.path)}: a link, not a folder: what other programs hand over is not read there"
    damaged: list[tuple[CheckpointError, Path | None]] = []
    for handed in sorted(_inbox_files(personal.path)):
        if handed.name in personal._handed_held:  # learned already: removed unread
            continue
        try:
            read_handed(handed, personal.model_hash)
        except CheckpointError as e:
            damaged.append((e, _set_aside_file(handed)))
    if not damaged:
        return None
    if len(damaged) == 1:
        error, aside = damaged[0]
        return f"{error}; moved to {aside.name}" if aside is not None else f"{error}; not learned"
    moved = sum(aside is not None for _, aside in damaged)
    return (f"{inbox_path(personal.path)}: {len(damaged)} files are not hand-over files (damaged, or not regular files);"
            + (f" {moved} set aside as *.corrupt-…" if moved else " not learned"))

def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise CheckpointError(f"{path}: could not remove ({e.strerror or e})") from None


_QUIT_FIRST = ": quit it first (or use :forget in the session, %autocomplete forget in IPython)"


def erase_states(paths: Sequence[Path]) -> list[Path]:
    """Remove saved states and the damaged copies set aside from them; the files removed. All or nothing: refused
    (one line) while another program learns into any of them, which would save it all again when it ends."""
    from autocomplete.atomic import LockedError, exclusive_lock, remove_leftovers

    paths = [p for p in paths if p.parent.is_dir()]
    with contextlib.ExitStack() as held:
        for path in paths:  # also with nothing saved yet: a running session saves what it learned when it ends
            try:
                held.enter_context(exclusive_lock(path, "another autocomplete process"))
            except LockedError as e:
                raise CheckpointError(_learning_elsewhere(path, e.by) + _QUIT_FIRST) from None
        for path in paths:  # before anything is erased: if it cannot be written, nothing is
            _mark_forgotten(path)
        files = [f for p in paths for f in _state_files(p)]
        for f in files:
            _remove(f)
        files += [leftover for p in paths for leftover, _ in remove_leftovers(p)]  # saves a kill cut short
        for path in paths:
            if os.path.lexists(inbox_path(path)) and _clear_inbox(path):
                files.append(inbox_path(path))
    return files


_open: weakref.WeakSet[Personal] = weakref.WeakSet()
_sharing = threading.Lock()  # counts the predictors that share a state


@atexit.register
def save_all() -> None:
    """Programs that embed the predictor rarely close it: what they learned is saved when they exit (or when a signal
    ended them and their exit never finished: see :func:`autocomplete.signals.end_anyway`)."""
    calm()  # a guest's SIGHUP/SIGTERM handler no longer cuts the save short
    for personal in list(_open):
        try:
            if personal._users > 0:
                personal._users = 1  # however many predictors share it: the program ends
                personal.close()
        except BaseException:  # never turn an exit into a traceback (Ctrl-C included); the next save will try again
            pass


def _forked() -> None:
    """In a child process made by ``fork``, every open state is its parent's, caught at any point of its learning:
    the child uses what was learned as it is, learns and saves nothing (the parent holds the file and goes on), and
    never waits for a learner thread that the fork did not copy."""
    for personal in list(_open):
        personal._held = contextlib.ExitStack()  # the parent's lock: dropped, never released from here
        personal.path, personal.saving, personal.held_by, personal.enabled = None, False, None, False
        personal._thread, personal._queue = None, queue.Queue()
        personal._lock, personal._pending_lock, personal._save_lock = threading.RLock(), threading.Lock(), threading.Lock()
        personal.gate = KeystrokeGate(personal.gate.quiet, personal.gate.patience)
        personal._pending, personal._outbox = [], []
    global _sharing
    _sharing = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
