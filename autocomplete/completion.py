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

The adapters only translate between prompt_toolkit's ``Document``/``Buffer`` and :class:`Predictor` calls. Model work
always runs in a worker thread (prompt_toolkit's executor); a result computed for a text that has changed since is
dropped, never shown. One predictor may be shared by any number of completers, suggesters and buffers: it serialises
its own calls.

Keys added by :func:`key_bindings`:

=====================  ==============================================================================
Right, Ctrl-E, Ctrl-F  accept the whole grey suggestion
Alt-F, Ctrl-Right      accept its next word
Alt-N / Alt-P          next / previous alternative word (also Ctrl-Down / Ctrl-Up)
Tab / Shift-Tab        open the menu of candidates and walk through it
Ctrl-T                 sample a multi-word continuation at the current temperature (Esc dismisses it)
Alt-+ / Alt--          raise / lower the temperature (Alt-= works as Alt-+)
Backspace              right after accepting: take the accepted text back and show the suggestion again
=====================  ==============================================================================
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field

from prompt_toolkit.application.current import get_app
from prompt_toolkit.auto_suggest import AutoSuggest, Suggestion
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.eventloop import run_in_executor_with_context
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from autocomplete.display import percent
from autocomplete.errors import ConfigError
from autocomplete.predictor import Predictor
from autocomplete.predictor import Suggestion as WordSuggestion
from autocomplete.predictor import load as load_predictor
from autocomplete.settings import SamplingConfig

__all__ = [
    "LanguageModelAutoSuggest", "LanguageModelCompleter", "SamplingSettings", "key_bindings",
    "load_predictor", "percent",  # the engine's, re-exported for programs written against older versions
]

Enabled = Callable[[Document], bool]
_FIRST_WORD = re.compile(r"\s*\S+")


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


@dataclass
class _BufferState:
    """What the suggester knows about one buffer. Each piece says which text it belongs to."""

    text: str | None = None  # the text ``alternatives`` and ``index`` describe
    context: tuple[int, int] = (0, -1)  # (predictor, committed-context version) they were computed under
    alternatives: list[WordSuggestion] = field(default_factory=list)
    index: int = 0  # which alternative the grey text shows
    sample_for: str | None = None  # the text ``sample`` continues
    sample: str | None = None  # a Ctrl-T continuation shown instead of the greedy one
    accepted: tuple[str, str, str, bool] | None = None  # last acceptance: (before, after, suggestion, was a sample)
    auto_space: str | None = None  # the text right after an acceptance added a space (punctuation replaces it)
    pending: tuple[str, tuple[int, int]] | None = None  # (text, context) being computed for the toolbar
    watched: bool = False  # a deletion handler is attached to the buffer


def _always(document: Document) -> bool:
    return True


class LanguageModelAutoSuggest(AutoSuggest):
    """Grey text after the cursor: the rest of the current word and the most likely next word(s).

    ``get_suggestion`` does model work and blocks; prompt_toolkit calls ``get_suggestion_async``, which runs it in a
    worker thread. ``enabled(document)`` can switch suggestions off (e.g. while typing a command).
    """

    def __init__(
        self, predictor: Predictor, settings: SamplingSettings | None = None, enabled: Enabled = _always
    ) -> None:
        self.predictor = predictor
        self.settings = settings or SamplingSettings()
        self.enabled = enabled
        self._states: weakref.WeakKeyDictionary[Buffer, _BufferState] = weakref.WeakKeyDictionary()
        self._ghost_cache: dict[tuple[int, int, str, int], str] = {}
        self._lock = threading.Lock()

    def state(self, buffer: Buffer) -> _BufferState:
        with self._lock:
            if buffer not in self._states:
                self._states[buffer] = _BufferState()
            return self._states[buffer]

    # ---- the computation (worker thread) ------------------------------------------------------------------------

    def _context(self) -> tuple[int, int]:
        """What else the candidates depend on: the predictor and its committed context (a new line in the session)."""
        return id(self.predictor), self.predictor.context_version

    def _fresh(self, state: _BufferState, text: str) -> bool:
        return state.text == text and state.context == self._context()

    def _alternatives(self, buffer: Buffer, text: str) -> _BufferState:
        state = self.state(buffer)
        if not self._fresh(state, text):
            context = self._context()
            alternatives = self.predictor.suggest(text, self.settings.suggestions)
            with self._lock:
                state.text, state.context, state.alternatives, state.index = text, context, alternatives, 0
        return state

    def compute(self, buffer: Buffer, document: Document, cycle: int = 0, sample: bool = False) -> Suggestion | None:
        """The grey text for ``document`` in ``buffer``: cycles the alternative or samples when asked."""
        if not document.is_cursor_at_the_end or not self.enabled(document):
            return None
        text = document.text
        state = self._alternatives(buffer, text)
        s = self.settings
        if sample:
            continuation = self.predictor.continuation(text, s.config, stop_at="sentence", nonempty=True)
            with self._lock:
                state.sample_for, state.sample = text, continuation.text or None
        if cycle and state.alternatives:
            with self._lock:
                state.index = (state.index + cycle) % len(state.alternatives)
                state.sample = None
        if state.sample and state.sample_for == text:
            return Suggestion(state.sample)
        if not state.alternatives:
            return None
        word = state.alternatives[min(state.index, len(state.alternatives) - 1)]
        insert = self.predictor.insertion(text, word)
        extra = ""
        if s.ghost_words > 1 and insert:
            extra = self._greedy_after(text + insert)
        return Suggestion(insert + extra) if insert + extra else None

    def _greedy_after(self, text: str) -> str:
        """The greedy words after ``text`` (whose last word is complete), cached: while a word is being typed,
        every keystroke completes it to the same text."""
        p, words = self.predictor, self.settings.ghost_words - 1
        key = (id(p), p.context_version, text, words)
        extra = self._ghost_cache.get(key)
        if extra is None:
            extra = p.continuation(text, max_words=words, temperature=0, stop_at="sentence", finished=True).text
            with self._lock:
                if len(self._ghost_cache) >= 512:
                    self._ghost_cache.clear()
                self._ghost_cache[key] = extra
        return extra

    def get_suggestion(self, buffer: Buffer, document: Document) -> Suggestion | None:
        return self.compute(buffer, document)

    async def get_suggestion_async(self, buffer: Buffer, document: Document) -> Suggestion | None:
        self._watch(buffer)
        return await run_in_executor_with_context(lambda: self.compute(buffer, document))

    # ---- UI-thread helpers --------------------------------------------------------------------------------------

    def _watch(self, buffer: Buffer) -> None:
        """prompt_toolkit suggests after insertions only; refresh after deletions too."""
        state = self.state(buffer)
        if state.watched:
            return
        state.watched = True
        previous = {"text": buffer.text}

        def changed(_: Buffer) -> None:
            shorter = len(buffer.text) < len(previous["text"])
            previous["text"] = buffer.text
            if shorter and buffer.suggestion is None:
                self.refresh(buffer)

        buffer.on_text_changed += changed

    def refresh(self, buffer: Buffer, cycle: int = 0, sample: bool = False) -> None:
        """Recompute the grey text in the background; it is shown only if the text is still the same."""
        self._watch(buffer)
        app = get_app()
        document = buffer.document
        shown = buffer.suggestion

        async def run() -> None:
            suggestion = await run_in_executor_with_context(lambda: self.compute(buffer, document, cycle, sample))
            if buffer.document == document and buffer.suggestion is shown:  # nothing newer happened meanwhile
                buffer.suggestion = suggestion
                app.invalidate()

        app.create_background_task(run())

    def alternatives(self, buffer: Buffer, update: bool = False) -> list[WordSuggestion]:
        """The candidates for the buffer's current text, or [] while they are being computed.

        With ``update``, stale candidates are recomputed in the background and the screen redrawn when ready.
        """
        state = self.state(buffer)
        text = buffer.text
        with self._lock:
            if self._fresh(state, text):
                return list(state.alternatives)
            if not update or state.pending == (text, self._context()) or not self.enabled(buffer.document):
                return []
            state.pending = (text, self._context())
        app = get_app()

        async def run() -> None:
            await run_in_executor_with_context(lambda: self._alternatives(buffer, text))
            app.invalidate()

        app.create_background_task(run())
        return []

    def sampling(self, buffer: Buffer) -> bool:
        """Whether the grey text is a sampled continuation (Ctrl-T) rather than the greedy one."""
        state = self.state(buffer)
        return state.sample_for == buffer.text and state.sample is not None and buffer.suggestion is not None


class LanguageModelCompleter(Completer):
    """Completion menu: the most likely words for the position of the cursor, with their probabilities."""

    def __init__(
        self, predictor: Predictor, settings: SamplingSettings | None = None, enabled: Enabled = _always
    ) -> None:
        self.predictor = predictor
        self.settings = settings or SamplingSettings()
        self.enabled = enabled

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        if not self.enabled(document):
            return
        text = document.text_before_cursor
        _, partial = self.predictor.tokenizer.split_partial(text)
        for s in self.predictor.suggest(text, self.settings.suggestions):
            insert = self.predictor.insertion(text, s)
            yield Completion(
                (s.word if partial else insert) + " ",
                start_position=-len(partial),
                display=s.word,
                display_meta=percent(s.probability),
            )

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        completions = await run_in_executor_with_context(lambda: list(self.get_completions(document, complete_event)))
        for completion in completions:
            yield completion


def key_bindings(suggest: LanguageModelAutoSuggest) -> KeyBindings:
    """The keys listed in the module docstring, for ``suggest``'s buffers. Merge them with your own."""
    kb = KeyBindings()
    settings = suggest.settings

    @Condition
    def has_suggestion() -> bool:
        b = get_app().current_buffer
        return b.suggestion is not None and bool(b.suggestion.text) and b.document.is_cursor_at_the_end

    @Condition
    def at_end() -> bool:
        return get_app().current_buffer.document.is_cursor_at_the_end

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
        before = b.text
        rest = full[len(text) :]
        state = suggest.state(b)
        was_sample = state.sample is not None and state.sample_for == before
        space = text[-1:].isalnum() and (not rest or rest[0].isspace())
        if space:
            text, rest = text + " ", rest.lstrip()
        b.insert_text(text)
        state.accepted = (before, b.text, full, was_sample)
        state.auto_space = b.text if space else None
        if rest:  # keep showing what is left of the suggestion (e.g. the rest of a sampled continuation)
            b.suggestion = Suggestion(rest)
            if was_sample:
                state.sample_for, state.sample = b.text, rest

    @Condition
    def after_auto_space() -> bool:
        b = get_app().current_buffer
        return suggest.state(b).auto_space == b.text

    def punctuation(char: str) -> None:
        @kb.add(char, filter=after_auto_space)
        def _punctuate(event: KeyPressEvent) -> None:
            """Typing punctuation right after an accepted word replaces the space that came with it."""
            b = event.current_buffer
            suggest.state(b).auto_space = None
            b.delete_before_cursor(1)
            b.insert_text(char)

    for char in ".,;:!?)":
        punctuation(char)

    @kb.add("right", filter=has_suggestion)
    @kb.add("c-f", filter=has_suggestion)
    @kb.add("c-e", filter=has_suggestion)
    def _accept_all(event: KeyPressEvent) -> None:
        b = event.current_buffer
        if b.suggestion:
            accept(b, b.suggestion.text)

    @kb.add("escape", "f", filter=has_suggestion)
    @kb.add("c-right", filter=has_suggestion)
    def _accept_word(event: KeyPressEvent) -> None:
        b = event.current_buffer
        if b.suggestion:
            match = _FIRST_WORD.match(b.suggestion.text)
            accept(b, match.group() if match else b.suggestion.text)

    @kb.add("escape", "n", filter=at_end)
    @kb.add("c-down", filter=at_end & ~Condition(lambda: get_app().current_buffer.complete_state is not None))
    def _next(event: KeyPressEvent) -> None:
        suggest.refresh(event.current_buffer, cycle=1)

    @kb.add("escape", "p", filter=at_end)
    @kb.add("c-up", filter=at_end & ~Condition(lambda: get_app().current_buffer.complete_state is not None))
    def _previous(event: KeyPressEvent) -> None:
        suggest.refresh(event.current_buffer, cycle=-1)

    @kb.add("tab")
    def _menu(event: KeyPressEvent) -> None:
        _walk_menu(event.current_buffer, forward=True)

    @kb.add("s-tab")
    def _menu_back(event: KeyPressEvent) -> None:
        _walk_menu(event.current_buffer, forward=False)

    @kb.add("c-t", filter=at_end)
    def _sample(event: KeyPressEvent) -> None:
        suggest.refresh(event.current_buffer, sample=True)

    @kb.add("escape", filter=sampling)
    def _dismiss(event: KeyPressEvent) -> None:
        b = event.current_buffer
        suggest.state(b).sample = None
        b.suggestion = None
        suggest.refresh(b)

    def change_temperature(delta: float) -> None:
        settings.config = settings.config.with_temperature(settings.temperature + delta)
        get_app().invalidate()

    @kb.add("escape", "+")
    @kb.add("escape", "=")
    def _hotter(event: KeyPressEvent) -> None:
        change_temperature(0.1)

    @kb.add("escape", "-")
    def _colder(event: KeyPressEvent) -> None:
        change_temperature(-0.1)

    @kb.add("backspace", filter=can_take_back)
    @kb.add("c-h", filter=can_take_back)
    def _take_back(event: KeyPressEvent) -> None:
        b = event.current_buffer
        state = suggest.state(b)
        assert state.accepted is not None
        before, _, full, was_sample = state.accepted
        state.accepted = None
        b.document = Document(before, len(before))
        b.suggestion = Suggestion(full)
        if was_sample:
            state.sample_for, state.sample = before, full

    return kb


def _walk_menu(b: Buffer, forward: bool) -> None:
    """Tab / Shift-Tab: open the menu on the first / last candidate, then walk it."""
    if b.complete_state:
        b.complete_next() if forward else b.complete_previous()
    else:
        b.start_completion(select_first=forward, select_last=not forward)
