"""The stateful next-word engine behind every keystroke.

A :class:`Predictor` is one *context* over a loaded model: the *committed context* (finished lines, conversation
turns: :meth:`Predictor.commit`) and the *text being edited*, which every query passes in full. Only complete words are
fed to the network; the word under the cursor filters the suggestions. :meth:`Predictor.session` gives another,
independent context over the same weights (one per buffer, cell or REPL), so contexts never evict each other's work.

Cost model (per context):

* appending one word costs one LSTM step, however long the text already is; committing costs one step per token,
  once (long texts are fed in batched chunks), and afterwards only the state at its end is kept;
* per keystroke, only the text after the last word boundary the context has already seen is tokenised, and only the
  tail near the edit is compared: the work does not grow with the length of the text or of the committed context;
* the state after every recent token and after every ``checkpoint_every``-th token of the edited text is cached (a
  least-recently-used cache within ``cache_bytes``), so backspace, an edit in the middle or a paste recomputes only
  from the nearest cached state before the first changed token (:mod:`autocomplete.context` does all this);
* the next-word distribution of the current position is computed once and reused until the text changes.

Memory per context: the state after the committed context (10 KB with the shipped model) however long that context
is, the edited text's tokens, at most ``cache_bytes`` of cached states (2 MiB by default; :meth:`Predictor.cache_size`
says how much is in use) and up to three next-word distributions (4 bytes per vocabulary entry each: 80 KB with the
shipped model). With the shipped model a context holds about 0.1 MB of tensors after any amount of committed text and
0.56 MB with 1,000 words in the edited text (:meth:`Predictor.memory_bytes`; BENCHMARKS.md, "memory per session"). The LSTM is conditioned on the whole committed context through its state: there
is no horizon to configure, and nothing about it grows.

Thread safety: every public method may be called from any thread. The calls on one context are serialised by its own
lock and each one is atomic, so a worker thread can run queries while the UI thread commits lines. Different contexts
(sessions) share only the read-only model and vocabulary and the personal state (whose learner swaps immutable
snapshots, and defers its work to queries in flight), so they run in parallel on different threads. :meth:`stream`
holds the lock only while it synchronises; sampling then runs on a private copy of the state, so suggestions are not
blocked by a long generation. The network is used read-only and never trained here. Two process-wide PyTorch
settings are involved: oneDNN is switched off while any context steps (see :func:`batch_one`), and :func:`load` sets
the number of intra-op threads (1 by default: a batch-1 step is fastest on one thread and does not suffer when the
other cores are busy; ``threads=None`` leaves PyTorch's setting alone).

Adaptation: :meth:`Predictor.next_log_probs` is the one place where an LSTM output becomes the base model's next-token
distribution, and :meth:`Predictor._mixture` the one place where the :attr:`~Predictor.personal` state
(:mod:`autocomplete.personal`, shared by all sessions of a predictor) adds what it learned from the user.
:meth:`Predictor.utterance_start` is the one place that says which tokens begin an utterance.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, SupportsIndex, get_args

import torch
from torch import Tensor

from autocomplete import checkpoint
from autocomplete.checkpoint import LanguageModel
from autocomplete.context import DEFAULT_CACHE_BYTES, Context, batch_one
from autocomplete.devices import resolve_device
from autocomplete.errors import ConfigError
from autocomplete.model import State, quantize_dynamic
from autocomplete.personal import Mixture, Personal, is_word
from autocomplete.sampling import make_generator, sample
from autocomplete.settings import SamplingConfig
from autocomplete.signals import exit_on_hangup
from autocomplete.styles import MODE_STYLES, pick_style
from autocomplete.tokenizer import SENTENCE_END, Detokenizer, capitalize, ends_sentence, sentence_starts, spelled
from autocomplete.vocab import EOS_ID, UNK_ID, Vocab

StopAt = Literal["sentence", "utterance", "never"]
MAX_SEED = 2**64 - 1  # what torch.manual_seed takes, as the CLI's --seed

_LOGP_CACHE = 3  # next-word distributions kept per context (the cursor, the word ahead, the word behind)
_VERSIONS = itertools.count(1)  # context versions are unique across contexts, so they can key callers' caches


@dataclass(frozen=True)
class Suggestion:
    """A word offered at the cursor: the next word, or the rest of the word being typed, with its probability."""

    word: str  # how the word should appear here (capitalised at a sentence start)
    probability: float  # P(word | text before it) under the model, its case variants added (you, You, YOU for yo);
    # not renormalised over the partial-word matches
    token_id: int

    def completion_for(self, partial: str) -> str:
        """The characters to append after the typed ``partial`` word to complete it to this suggestion."""
        if not self.word.startswith(partial) and self.word.startswith(as_spelled := spelled(partial)):
            return self.word[len(as_spelled) :]  # typed with a curly apostrophe or a combining accent
        return self.word[len(partial) :]


def in_typed_case(partial: str, word: str) -> str:
    """``word`` (a word the typed ``partial`` matched regardless of case) as the completion of ``partial``: what was
    typed, then the rest of the word in a case consistent with it, never a hybrid such as ``yoU`` or ``xxxVIII``.

    A word spelled with the typed letters as they are keeps its spelling (``Ok`` → ``Okonkwo``, ``S`` → ``SPQR``).
    Otherwise the rest follows the typing: in capitals after two or more capitals and no lower case (``YO`` →
    ``YOU``), else in lower case: ``yo`` → ``you`` (from ``YOU`` or ``You``), ``xxx`` → ``xxxviii`` (from
    ``XXXVIII``), ``Yo`` → ``You``, ``ok`` → ``okonkwo``. Case variants of one word thus meet as one string, which
    callers merge (the word is shown once, with their probabilities added). The menu, the grey text, ``predict``,
    readline and sampled continuations all complete a typed word through this function."""
    if word.startswith(partial):
        return word
    rest = word[len(partial) :]
    cased = [c for c in partial if c.isupper() or c.islower()]
    shouting = len(cased) >= 2 and all(c.isupper() for c in cased)
    return partial + (rest.upper() if shouting else rest.lower())


@dataclass(frozen=True)
class Continuation:
    """Words sampled after the text (:meth:`Predictor.continuation`), ready to append to it."""

    text: str  # what to append to the input text: the rest of the partial word, then the new words
    tokens: tuple[str, ...]  # the sampled tokens (the completed partial word first, if there was one)
    words: int  # how many of them are words (punctuation does not count)
    ended: bool  # stopped at the end of a sentence or utterance rather than at the word limit


class PrefixIndex:
    """The vocabulary sorted for partial-word lookups, built once per model and shared by all its contexts."""

    def __init__(self, vocab: Vocab) -> None:
        itos = vocab.itos
        entries = sorted((itos[i].lower(), i) for i in range(len(itos)) if not vocab.is_special(i))
        self.keys = [key for key, _ in entries]
        self.ids = torch.tensor([i for _, i in entries], dtype=torch.long)
        self.word_mask = torch.tensor([is_word(t) and not vocab.is_special(i) for i, t in enumerate(itos)])

    def candidates(self, partial: str) -> Tensor:
        if not partial:
            return self.ids
        key = partial.lower()
        lo = bisect.bisect_left(self.keys, key)
        hi = bisect.bisect_left(self.keys, key + "\U0010ffff", lo)
        return self.ids[lo:hi]


# a copy would share this context's state under its own lock and version (caches keyed on them go stale); a pickle
# would hold a learner thread and a file lock
_NO_COPY = ("a Predictor cannot be copied or pickled: predictor.session() gives another context over the same model, "
            "autocomplete.load() another predictor")


class Predictor:
    """One context over a loaded model; :meth:`session` makes more over the same weights."""

    def __init__(
        self,
        lm: LanguageModel,
        *,
        device: torch.device | str = "cpu",
        quantize: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        checkpoint_every: int = 32,
        keep_recent: int = 64,
        personal: Personal | None = None,
        style: str | None = None,
    ) -> None:
        _check_flag("quantize", quantize)
        device = resolve_device(device, mps=True, instead="device='cpu'")
        model = lm.model.to(device).eval()
        if quantize and device.type == "cpu":
            model = quantize_dynamic(model)
        self.model = model
        self._attach(lm, device, PrefixIndex(lm.vocab), personal, cache_bytes, checkpoint_every, keep_recent, style)

    def _attach(
        self, lm: LanguageModel, device: torch.device, index: PrefixIndex, personal: Personal | None,
        cache_bytes: int, checkpoint_every: int, keep_recent: int, style: str | None = None,
    ) -> None:
        self.lm = lm
        self.personal = personal  # what the model learned from its user (shared by all sessions); None: the base model
        self.vocab = lm.vocab
        self.tokenizer = lm.tokenizer
        self.device = device
        self.index = index
        self.cache_bytes = cache_bytes
        self.checkpoint_every = checkpoint_every
        self.keep_recent = keep_recent
        self.context_version = 0  # changes whenever the committed context does (a key for callers' caches)
        self._lock = threading.RLock()
        self._sentence_case = self.tokenizer.case_sensitive
        self._context = Context(self.model, self.tokenizer, self.vocab, device, cache_bytes, checkpoint_every, keep_recent)
        self._start = self.vocab.start_ids(style)  # the utterance-start tokens (see utterance_start, set_style)
        self._style = style if self.vocab.styles else None
        self._personal_epoch: tuple[Personal, int] | None = None  # the personal state the context last stepped with
        self.reset()

    @classmethod
    def load(cls, path: Path | str, **kwargs: object) -> Predictor:
        return cls(checkpoint.load(path), **kwargs)  # type: ignore[arg-type]

    def __copy__(self) -> Predictor:
        raise TypeError(_NO_COPY)

    def __deepcopy__(self, memo: object) -> Predictor:
        raise TypeError(_NO_COPY)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(_NO_COPY)

    def session(self) -> Predictor:
        """A new, empty context over the same loaded weights: its own committed context, state cache and encoding.

        Contexts share the model, vocabulary and prefix index (read-only) and the :attr:`personal` state (one user,
        one state: what is learned in one session serves all), and nothing else, so each buffer, cell or REPL can
        have one: alternating between them costs nothing, committing in one leaves the others alone, and
        they may be used from different threads at once. Memory per context: see the module docstring.
        """
        other = type(self).__new__(type(self))
        other.model = self.model
        other._attach(
            self.lm, self.device, self.index, self.personal, self.cache_bytes, self.checkpoint_every, self.keep_recent,
            self._style,
        )
        return other

    fork = session

    @contextmanager
    def _query(self) -> Iterator[None]:
        """This context's lock, with the :attr:`personal` learner told that a query is in flight: it starts no slice of
        learning until the query is answered (every public method that computes goes through here)."""
        gate = self.personal.gate if self.personal is not None else None
        if gate is None:
            with self._lock:
                yield
        else:
            with gate.serving(), self._lock:
                yield

    def utterance_start(self) -> list[int]:
        """The tokens the model reads before the first word of an utterance (it was trained on lines after an end of
        line): end of line, then the style's token for a model trained with styles. The one place that says so."""
        return list(self._start)

    # ---- style -----------------------------------------------------------------------------------------------

    @property
    def style(self) -> str | None:
        """The style utterances are read in (``prose``, ``dialogue``...); None when the model has no styles (a
        style asked of such a model is ignored) or none was asked for."""
        return self._style

    @property
    def styles(self) -> tuple[str, ...]:
        """The styles the model was trained with; empty for a model without style tokens."""
        return self.vocab.styles

    def set_style(self, style: str | None) -> None:
        """Read utterances in ``style`` from now on: the edited text, the utterances committed later, and the
        current one when the committed context ends at an utterance start (after a finished line: its style token is
        read again, one LSTM step); lines committed before keep the style they were read in. An unknown style is a
        :class:`~autocomplete.errors.ConfigError`; a model without styles ignores any style."""
        with self._query():
            self._follow_personal()
            start = self.vocab.start_ids(style)
            self._style = style if self.vocab.styles else None
            if start != self._start:
                self._start = start
                self._context.restart_utterance(start)
                self.context_version = next(_VERSIONS)

    # ---- context ---------------------------------------------------------------------------------------------

    def reset(self, context: str = "") -> None:
        """Forget everything; optionally start from ``context`` (committed as if typed and finished)."""
        _check_text(context, "context")
        with self._query():
            self._follow_personal()
            self.context_version = next(_VERSIONS)
            self._context.reset(self.utterance_start())
            if context:
                self.commit(context)

    def commit(self, text: str, learn: bool = True) -> None:
        """Append ``text`` to the committed context for good (a finished line should end with ``"\\n"``).

        What was just typed as the edited text is not computed again; a long text is fed in batched chunks. Only the
        state at the end is kept, so a session's memory does not grow with what it has committed. With a
        :attr:`personal` state, what the user wrote is also learned once its line ends (``learn=False`` for text the
        user did not write, such as the model's own replies; a line that starts with a space never is).
        """
        _check_text(text)
        _check_flag("learn", learn)
        if learn and self.personal is not None:
            self.personal.learn(text, style=self._style)
        with self._query():
            self._follow_personal()
            if text:
                self._context.commit(text)
                self.context_version = next(_VERSIONS)

    @property
    def context_length(self) -> int:
        """Tokens in the committed context (the leading utterance start included)."""
        return self._context.committed

    @property
    def steps(self) -> int:
        """LSTM token steps this session has run (for tests and benchmarks)."""
        return self._context.steps

    def cache_size(self) -> int:
        """Bytes of LSTM states this session holds now (the committed context's included), within ``cache_bytes``."""
        with self._lock:
            return self._context.cache_size

    def memory_bytes(self) -> int:
        """Bytes of tensors this session holds: its LSTM states and its cached next-word distributions."""
        with self._lock:
            outputs = sum(value[1].untyped_storage().nbytes() for value in self._context.outputs.values())
            return self._context.cache_size + outputs

    def next_log_probs(self, features: Tensor) -> Tensor:
        """The base model's log-probabilities (V,) of the next token given the LSTM output ``features`` (D,).

        Every distribution a context uses comes from here, through :meth:`_mixture` where the :attr:`personal`
        state adds what it learned (at the cursor: suggestions, :meth:`distribution`, a sample's first token).
        """
        with torch.inference_mode():
            return torch.log_softmax(self.model.logits(features).float(), dim=-1)

    def _log_probs(self) -> Tensor:
        """Log-probabilities (V,) of the next token at the current position (cached for nearby positions)."""
        return self._mixture()[0]

    def _mixture(self) -> tuple[Tensor, Mixture | None]:
        """The next-token log-probabilities at the current position and, when it is active, what the personal state
        adds to them (cached for nearby positions until the personal state changes)."""
        personal = self.personal if self.personal is not None and self.personal.active else None
        version = personal.version if personal is not None else 0
        outputs, pos = self._context.outputs, self._context.position
        cached = outputs.get(pos)
        if cached is not None and cached[0] == version:
            outputs.move_to_end(pos)
            return cached[1], cached[2]
        features = self._context.current()[1]
        mixture = None
        if personal is not None:
            line = self._context.line_entries(skip=personal.config.skip_recent)
            mixture = personal.log_probs(self.model, features, line)
        logp = mixture.logp if mixture is not None else self.next_log_probs(features)
        outputs[pos] = (version, logp, mixture)
        outputs.move_to_end(pos)
        if len(outputs) > _LOGP_CACHE:
            outputs.popitem(last=False)
        return logp, mixture

    def _follow_personal(self) -> None:
        """Step with the :attr:`personal` state's adapted top LSTM layer as it is now (states already computed keep
        the weights of their time). A context read with adapted weights since forgotten (or replaced) starts afresh,
        so that after :meth:`~autocomplete.personal.Personal.forget` the base model's distribution is back exactly."""
        personal = self.personal
        self._context.top = personal.top_layer(self.model) if personal is not None else None
        epoch = (personal, personal.epoch) if personal is not None else None
        if epoch != self._personal_epoch:
            self._personal_epoch = epoch
            if self._context.adapted:
                self._context.reset(self.utterance_start())
                self.context_version = next(_VERSIONS)

    def _prepare(self, text: str, finished: bool = False) -> tuple[list[str], str]:
        """Bring the context to ``text``: (the current line's tokens, the partial word)."""
        self._follow_personal()
        n, partial = self._context.locate(text, finished)
        self._context.keep_line_features = self.personal is not None
        self._context.sync(n)
        return self._context.line(n), spelled(partial)

    # ---- queries ---------------------------------------------------------------------------------------------

    def distribution(self, text: str = "") -> Tensor:
        """Probabilities (V,) of the next token after the complete words of ``text`` (the partial word ignored)."""
        _check_text(text)
        with self._query():
            self._prepare(text)
            return self._log_probs().exp()

    def suggest(
        self, text: str = "", k: int = SamplingConfig.suggestions, words_only: bool = True, partial: str | None = None
    ) -> list[Suggestion]:
        """The ``k`` most likely next words, completing the word being typed at the end of ``text`` if any.

        ``partial``: the word being typed, for callers that split words themselves (readline's delimiters); ``text``
        is then all context and ``partial`` is matched against the vocabulary as it is (``don'`` → ``don't``).
        ``k`` is an integer ≥ 1 (a :class:`~autocomplete.errors.ConfigError` otherwise).
        """
        _check_text(text)
        if partial is not None:
            _check_text(partial, "partial")
        _check_flag("words_only", words_only)
        k = _whole("k", k, 1)
        with self._query():
            if partial is None:
                line, partial = self._prepare(text)
            else:
                line, _ = self._prepare(text, finished=True)
                partial = spelled(partial)  # ``don’`` is ``don'`` being typed, as the tokenizer reads it
            logp, mixture = self._mixture()
            at_start = ends_sentence(line)
            merged = self._rank(logp, partial, k, at_start, words_only)
            if mixture is not None and self.personal is not None:
                self._add_own_words(merged, mixture, partial, k, at_start, line[-1] if line and not partial else None)
            return self._best(merged, partial, k, at_start)

    def complete_or_next(self, text: str, k: int = SamplingConfig.suggestions) -> list[Suggestion]:
        """What a one-shot question about ``text`` wants (``autocomplete predict``, the line mode): the completions of
        its last word when that is unfinished (no space after it: ``how are yo`` → ``you``), else the next words.

        A last word that is already a whole word and its own likeliest completion counts as finished (``how are`` →
        ``you``, not ``are``), as in a session, where accepting the grey text of a complete word shows the next ones;
        so does one that no word of the vocabulary starts like (a name it never saw: the words after it are wanted).
        """
        with self._query():
            _, partial = self.tokenizer.split_partial(text)
            partial = spelled(partial)
            if partial:
                ranked = self.suggest(text, k)
                if ranked and ranked[0].word != partial:
                    return ranked
            return self.suggest(text if not text or text[-1].isspace() else text + " ", k)

    def insertion(self, text: str, suggestion: Suggestion) -> str:
        """What to append to ``text`` so that it ends with ``suggestion``'s word.

        Completes the partial word, or starts a new word with the space the detokenizer would put there
        (``"Hello,"`` → ``" how"``, ``"Hello, "`` → ``"how"``, ``"("`` → ``"how"``). ``suggestion`` is one of this
        model's :meth:`suggest` answers (a :class:`TypeError` for anything else, a :class:`ValueError` for a token id
        this vocabulary lacks).
        """
        _check_text(text)
        self._check_suggestion(suggestion, "suggestion")
        return self.insertions(text, [suggestion])[0]

    def insertions(self, text: str, suggestions: Sequence[Suggestion]) -> list[str]:
        """:meth:`insertion` for each of ``suggestions`` (a menu's words), splitting and locating ``text`` once."""
        _check_text(text)
        if isinstance(suggestions, (str, bytes, Suggestion)) or not isinstance(suggestions, Sequence):
            kind = type(suggestions).__name__
            raise TypeError(f"suggestions must be a list of Suggestion (suggest's answer), got {kind}")
        for i, suggestion in enumerate(suggestions):
            self._check_suggestion(suggestion, f"suggestions[{i}]")
        _, partial = self.tokenizer.split_partial(text)
        if partial:
            return [s.completion_for(partial) for s in suggestions]
        if not text or text[-1].isspace():
            return [s.word for s in suggestions]
        with self._query():
            line = self._context.line(self._context.locate(text)[0])
        spaced = []
        for s in suggestions:
            piece = Detokenizer(line, sentence_case=False).feed(self.vocab.itos[s.token_id])
            spaced.append((" " if piece.startswith(" ") else "") + s.word)
        return spaced

    @property
    def answers_version(self) -> tuple[int, int, int]:
        """Changes whenever the answers for a given text may: with the committed context (:attr:`context_version`)
        and with what the :attr:`personal` state learned (a key for callers' caches of suggestions)."""
        personal = self.personal
        return self.context_version, id(personal), personal.version if personal is not None else 0

    def candidates(self, partial: str) -> Tensor:
        """Ids of the vocabulary words that start with ``partial`` (case-insensitive); all words if it is empty."""
        _check_text(partial, "partial")
        return self.index.candidates(partial)

    def _check_suggestion(self, suggestion: object, name: str) -> None:
        """``suggestion`` must be a :class:`Suggestion` of a word and a token id of this vocabulary (one from another
        model would index past its end, or spell another token's spacing)."""
        if not isinstance(suggestion, Suggestion):
            raise TypeError(f"{name} must be a Suggestion (one of suggest's answers), got {type(suggestion).__name__}")
        if not isinstance(suggestion.word, str):
            raise TypeError(f"{name}.word must be str, got {type(suggestion.word).__name__}")
        token_id = suggestion.token_id
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(self.vocab.itos):
            raise ValueError(
                f"{name} has token id {token_id!r}, not one of this model's (0 to {len(self.vocab.itos) - 1}): "
                f"a suggestion of another model?"
            )

    def _display(self, token: str, at_start: bool) -> str:
        return capitalize(token) if at_start and self._sentence_case else token

    def _rank(self, logp: Tensor, partial: str, k: int, at_start: bool, words_only: bool) -> dict[str, _Match]:
        """The vocabulary's likeliest words completing ``partial``, each as :func:`in_typed_case` shows it; entries
        that show as the same word are one match with their probabilities added."""
        ids = self.candidates(partial)
        if words_only and not partial:
            ids = ids[self.index.word_mask[ids]]
        if ids.numel() == 0:
            return {}
        scores = logp[ids]
        top = torch.topk(scores, min(ids.numel(), 2 * k + 8))
        merged: dict[str, _Match] = {}
        # the user's own spellings count as spelled too: "Zed", typed before, where the vocabulary has only "zed"
        own = self.personal.counts if self.personal is not None and partial[:1].isupper() else {}
        for score, index in zip(top.values.tolist(), ids[top.indices].tolist()):
            token = self.vocab.itos[index]
            shown = in_typed_case(partial, self._display(token, at_start))
            _merge(merged, shown, math.exp(score), index, token.startswith(partial) or shown in own)
        return merged

    def _add_own_words(
        self, merged: dict[str, _Match], mixture: Mixture, partial: str, k: int, at_start: bool, previous: str | None
    ) -> None:
        """Merge the user's own words outside the vocabulary into ``merged``, shown as the vocabulary's are; never
        ``previous``, the word just typed: the model gives a word it does not know after one it does not know
        (names of two words) a share that the lexicon would hand to the name just typed ("Ravindra Ravindra")."""
        assert self.personal is not None
        for word, p in self.personal.unknown_words(mixture, partial, k + (previous is not None)):
            if word == previous:
                continue
            shown = in_typed_case(partial, self._display(word, at_start))
            _merge(merged, shown, p, UNK_ID, True)  # a capital mid-sentence prefers them too (names, mostly)

    @staticmethod
    def _best(merged: dict[str, _Match], partial: str, k: int, at_start: bool) -> list[Suggestion]:
        ranked = sorted(merged.items(), key=lambda kv: -kv[1].probability)
        if partial[:1].isupper() and not at_start:  # a capital mid-sentence: prefer names spelled that way
            ranked = [kv for kv in ranked if kv[1].spelled] + [kv for kv in ranked if not kv[1].spelled]
        return [Suggestion(word, m.probability, m.token_id) for word, m in ranked[:k]]

    # ---- sampling --------------------------------------------------------------------------------------------

    def stream(
        self,
        text: str = "",
        sampling: SamplingConfig | None = None,
        *,
        max_words: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        stop_at: StopAt = "utterance",
        finished: bool = False,
        nonempty: bool = False,
    ) -> Iterator[tuple[str, str]]:
        """Sample a continuation of ``text``, yielding (token, text to append) as each token is drawn.

        ``sampling`` gives the temperature, top-k, top-p and word limit (defaults: :class:`SamplingConfig`'s); the
        keyword arguments of the same names override single fields. The first token completes the partial word, if
        any. Temperature 0 is greedy. ``stop_at`` ends the continuation after a sentence-final token
        (``"sentence"``), at the end of the utterance (``"utterance"``: the end-of-line token is not yielded), or
        only at the word limit (``"never"``: ends of line come out as ``"\\n"``). ``finished`` treats the last word
        of ``text`` as complete (a prompt rather than typing in progress). ``nonempty`` forbids ending before the
        first token (a reply must say something). Sampling never produces the unknown-word token.

        The arguments are checked when it is called, before anything is sampled: ``sampling`` must be a
        :class:`SamplingConfig`, ``generator`` a :class:`torch.Generator` and ``finished`` and ``nonempty`` True or
        False (a :class:`TypeError` otherwise),
        ``seed`` an integer from 0 to 2**64 - 1 (as the CLI's ``--seed``) and the overrides within their ranges (a
        :class:`~autocomplete.errors.ConfigError` otherwise).
        """
        _check_text(text)
        config = _configure(sampling, max_words=max_words, temperature=temperature, top_k=top_k, top_p=top_p)
        if seed is not None:
            seed = _whole("seed", seed, 0, MAX_SEED)
        if stop_at not in get_args(StopAt):
            raise ConfigError(f"stop_at must be one of {', '.join(get_args(StopAt))}, got {stop_at!r}")
        _check_flag("finished", finished)
        _check_flag("nonempty", nonempty)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return self._stream(text, config, seed, generator, stop_at, finished, nonempty)

    def _stream(
        self, text: str, config: SamplingConfig, seed: int | None, generator: torch.Generator | None,
        stop_at: StopAt, finished: bool, nonempty: bool,
    ) -> Iterator[tuple[str, str]]:
        with self._query():
            line, partial = self._prepare(text, finished)
            state, _ = self._context.current()
            logp = self._log_probs()
            allowed = self.candidates(partial) if partial else None
        generator = generator or make_generator(seed)
        yield from self._sample_loop(state, logp, line, partial, text, allowed, config, generator, stop_at, nonempty)

    def _sample_loop(
        self,
        state: State,
        logp: Tensor,
        line: list[str],
        partial: str,
        text: str,
        allowed: Tensor | None,
        config: SamplingConfig,
        generator: torch.Generator,
        stop_at: StopAt,
        nonempty: bool,
    ) -> Iterator[tuple[str, str]]:
        detok = Detokenizer(line, sentence_case=self._sentence_case)
        at_start = ends_sentence(line)
        needs_space = bool(text) and not text[-1].isspace() and not partial
        words = 0
        budget = 4 * config.max_words + 16  # tokens: punctuation and line ends do not count as words, but are bounded
        first = True
        while budget > 0:
            budget -= 1
            logits = logp.clone()
            logits[UNK_ID] = float("-inf")
            logits[self.vocab.style_ids] = float("-inf")  # given at each utterance's start, never drawn
            if allowed is not None:
                mask = torch.full_like(logits, float("-inf"))
                mask[allowed] = 0.0
                logits = logits + mask
                if not torch.isfinite(logits).any():
                    return  # the partial word matches nothing in the vocabulary
            if nonempty and first:
                logits[EOS_ID] = float("-inf")  # an empty continuation or reply is none at all
            index = sample(logits, config.temperature, config.top_k, config.top_p, generator)
            token = self.vocab.itos[index]
            if index == EOS_ID and stop_at != "never":
                return
            if allowed is not None:
                piece = in_typed_case(partial, self._display(token, at_start))[len(partial) :]
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
            if words >= config.max_words or (stop_at == "sentence" and token in SENTENCE_END):
                return
            step = self.utterance_start() if index == EOS_ID else [index]  # a new utterance opens with its style
            with torch.inference_mode(), batch_one():
                state, features = self._context.feed(step, state)
            logp = self.next_log_probs(features)

    def continuation(self, text: str = "", sampling: SamplingConfig | None = None, **kwargs: object) -> Continuation:
        """Like :meth:`stream`, collected: the whole sampled continuation at once."""
        overrides = {k: kwargs.pop(k) for k in ("max_words", "temperature", "top_k", "top_p") if k in kwargs}
        config = _configure(sampling, **overrides)  # type: ignore[arg-type]
        tokens: list[str] = []
        pieces: list[str] = []
        for token, piece in self.stream(text, config, **kwargs):  # type: ignore[arg-type]
            tokens.append(token)
            pieces.append(piece)
        words = sum(is_word(t) for t in tokens)
        return Continuation("".join(pieces), tuple(tokens), words, ended=words < config.max_words)


