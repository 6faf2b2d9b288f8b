"""prompt_toolkit adapters: a completion menu, grey ghost-text suggestions, and the keys that drive them.

This is the embeddable API. Another prompt_toolkit program gets the whole behaviour in a few lines::

    import autocomplete
    from prompt_toolkit import PromptSession
    from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, key_bindings

    predictor = autocomplete.load()                   # the shipped model; autocomplete.load("mine.pt") for another
    suggest = LanguageModelAutoSuggest(predictor)
    session = PromptSession(
        completer=LanguageModelCompleter(predictor),
        auto_suggest=suggest,
        key_bindings=key_bindings(suggest),
        complete_while_typing=True,
    )
    print(session.prompt("> "))

Inside another program, the adapters are good guests: ``context=`` says what the model reads (``python_prose``: only
comments, strings and docstrings of Python code), ``fallback=`` keeps the host's own suggester and completer
everywhere else, and ``key_bindings(suggest, filter=..., tab=...)`` claims keys only where the host wants (Tab can
stay the host's indent key).

The adapters only translate between prompt_toolkit's ``Document``/``Buffer`` and :class:`Predictor` calls. Model work
always runs in a worker thread (prompt_toolkit's executor); a result computed for a text that has changed since is
dropped, never shown. One predictor may be shared by any number of completers, suggesters and buffers: it serialises
its own calls.

Keys added by :func:`key_bindings`:

=====================  ==============================================================================
Right, Ctrl-E, Ctrl-F  accept the whole grey suggestion
Alt-F, Ctrl-Right      accept its next word
Alt-N / Alt-P          next / previous alternative word (also Ctrl-Down / Ctrl-Up; the menu marks it with ◂)
Tab / Shift-Tab        open the menu of candidates and walk through it
Ctrl-T                 sample a multi-word continuation at the current temperature (Esc dismisses it)
Alt-+ / Alt--          raise / lower the temperature (Alt-= works as Alt-+)
Backspace              right after accepting: take the accepted text back and show the suggestion again
=====================  ==============================================================================
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.application.current import get_app, get_app_or_none, set_app
from prompt_toolkit.auto_suggest import AutoSuggest, DynamicAutoSuggest, Suggestion
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.eventloop import run_in_executor_with_context
from prompt_toolkit.filters import Always, Condition, Filter, FilterOrBool, to_filter
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from autocomplete.display import percent
from autocomplete.errors import ConfigError
from autocomplete.predictor import Predictor
from autocomplete.predictor import Suggestion as WordSuggestion
from autocomplete.predictor import load as load_predictor
from autocomplete.settings import SamplingConfig

from autocomplete.python_prose import prose_before_cursor
from autocomplete.vocab import EOS_ID

__all__ = [
    "LanguageModelAutoSuggest", "LanguageModelCompleter", "SamplingSettings", "follow_learning", "key_bindings",
    "python_prose", "show_learned", "text_before_cursor",
    "load_predictor", "percent",  # the engine's, re-exported for programs written against older versions
]

Context = Callable[[Document], "str | None"]
_Key = tuple[int, tuple[int, int, int], int]  # (id of the predictor, its answers_version, how many words)
# the next word of a suggestion, as Alt-F takes it: its letters (with the apostrophes and hyphens inside a word), or
# a run of punctuation on its own ("end, I" is taken as "end", then ",", then " I"); the rest of a word after its
# apostrophe or hyphen is one ("I don" + "'t know": "'t")
_FIRST_WORD = re.compile(r"\s*(?:['’-]?\w+(?:['’-]\w+)*|[^\w\s]+)")
_MISSING = object()


def text_before_cursor(document: Document) -> str:
    """The default context: the model reads everything before the cursor."""
    return document.text_before_cursor


def python_prose(document: Document) -> str | None:
    """A context for Python code: the comment, string or docstring the cursor is in, or None in code.

    See :mod:`autocomplete.python_prose` for what counts as prose. Pass it as ``context=`` to the suggester and the
    completer, and their ``fallback=`` keeps the host's own suggestions and completions everywhere else.
    """
    return prose_before_cursor(document.text_before_cursor)


@dataclass
class SamplingSettings:
    """The live settings shared by a suggester, its completer, its keys and a session.

    ``config`` is a frozen :class:`~autocomplete.settings.SamplingConfig` (its fields' defaults and ranges live there
    only); the keys and commands replace it as a whole (``settings.config = settings.config.with_temperature(t)``),
    so every holder of this object sees the change at once.
    """

    config: SamplingConfig = field(default_factory=SamplingConfig)
    ghost_words: int = 2  # words of greedy grey text, the completed word included

    def __post_init__(self) -> None:
        if isinstance(self.ghost_words, bool) or not isinstance(self.ghost_words, int) or not 1 <= self.ghost_words <= 10:
            raise ConfigError(f"ghost words must be an integer in [1, 10], got {self.ghost_words!r}")

    def update(self, **changes: float | int) -> SamplingConfig:
        """Replace the config with a validated copy that has ``changes``; nothing changes if one is invalid."""
        self.config = self.config.replace(**changes)
        return self.config

    @property
    def temperature(self) -> float:
        return self.config.temperature

    @property
    def top_k(self) -> int:
        return self.config.top_k

    @property
    def top_p(self) -> float:
        return self.config.top_p

    @property
    def max_words(self) -> int:
        return self.config.max_words

    @property
    def suggestions(self) -> int:
        return self.config.suggestions


@dataclass(frozen=True)
class _Sample:
    """A Ctrl-T continuation. It is shown instead of the greedy grey text only while the text and the committed
    context are the ones it was sampled for: a line committed since, or a line cleared and typed again, drops it."""

    text: str  # the model's text it continues
    context: tuple[int, int]  # (id of the predictor, its context_version) when it was sampled
    continuation: str  # the grey text
    joins: bool = False  # it starts with punctuation that goes right after the word before the typed space(s):
    # accepting it takes them away (``Yes `` + ``, he was`` → ``Yes, he was``), as typing the punctuation would


@dataclass
class _BufferState:
    """What the suggester knows about one buffer. Each piece says which text it belongs to."""

    text: str | None = None  # the model's text ``alternatives`` and ``index`` describe
    key: _Key = (0, (0, 0, 0), 0)  # (predictor, answers' version, k) they were computed under
    alternatives: list[WordSuggestion] = field(default_factory=list)
    insertions: list[str] = field(default_factory=list)  # what each alternative appends to ``text``
    end: float = 0.0  # probability that the line ends here (the end-of-utterance token), for the toolbar
    index: int = 0  # which alternative the grey text shows
    sample: _Sample | None = None  # a Ctrl-T continuation shown instead of the greedy one (see _Sample)
    shown: tuple[object, Suggestion | None] | None = None  # (what it depends on, the grey text computed for it)
    accepted: tuple[Document, str, str, _Sample | None] | None = None  # last acceptance: (before, text after,
    # suggestion, the sample it came from if any)
    auto_space: str | None = None  # the text right after an acceptance added a space (punctuation replaces it)
    pending: tuple[str, _Key] | None = None  # (text, key) being computed for the toolbar
    watched: bool = False  # a text-change handler is attached to the buffer


@dataclass(frozen=True)
class _Answer:
    """The predictor's answer for one text. On each key the grey text, the menu and the toolbar all ask about the
    same text: it is computed once (:func:`_answer`) and shared."""

    partial: str  # the word being typed at the end of the text ("" between words)
    words: tuple[WordSuggestion, ...]  # the k most likely words
    insertions: tuple[str, ...]  # what each of them appends to the text (Predictor.insertions)


class _Answers:
    """The last few answers of one predictor, by text, k and :attr:`Predictor.answers_version` (any thread)."""

    SIZE = 64  # a burst of keys files an answer per text typed, and late askers must still find theirs

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the table, held only to read or file an answer
        # one computation at a time (the predictor runs one query at a time anyway): the grey text, the menu and the
        # toolbar ask about a new text at once from three threads, and the two that wait get the first one's answer
        # rather than computing it again, possibly from LSTM states computed since with other adapted weights
        self._computing = threading.Lock()
        self._last: OrderedDict[tuple[str, int, object], _Answer] = OrderedDict()

    def _filed(self, key: tuple[str, int, object]) -> _Answer | None:
        with self._lock:
            return self._last.get(key)

    def get(self, predictor: Predictor, text: str, k: int) -> _Answer:
        key = (text, k, predictor.answers_version)  # taken first: an answer computed as the context changes is
        answer = self._filed(key)  # filed under the older version, which is never asked for again
        if answer is not None:
            return answer
        with self._computing:
            answer = self._filed(key)
            if answer is not None:
                return answer
            words = predictor.suggest(text, k)
            partial = predictor.tokenizer.split_partial(text)[1]
            answer = _Answer(partial, tuple(words), tuple(predictor.insertions(text, words)))
            with self._lock:
                self._last[key] = answer
                if len(self._last) > self.SIZE:
                    self._last.popitem(last=False)
        return answer


_ANSWERS: weakref.WeakKeyDictionary[Predictor, _Answers] = weakref.WeakKeyDictionary()
_ANSWERS_LOCK = threading.Lock()


def _answer(predictor: Predictor, text: str, k: int) -> _Answer:
    """The ``k`` words for ``text`` and what each appends to it, computed once per text however many adapters (of
    however many buffers) share ``predictor``."""
    with _ANSWERS_LOCK:
        answers = _ANSWERS.get(predictor)
        if answers is None:
            answers = _ANSWERS[predictor] = _Answers()
    return answers.get(predictor, text, k)


def _schedule(make: Callable[[Application[Any]], Coroutine[Any, Any, None]]) -> None:
    """Run ``make(app)`` as a background task of the running application, from any thread; without a running
    application (a host changing the text between two prompts) there is nothing to update and nothing is run."""
    app = get_app_or_none()
    if app is None or not app.is_running or app.loop is None:
        return
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is app.loop:
        app.create_background_task(make(app))
    else:
        app.loop.call_soon_threadsafe(lambda: app.create_background_task(make(app)))


class LanguageModelAutoSuggest(AutoSuggest):
    """Grey text after the cursor: the rest of the current word and the most likely next word(s).

    ``context(document)`` says what the model reads (by default everything before the cursor) or returns None where
    the model has nothing to say (e.g. :func:`python_prose` in a Python shell: only comments and strings). There,
    and where the model has no suggestion, ``fallback`` (the host's own suggester, e.g. its history) answers.

    Grey text is computed only with the cursor at the end of the text, where prompt_toolkit draws it; hosts that draw
    suggestions at the end of any line (IPython) set ``any_line``.

    Concurrency: prompt_toolkit calls ``get_suggestion_async``, which runs the model in a worker thread. A
    synchronous ``get_suggestion`` (IPython's Backspace and Right handlers call it on the UI thread) never runs the
    model: it answers from what was computed for this text, else starts the computation in the background (shown when
    ready, if the text is still the same) and returns None.
    """

    def __init__(
        self,
        predictor: Predictor,
        settings: SamplingSettings | None = None,
        context: Context = text_before_cursor,
        fallback: AutoSuggest | None = None,
        any_line: bool = False,
    ) -> None:
        self.predictor = predictor
        self.settings = settings or SamplingSettings()
        self.context = context
        self.fallback = fallback
        self.any_line = any_line
        self._states: weakref.WeakKeyDictionary[Buffer, _BufferState] = weakref.WeakKeyDictionary()
        self._ghost_cache: dict[tuple[int, tuple[int, int, int], str, int], str] = {}
        self._lock = threading.Lock()

    def state(self, buffer: Buffer) -> _BufferState:
        with self._lock:
            if buffer not in self._states:
                self._states[buffer] = _BufferState()
            return self._states[buffer]

    def serves(self, buffer: Buffer) -> bool:
        """Whether ``buffer`` is one this suggester serves: its auto-suggest is this one (or wraps it: a
        ``ThreadedAutoSuggest``, ``ConditionalAutoSuggest`` or ``DynamicAutoSuggest`` around it), or it has asked this
        one for grey text. The keys of :func:`key_bindings` act only there, never in a host's other fields."""
        with self._lock:
            state = self._states.get(buffer)
        if state is not None and state.watched:
            return True
        suggester: object = buffer.auto_suggest
        for _ in range(8):  # wrappers of wrappers, a few deep at most
            if suggester is self:
                return True
            if isinstance(suggester, DynamicAutoSuggest):
                suggester = suggester.get_auto_suggest()
            else:
                suggester = getattr(suggester, "auto_suggest", None)
            if suggester is None:
                return False
        return False

    def at_ghost(self, document: Document) -> bool:
        """Whether the cursor is where grey text is drawn (the end of the text, or of the line with ``any_line``)."""
        return document.is_cursor_at_the_end_of_line if self.any_line else document.is_cursor_at_the_end

    def model_text(self, document: Document) -> str | None:
        """What the model reads for grey text at ``document``'s cursor, or None where there is none to show."""
        return self.context(document) if self.at_ghost(document) else None

    # ---- the computation (worker thread) ------------------------------------------------------------------------

    def _key(self) -> _Key:
        """What else the candidates depend on: the predictor, its answers' version (a new line in the session, or
        something learned from one) and how many are asked for."""
        return id(self.predictor), self.predictor.answers_version, self.settings.suggestions

    def _fresh(self, state: _BufferState, text: str) -> bool:
        return state.text == text and state.key == self._key()

    def _alternatives(self, buffer: Buffer, text: str) -> _BufferState:
        state = self.state(buffer)
        if not self._fresh(state, text):
            key = self._key()
            answer = _answer(self.predictor, text, self.settings.suggestions)
            end = 0.0
            if not answer.partial:
                end = float(self.predictor.distribution(text)[EOS_ID])
            with self._lock:
                state.text, state.key, state.end, state.index = text, key, end, 0
                state.alternatives, state.insertions = list(answer.words), list(answer.insertions)
        return state

    def _shown_key(self, state: _BufferState, text: str) -> object:
        return text, self._key(), state.index, self._sample(state, text), self.settings.ghost_words

    def _context_id(self) -> tuple[int, int]:
        return id(self.predictor), self.predictor.context_version

    def _sample(self, state: _BufferState, text: str | None) -> _Sample | None:
        """``state``'s sample if it continues ``text`` in the committed context as it is now, else None."""
        sample = state.sample
        if sample is None or text is None or sample.text != text or sample.context != self._context_id():
            return None
        return sample

    def _sample_continuation(self, text: str) -> _Sample:
        """A sampled continuation of ``text``. After typed space(s), it is sampled as if they were not typed, so
        that the detokenizer says whether its first piece takes a space (as :meth:`Predictor.insertions` does for
        one word): a word drops its space (it is already typed), punctuation ``joins`` the word before them."""
        config = self.settings.config
        context = self._context_id()
        word_end = text.rstrip(" \t")
        if word_end == text or not word_end or word_end[-1].isspace():
            continuation = self.predictor.continuation(text, config, stop_at="sentence", nonempty=True).text
            return _Sample(text, context, continuation)
        continuation = self.predictor.continuation(
            word_end, config, stop_at="sentence", nonempty=True, finished=True
        ).text
        if continuation[:1].isspace():
            return _Sample(text, context, continuation.lstrip(" \t"))
        return _Sample(text, context, continuation, joins=bool(continuation))

    def dismiss_sample(self, buffer: Buffer) -> None:
        """Drop ``buffer``'s Ctrl-T sample (Esc; a host's new prompt or cleared line), so the greedy text comes back."""
        state = self.state(buffer)
        with self._lock:
            state.sample = None

    def compute(self, buffer: Buffer, document: Document, cycle: int = 0, sample: bool = False) -> Suggestion | None:
        """The grey text for ``document`` in ``buffer`` (model work: call it from a worker thread), cycling the
        alternative or sampling a continuation when asked. None where the model has nothing to show."""
        text = self.model_text(document)
        if text is None:
            return None
        state = self._alternatives(buffer, text)
        if sample:
            sampled = self._sample_continuation(text)
            with self._lock:
                state.sample = sampled if sampled.continuation else None
        if cycle and state.alternatives:
            with self._lock:
                state.index = (state.index + cycle) % len(state.alternatives)
                state.sample = None
        key = self._shown_key(state, text)
        suggestion = self._ghost(state, text)
        with self._lock:
            state.shown = (key, suggestion)
        return suggestion

    def _ghost(self, state: _BufferState, text: str) -> Suggestion | None:
        sample = self._sample(state, text)
        if sample is not None:
            return Suggestion(sample.continuation)
        if not state.alternatives:
            return None
        insert = state.insertions[min(state.index, len(state.alternatives) - 1)]
        extra = ""
        if self.settings.ghost_words > 1 or not insert:
            # a word typed out in full (``I will``) shows the words after it rather than nothing
            words = self.settings.ghost_words - 1 if insert else max(1, self.settings.ghost_words - 1)
            extra = self._greedy_after(text + insert, words)
        return Suggestion(insert + extra) if insert + extra else None

    def _greedy_after(self, text: str, words: int) -> str:
        """The greedy words after ``text`` (whose last word is complete), cached: while a word is being typed,
        every keystroke completes it to the same text."""
        p = self.predictor
        key = (id(p), p.answers_version, text, words)
        extra = self._ghost_cache.get(key)
        if extra is None:
            extra = p.continuation(text, max_words=words, temperature=0, stop_at="sentence", finished=True).text
            with self._lock:
                if len(self._ghost_cache) >= 512:
                    self._ghost_cache.clear()
                self._ghost_cache[key] = extra
        return extra

    def cached(self, buffer: Buffer, document: Document) -> Suggestion | None | object:
        """The grey text already computed for ``document``, or ``_MISSING`` (no model work: safe on the UI thread)."""
        text = self.model_text(document)
        if text is None:
            return None
        state = self.state(buffer)
        with self._lock:
            if state.shown is not None and self._fresh(state, text) and state.shown[0] == self._shown_key(state, text):
                return state.shown[1]
        return _MISSING

    def get_suggestion(self, buffer: Buffer, document: Document) -> Suggestion | None:
        """The synchronous entry (hosts' key handlers call it on the UI thread): never runs the model."""
        self._watch(buffer)
        if self.model_text(document) is None:
            return self.fallback.get_suggestion(buffer, document) if self.fallback else None
        suggestion = self.cached(buffer, document)
        if suggestion is _MISSING:
            self.refresh(buffer)
            suggestion = None
        if suggestion is None and self.fallback:
            return self.fallback.get_suggestion(buffer, document)
        return suggestion  # type: ignore[return-value]

    async def get_suggestion_async(self, buffer: Buffer, document: Document) -> Suggestion | None:
        self._watch(buffer)
        suggestion = None
        if self.model_text(document) is not None:
            suggestion = await run_in_executor_with_context(lambda: self.compute(buffer, document))
        if suggestion is None and self.fallback:
            return await self.fallback.get_suggestion_async(buffer, document)
        return suggestion

    # ---- UI-thread helpers --------------------------------------------------------------------------------------

    def _watch(self, buffer: Buffer) -> None:
        """prompt_toolkit suggests after typed insertions only; also refresh after deletions, a menu word put in by
        Tab, a history recall and any other change, so the grey text always follows the text. A Ctrl-T sample ends
        with any edit and with the line: the next run of the application (a new prompt) starts without it."""
        state = self.state(buffer)
        if state.watched:
            return
        state.watched = True

        def changed(_: Buffer) -> None:
            sample = state.sample
            if sample is not None and self.model_text(buffer.document) != sample.text:
                self.dismiss_sample(buffer)  # a sample continues one text: an edit or a cleared line ends it
            if buffer.suggestion is None:
                self.refresh(buffer)

        buffer.on_text_changed += changed
        app = get_app_or_none()
        if app is not None:  # each run of the host's application reads a new line (after Enter or Ctrl-C)
            owner = weakref.ref(buffer)

            def new_line(_: Application[Any]) -> None:
                held = owner()
                if held is not None:
                    self.dismiss_sample(held)

            app.on_reset += new_line

    def refresh(self, buffer: Buffer, cycle: int = 0, sample: bool = False) -> None:
        """Recompute the grey text in the background; it is shown only if the text is still the same. Does nothing
        while no application runs (nothing could show it)."""
        self._watch(buffer)
        document = buffer.document
        shown = buffer.suggestion
        if self.model_text(document) is None:
            return

        async def run(app: Application[Any]) -> None:
            suggestion = self.cached(buffer, document) if not (cycle or sample) else _MISSING
            if suggestion is _MISSING:
                suggestion = await run_in_executor_with_context(
                    lambda: self.compute(buffer, document, cycle, sample)
                )
            if buffer.document == document and buffer.suggestion is shown:  # nothing newer happened meanwhile
                if suggestion is None and self.fallback and not (cycle or sample):
                    suggestion = await self.fallback.get_suggestion_async(buffer, document)
                    if buffer.document != document or buffer.suggestion is not shown:
                        return
                buffer.suggestion = suggestion  # type: ignore[assignment]
                app.invalidate()

        _schedule(run)

    def alternatives(self, buffer: Buffer, update: bool = False) -> list[WordSuggestion]:
        """The candidates for the text before the buffer's cursor, or [] while they are being computed (or where
        the context says the model has nothing to say).

        With ``update``, stale candidates are recomputed in the background and the screen redrawn when ready.
        """
        state = self.state(buffer)
        text = self.context(buffer.document)
        if text is None:
            return []
        with self._lock:
            if self._fresh(state, text):
                return list(state.alternatives)
            if not update or state.pending == (text, self._key()):
                return []
            state.pending = (text, self._key())

        async def run(app: Application[Any]) -> None:
            try:
                await run_in_executor_with_context(lambda: self._alternatives(buffer, text))
            finally:
                with self._lock:
                    state.pending = None  # also when the application ended first: the next one asks again
            app.invalidate()

        _schedule(run)
        return []

    def line_end(self, buffer: Buffer) -> float | None:
        """The probability that the text before the cursor ends its line here (after ``restaurant?`` most of the
        mass goes there, which is why the words look unlikely), or None until it is computed."""
        state = self.state(buffer)
        text = self.context(buffer.document)
        with self._lock:
            return state.end if text is not None and self._fresh(state, text) else None

    def shown_word(self, buffer: Buffer) -> str | None:
        """The alternative the grey text shows (Alt-N / Alt-P walk them), or None."""
        state = self.state(buffer)
        text = self.context(buffer.document)
        with self._lock:
            if text is None or not self._fresh(state, text) or not state.alternatives or buffer.suggestion is None:
                return None
            if self._sample(state, text) is not None:
                return None
            return state.alternatives[min(state.index, len(state.alternatives) - 1)].word

    def sampling(self, buffer: Buffer) -> bool:
        """Whether the grey text is a sampled continuation (Ctrl-T) rather than the greedy one."""
        state = self.state(buffer)
        text = self.model_text(buffer.document)
        return self._sample(state, text) is not None and buffer.suggestion is not None


def show_learned(app: Application[Any], buffer: Buffer, suggest: LanguageModelAutoSuggest) -> None:
    """The predictor's answers changed while ``buffer`` waits for a key (its learner finished a line): recompute an
    open menu that has no selection and the grey text (unless cycled or sampled), so both show the new numbers."""
    if suggest.context(buffer.document) is None:
        return  # the host's own suggestions and menu (in code): not ours to recompute
    completing = buffer.complete_state
    if completing is not None and completing.complete_index is None:
        buffer.cancel_completion()  # an open menu is never recomputed (prompt_toolkit): a new one
        buffer.start_completion(select_first=False)
    if suggest.state(buffer).index == 0 and not suggest.sampling(buffer):
        suggest.refresh(buffer)
    app.invalidate()


def follow_learning(app: Application[Any], buffer: Buffer, suggest: LanguageModelAutoSuggest) -> Callable[[], None]:
    """Have ``app`` show in ``buffer`` what ``suggest``'s predictor learns as soon as it is learned
    (:func:`show_learned`), whenever it runs (a host's application runs once per prompt, as IPython's and ptpython's
    do); returns the function that stops it. A line is learned in the background after it is committed, often while
    the next is being typed. The learner says when (:meth:`Personal.watch`): an idle prompt never wakes."""
    predictor = suggest.predictor
    personal = predictor.personal
    if personal is None:
        return lambda: None
    seen = predictor.answers_version

    def update() -> None:  # in the application's event loop
        nonlocal seen
        if predictor.answers_version == seen or not app.is_running:
            return
        seen = predictor.answers_version
        with set_app(app):
            show_learned(app, buffer, suggest)

    def learned() -> None:  # in the learner's thread: return at once
        loop = app.loop
        if app.is_running and loop is not None:
            loop.call_soon_threadsafe(update)

    return personal.watch(learned)


class LanguageModelCompleter(Completer):
    """Completion menu: the most likely words for the position of the cursor, with their probabilities.

    ``context`` and ``fallback`` work as for :class:`LanguageModelAutoSuggest`: where the context is None, the
    fallback completer (the host's own) answers. Given the suggester (``suggest``), the menu marks the word its grey
    text currently shows.

    FuzzyCompleter caveat: prompt_toolkit's ``FuzzyCompleter`` asks the completer with the partial word removed and
    filters the answers, so only the top next words survive (``The weather is ni`` loses ``nice``). Use this
    completer unwrapped: the model already ranks every word that starts with what was typed.
    """

    def __init__(
        self,
        predictor: Predictor,
        settings: SamplingSettings | None = None,
        context: Context = text_before_cursor,
        fallback: Completer | None = None,
        suggest: LanguageModelAutoSuggest | None = None,
    ) -> None:
        self.predictor = predictor
        self.settings = settings or SamplingSettings()
        self.context = context
        self.fallback = fallback
        self.suggest = suggest

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = self.context(document)
        if text is None:
            if self.fallback:
                yield from self.fallback.get_completions(document, complete_event)
            return
        yield from self._words(text)

    def _words(self, text: str) -> Iterable[Completion]:
        answer = _answer(self.predictor, text, self.settings.suggestions)
        for s, insert in zip(answer.words, answer.insertions):
            yield Completion(
                (s.word if answer.partial else insert) + " ",
                start_position=-len(answer.partial),
                display=s.word,
                display_meta=self._meta(s),
            )

    def _meta(self, s: WordSuggestion) -> str | Callable[[], str]:
        shown = percent(s.probability)
        suggest = self.suggest
        if suggest is None:
            return shown

        def meta() -> str:  # evaluated at each redraw: follows Alt-N / Alt-P while the menu is open
            return f"{shown} ◂" if suggest.shown_word(get_app().current_buffer) == s.word else shown

        return meta

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        text = self.context(document)
        if text is None:
            if self.fallback:
                async for completion in self.fallback.get_completions_async(document, complete_event):
                    yield completion
            return
        completions = await run_in_executor_with_context(lambda: list(self._words(text)))
        for completion in completions:
            yield completion


def key_bindings(
    suggest: LanguageModelAutoSuggest, filter: FilterOrBool = True, tab: FilterOrBool = True
) -> KeyBindings:
    """The keys listed in the module docstring, for ``suggest``'s buffers. Merge them with your own.

    Every key is claimed only where ``filter`` holds (a host passes e.g. "the cursor is in a comment" and keeps its
    own keys everywhere else). ``tab`` says where Tab and Shift-Tab open the menu (False: never, leaving Tab to the
    host; a filter, e.g. "not in leading whitespace", so Tab still indents).
    """
    kb = KeyBindings()
    settings = suggest.settings

    @Condition
    def served() -> bool:  # a host's other fields (a search box without a model) keep their keys
        return suggest.serves(get_app().current_buffer)

    where = served & to_filter(filter)
    tab_where = where & to_filter(tab)

    def add(*keys: str, filter: Filter = Always(), base: Filter = where) -> Callable[[Any], Any]:
        return kb.add(*keys, filter=base & filter)

    @Condition
    def has_suggestion() -> bool:
        b = get_app().current_buffer
        return b.suggestion is not None and bool(b.suggestion.text) and suggest.at_ghost(b.document)

    @Condition
    def at_end() -> bool:
        return suggest.at_ghost(get_app().current_buffer.document)

    @Condition
    def can_take_back() -> bool:
        b = get_app().current_buffer
        accepted = suggest.state(b).accepted
        return accepted is not None and accepted[1] == b.text

    @Condition
    def sampling() -> bool:
        return suggest.sampling(get_app().current_buffer)

    def accept(b: Buffer, text: str) -> None:
        """Insert ``text`` (all or the start of the suggestion); a finished word gets its space, like a phone."""
        full = b.suggestion.text if b.suggestion else text
        before = b.document
        rest = full[len(text) :]
        state = suggest.state(b)
        sample = suggest._sample(state, suggest.model_text(before))
        space = text[-1:].isalnum() and (not rest or rest[0].isspace())
        if space:
            text, rest = text + " ", rest.lstrip()
        if sample is not None and sample.joins:  # ``Yes `` + ``, he`` → ``Yes, he``
            typed = before.text_before_cursor
            b.delete_before_cursor(len(typed) - len(typed.rstrip(" \t")))
        b.insert_text(text)
        state.accepted = (before, b.text, full, sample)
        state.auto_space = b.text if space else None
        if rest:  # keep showing what is left of the suggestion (e.g. the rest of a sampled continuation)
            b.suggestion = Suggestion(rest)
            after = suggest.model_text(b.document)
            if sample is not None and after is not None:
                state.sample = _Sample(after, sample.context, rest)

    @Condition
    def after_auto_space() -> bool:
        b = get_app().current_buffer
        return suggest.state(b).auto_space == b.text or _picked_with_its_space(b)

    def punctuation(char: str) -> None:
        @add(char, filter=after_auto_space)
        def _punctuate(event: KeyPressEvent) -> None:
            """Typing punctuation right after an accepted word replaces the space that came with it."""
            b = event.current_buffer
            suggest.state(b).auto_space = None
            b.complete_state = None  # a word picked in the menu: kept, the menu closed
            b.delete_before_cursor(1)
            b.insert_text(char)

    for char in ".,;:!?)":
        punctuation(char)

    @add(" ", filter=after_auto_space)
    def _absorb_space(event: KeyPressEvent) -> None:
        """A space typed right after an accepted word is the one that came with it, as on a phone: taken once (a
        second one is typed), so accepting and then typing a space as usual never leaves two. Backspace then deletes
        that space, as after a word picked in the menu, rather than taking the whole acceptance back."""
        b = event.current_buffer
        state = suggest.state(b)
        state.auto_space, state.accepted = None, None
        b.complete_state = None  # a word picked in the menu: kept, the menu closed

    @add("right", filter=has_suggestion)
    @add("c-f", filter=has_suggestion)
    @add("c-e", filter=has_suggestion)
    def _accept_all(event: KeyPressEvent) -> None:
        b = event.current_buffer
        if b.suggestion:
            accept(b, b.suggestion.text)

    @add("escape", "f", filter=has_suggestion)
    @add("c-right", filter=has_suggestion)
    def _accept_word(event: KeyPressEvent) -> None:
        b = event.current_buffer
        if b.suggestion:
            match = _FIRST_WORD.match(b.suggestion.text)
            accept(b, match.group() if match else b.suggestion.text)

    # Ctrl-Down / Ctrl-Up too while the menu is open (it nearly always is while typing): the menu keeps its own
    # Up / Down, and marks the alternative shown
    @add("escape", "n", filter=at_end)
    @add("c-down", filter=at_end)
    def _next(event: KeyPressEvent) -> None:
        suggest.refresh(event.current_buffer, cycle=1)

    @add("escape", "p", filter=at_end)
    @add("c-up", filter=at_end)
    def _previous(event: KeyPressEvent) -> None:
        suggest.refresh(event.current_buffer, cycle=-1)

    @add("tab", base=tab_where)
    def _menu(event: KeyPressEvent) -> None:
        _walk_menu(event.current_buffer, forward=True)

    @add("s-tab", base=tab_where)
    def _menu_back(event: KeyPressEvent) -> None:
        _walk_menu(event.current_buffer, forward=False)

    @add("c-t", filter=at_end)
    def _sample(event: KeyPressEvent) -> None:
        b = event.current_buffer
        b.complete_state = None  # the menu (its text kept) would cover a sample that wraps below the line
        suggest.refresh(b, sample=True)

    @add("escape", filter=sampling)
    def _dismiss(event: KeyPressEvent) -> None:
        b = event.current_buffer
        suggest.dismiss_sample(b)
        b.suggestion = None
        suggest.refresh(b)

    def change_temperature(delta: float) -> None:
        settings.config = settings.config.with_temperature(settings.temperature + delta)
        get_app().invalidate()

    @add("escape", "+")
    @add("escape", "=")
    def _hotter(event: KeyPressEvent) -> None:
        change_temperature(0.1)

    @add("escape", "-")
    def _colder(event: KeyPressEvent) -> None:
        change_temperature(-0.1)

    @add("backspace", filter=can_take_back)
    @add("c-h", filter=can_take_back)
    def _take_back(event: KeyPressEvent) -> None:
        b = event.current_buffer
        state = suggest.state(b)
        assert state.accepted is not None
        before, _, full, sample = state.accepted
        state.accepted = None
        b.document = before
        b.suggestion = Suggestion(full)
        if sample is not None:
            state.sample = sample

    return kb


def _picked_with_its_space(b: Buffer) -> bool:
    """Whether the menu is open on a word it put in the text with its space, the cursor right after that space."""
    current = b.complete_state.current_completion if b.complete_state else None
    return current is not None and current.text.endswith(" ") and b.document.text_before_cursor.endswith(current.text)


def _walk_menu(b: Buffer, forward: bool) -> None:
    """Tab / Shift-Tab: open the menu on the first / last candidate, then walk it."""
    if b.complete_state:
        b.complete_next() if forward else b.complete_previous()
    else:
        b.start_completion(select_first=forward, select_last=not forward)