@dataclass
class _Match:
    """One suggested word while the candidates are merged: the vocabulary entries and own words shown as it."""

    probability: float  # their probabilities added
    token_id: int  # the first one's id: the likeliest vocabulary entry, else UNK_ID (own words come after them)
    spelled: bool  # the first one starts with the typed letters as they are (Ok → Okonkwo), or is an own word


def _merge(merged: dict[str, _Match], word: str, probability: float, token_id: int, spelled: bool) -> None:
    """Add a candidate shown as ``word`` to ``merged``. Candidates come likeliest first, so the first one merged into
    a word gives it its id and says whether it is spelled as typed: with ``Ok`` typed, ``Okay`` from the likelier
    ``okay`` is not, even where the vocabulary also holds ``Okay`` (as before case variants were merged)."""
    match = merged.get(word)
    if match is None:
        merged[word] = _Match(probability, token_id, spelled)
    else:
        match.probability += probability


def _configure(sampling: SamplingConfig | None, **overrides: float | int | None) -> SamplingConfig:
    if sampling is not None and not isinstance(sampling, SamplingConfig):
        raise TypeError(
            f"sampling must be a SamplingConfig (e.g. SamplingConfig(temperature=1.0)) or None, "
            f"got {type(sampling).__name__}"
        )
    changes = tuple((k, v) for k, v in overrides.items() if v is not None)
    return _replaced(sampling or _DEFAULT_SAMPLING, changes) if changes else sampling or _DEFAULT_SAMPLING


_DEFAULT_SAMPLING = SamplingConfig()


@functools.lru_cache(maxsize=64)
def _replaced(config: SamplingConfig, changes: tuple[tuple[str, float | int], ...]) -> SamplingConfig:
    """``config.replace(**changes)``, remembered: the grey text asks for the same few configs on every keystroke."""
    return config.replace(**dict(changes))


def _check_text(text: object, name: str = "text") -> None:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be str, got {type(text).__name__}")


def _check_flag(name: str, value: object) -> None:
    """A yes-or-no argument must be ``True`` or ``False``: ``learn="no"`` would otherwise count as true, and ``0`` or
    ``None`` pass for a choice the caller may not have meant."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _whole(name: str, value: object, low: int, high: int | None = None, note: str = "") -> int:
    """``value`` if it is an integer (not true/false) in [``low``, ``high``], else a
    :class:`~autocomplete.errors.ConfigError` that says what it must be."""
    bound = f"≥ {low}" if high is None else f"from {low} to {high}"
    number = None
    if isinstance(value, SupportsIndex) and not isinstance(value, bool):  # int, numpy integers; not 1.5 or "3"
        number = operator.index(value)
    if number is None or number < low or high is not None and number > high:
        raise ConfigError(f"{name} must be an integer {bound}{note}, got {value!r}")
    return number


def load(
    path: Path | str | None = None,
    *,
    quantize: bool = True,
    device: torch.device | str = "cpu",
    threads: int | None = 1,
    learn: bool = True,
    save: bool = True,
    style: str | None = None,
    mode: str = "type",
) -> Predictor:
    """A :class:`Predictor` for the model at ``path``, or for the shipped default model.

    ``style``: the style to read and write text in, for a model trained with styles (the shipped one: ``prose``,
    ``dialogue``, ``tech``); by default the one ``mode`` asks for (:data:`~autocomplete.styles.MODE_STYLES`):
    ``prose`` for ``"type"``, as the session's type mode, ``tech`` for ``"code"``, as the shell plugins (a model
    without it: its first style). Every utterance such a model was trained on opened with its style's token, so reading one without it is
    reading text unlike any it saw. A model without styles ignores it; one it lacks is a ConfigError.

    ``quantize`` runs it with int8 weights on the CPU: several times faster per keystroke at no measurable cost in
    quality (BENCHMARKS.md); pass False for the exact float weights. ``threads`` sets PyTorch's intra-op threads for
    the whole process (``torch.set_num_threads``): 1 by default, because a batch-1 step is fastest on one thread and
    several threads spin-wait on cores other programs are using; ``None`` leaves the setting as it is. It is an
    integer from 1 to the number of CPUs present, as the CLI's ``--threads`` (a ConfigError otherwise); ``path`` is
    text or a path-like object, and ``quantize``, ``learn`` and ``save`` are True or False (a TypeError otherwise).
    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (the CUDA GPU if there is one), as
    text or a :class:`torch.device`: one this machine lacks is a ConfigError, said before the model is read.

    ``learn`` attaches the user's personal state for this model (:mod:`autocomplete.personal`): what it learned in
    earlier sessions is used, the lines committed from now on are learned (in a background thread) and saved in the
    user data folder. Pass False for the model exactly as shipped. ``save=False`` writes nothing there: what was
    learned before is used, what is learned now is kept in memory only (the session's ``--no-history``). What is
    learned is saved at the program's end; where the program leaves SIGHUP (its terminal window closed) and SIGTERM
    (a plain ``kill``) to end it on the spot, they end it through :class:`SystemExit` instead, so that the save runs
    (:func:`autocomplete.signals.exit_on_hangup`; a handler of the program's own is left alone).
    """
    from autocomplete.paths import default_model_path

    model = checkpoint.as_path(path) if path is not None else default_model_path()
    for name, flag in (("quantize", quantize), ("learn", learn), ("save", save)):
        _check_flag(name, flag)
    if mode not in MODE_STYLES:
        raise ConfigError(f"mode must be one of {', '.join(MODE_STYLES)}, got {mode!r}")
    device = resolve_device(device, mps=True, instead="device='cpu'")
    if threads is not None:
        # at most the CPUs present, as the CLI's --threads: more only slow it down, and far more crash PyTorch
        torch.set_num_threads(_whole("threads", threads, 1, os.cpu_count() or 1, " (the CPUs present)"))
    predictor = Predictor.load(model, quantize=quantize, device=device)
    predictor.set_style(pick_style(style, mode, predictor.styles))
    if learn:
        from autocomplete.personal import open_personal

        predictor.personal, _ = open_personal(predictor.lm, save=save)  # a saved state that cannot be used: personal.warning
        if save:  # a closed terminal window or a kill saves what was learned, as the session and the plugins do
            exit_on_hangup()
    return predictor
