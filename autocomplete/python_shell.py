"""What the IPython and ptpython plugins share: the model loaded once per process, a session per shell, and the
adapters wired as guests of a Python shell (the model in comments, strings and docstrings; the shell's own
suggestions, completion and keys everywhere else). The prose of each input the shell runs becomes context for the
next and is learned into the user's personal state (:mod:`autocomplete.personal`), as a session learns its lines;
code is never learned."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from prompt_toolkit.application.current import get_app
from prompt_toolkit.auto_suggest import AutoSuggest
from prompt_toolkit.completion import Completer
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings

from autocomplete.completion import (
    LanguageModelAutoSuggest,
    LanguageModelCompleter,
    SamplingSettings,
    key_bindings,
    python_prose,
)
from autocomplete.errors import AutocompleteError
from autocomplete.paths import MODEL_ENV
from autocomplete.personal import describe, private
from autocomplete.predictor import Predictor, load
from autocomplete.python_prose import plain_prose, prose_in
from autocomplete.settings import SamplingConfig
from autocomplete.signals import exit_on_hangup
from autocomplete.tokenizer import printable, printable_word

COMMANDS = "on|off|temp T|learn [on|off]|forget|status"  # what PythonGuest.command takes
MAGIC = "%autocomplete {}"  # how an IPython user gives a command (its usage lines say it so): the magic
USAGE = "usage: " + MAGIC.format(COMMANDS)
SOURCE_PER_INPUT = 1 << 20  # characters of one input read at most: a larger one is not learned from at all
PROSE_PER_INPUT = 1 << 14  # characters of one input's prose learned at most: more is a paste (`autocomplete learn`)

_loaded: dict[tuple[str, bool], Predictor] = {}
_guests: dict[int, int] = {}  # id of a loaded model's personal state -> the guests using it (let go at none)
_loading = threading.Lock()


def shell_session(model: str | Path | None = None, learn: bool = True) -> Predictor:
    """A new context (its own committed text and caches) over the model at ``model`` (default: $AUTOCOMPLETE_MODEL
    or the shipped one), whose weights are loaded once per process however many shells ask. With ``learn`` the
    process learns into the user's personal state and holds it (as a session does; if another program holds it,
    this one says so once and hands what it learns to it); without, it uses what was learned and holds nothing.
    :func:`release` lets it go."""
    key = str(Path(model).expanduser()) if model is not None else os.environ.get(MODEL_ENV, "")
    with _loading:
        base = _loaded.get((key, learn))
        if base is None:  # comments and docstrings: technical writing
            base = load(Path(key) if key else None, threads=None, mode="code", save=learn)
            _loaded[key, learn] = base
            if learn and base.personal is not None and base.personal.warning:
                print(printable(f"autocomplete: warning: {base.personal.warning}"))
        if learn:  # a closed terminal window saves what was learned, as the session does
            exit_on_hangup()
        _guests[id(base.personal)] = _guests.get(id(base.personal), 0) + 1
    return base.session()


def release(session: Predictor) -> None:
    """One guest fewer on the model ``session`` is a session of; with none left, its personal state is closed and
    the model unloaded (a later shell loads it again)."""
    personal = session.personal
    with _loading:
        left = _guests.get(id(personal), 0) - 1
        if left > 0:
            _guests[id(personal)] = left
            return
        _guests.pop(id(personal), None)
        for key, base in list(_loaded.items()):
            if base.personal is personal:
                del _loaded[key]
    if personal is not None:
        personal.close()


@Condition
def _cursor_in_leading_whitespace() -> bool:
    before = get_app().current_buffer.document.current_line_before_cursor
    return not before or before.isspace()


class PythonGuest:
    """The adapters for one Python shell. ``suggest``, ``completer`` and ``keys`` go where the host's were, with the
    host's as their ``fallback``; Tab stays the host's in leading whitespace (it indents there). ``asked``: how the
    host's user gives :meth:`command` a command (``{}`` stands for it), as its usage lines say it."""

    def __init__(
        self, predictor: Predictor, settings: SamplingSettings | None = None, learn: bool = True, asked: str = MAGIC,
    ) -> None:
        self.enabled = True
        self.asked = asked
        self.predictor = predictor
        self.learns = learn  # the prose of each input the shell runs is learned (else only its context)
        # the inputs' prose is read in order, off the shell's thread; joined at exit, before the state is saved
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autocomplete-shell")
        self._reading: Future[None] = self._reader.submit(lambda: None)
        self.suggest = LanguageModelAutoSuggest(predictor, settings, context=self.context)
        self.settings = self.suggest.settings
        self.completer = LanguageModelCompleter(predictor, self.settings, context=self.context, suggest=self.suggest)
        in_prose = Condition(lambda: self.context(get_app().current_buffer.document) is not None)
        self.keys: KeyBindings = key_bindings(self.suggest, filter=in_prose, tab=~_cursor_in_leading_whitespace)

    def context(self, document: Document) -> str | None:
        return python_prose(document) if self.enabled else None

    def host(self, suggest: AutoSuggest | None, completer: Completer | None) -> None:
        """Make the host's suggester and completer the ones that answer outside prose."""
        self.suggest.fallback = suggest
        self.completer.fallback = completer

    def ran(self, source: str) -> None:
        """The shell ran ``source``: its prose (comments, strings, docstrings: :func:`prose_in`; their plain words:
        :func:`plain_prose`) becomes context for the next input's and is learned, unless the plugin is off or
        ``source`` starts with a space (as a shell keeps such a line out of its history). Of a long input, the first
        :data:`PROSE_PER_INPUT` characters of prose are read (one over :data:`SOURCE_PER_INPUT` is not read at all).
        The model reads them in a thread of its own, so the next prompt comes at once (:meth:`wait` for them).
        Never raises: a plugin must not break the shell's loop."""
        if not self.enabled or private(source) or len(source) > SOURCE_PER_INPUT:
            return
        text, budget = "", PROSE_PER_INPUT
        for piece in filter(None, map(plain_prose, prose_in(source + "\n"))):
            if budget <= 0:
                break
            piece = piece[:budget]
            budget -= len(piece)
            text += piece + "\n"
        if text:
            self._reading = self._reader.submit(self._commit, text, self.learns)

    def _commit(self, text: str, learn: bool) -> None:
        try:
            self.predictor.commit(text, learn=learn)
        except AutocompleteError as e:
            print(printable(f"autocomplete: error: {e}"))

    def close(self) -> None:
        """The shell is done with this guest (``%unload_ext``): what it read is read; once no guest uses the loaded
        model, its personal state is saved and let go (a session or ``autocomplete forget`` may then have it)."""
        self.enabled = False
        self._reader.shutdown(wait=True)
        release(self.predictor)

    def wait(self) -> None:
        """Until the inputs run so far are read (and what they teach learned)."""
        self._reading.result()
        if self.predictor.personal is not None:
            self.predictor.personal.wait()

    def usage(self, commands: str = COMMANDS) -> str:
        """The usage line for ``commands``, in the host's words (``%autocomplete …`` in IPython)."""
        return "usage: " + self.asked.format(commands)

    def command(self, arg: str) -> str:
        """``on``, ``off``, ``temp T``, ``learn [on|off]``, ``forget`` or ``status``: the one line to show the user.
        ``arg`` is text (a :class:`TypeError` otherwise); one that is no command gets the usage line."""
        if not isinstance(arg, str):
            raise TypeError(f"command must be str (one of {COMMANDS}), got {type(arg).__name__}")
        name, _, value = arg.strip().partition(" ")
        value = value.strip()
        if name in ("off", "on", "forget", "status", "") and value:
            return self.usage()
        if name == "off":
            self.enabled = False
            return "autocomplete: off (the shell's own suggestions everywhere; nothing is learned)"
        if name == "on":
            self.enabled = True
            return "autocomplete: on in comments, strings and docstrings"
        if name in ("temp", "temperature"):
            if not value:  # the current one, as ``learn`` alone shows the learning state
                return f"autocomplete: temperature = {self.settings.temperature:g}"
            if " " in value:
                return self.usage()
            try:
                self.settings.update(temperature=SamplingConfig.parse("temperature", value))
            except AutocompleteError as e:
                return f"autocomplete: {e}"
            return f"autocomplete: temperature = {self.settings.temperature:g}"
        if name == "learn":
            return self._learning(value)
        if name == "forget":
            return self._forget()
        if name in ("", "status"):
            state = "on" if self.enabled else "off"
            name = printable_word(self.predictor.lm.name)
            return f"autocomplete: {state}, model {name}, temperature {self.settings.temperature:g}"
        return self.usage()

    def _learning(self, arg: str) -> str:
        personal = self.predictor.personal
        if arg not in ("", "on", "off"):
            return self.usage("learn [on|off]")
        if personal is None or not self.learns:
            return "autocomplete: this shell learns nothing (started with learn=False)"
        if arg:
            personal.enabled = arg == "on"
        off = "" if self.enabled else " (autocomplete is off in this shell: nothing is learned until it is on)"
        return printable(f"autocomplete: {describe(personal, wait=False)}{off}")  # never holds up the prompt

    def _forget(self) -> str:
        personal = self.predictor.personal
        if personal is None:
            return "autocomplete: nothing learned is used here: nothing to forget"
        try:
            personal.forget()
        except AutocompleteError as e:
            return printable(f"autocomplete: {e}")
        except KeyboardInterrupt:
            return "autocomplete: interrupted; nothing was erased" if personal.words else "autocomplete: interrupted"
        return "autocomplete: forgot everything learned from you; the model is as shipped"


def start_guest(model: str | Path | None = None, learn: bool = True, asked: str = MAGIC) -> PythonGuest | None:
    """The guest for a new shell over :func:`shell_session` (``model`` and ``learn`` as there; ``asked`` as
    :class:`PythonGuest`'s), or None after one line that says why not (a missing or unreadable model): a plugin that
    cannot start leaves its shell working as it was, without a traceback. The line goes to standard output, where the
    shell prints its own messages."""
    try:
        return PythonGuest(shell_session(model, learn), learn=learn, asked=asked)
    except AutocompleteError as e:
        print(printable(f"autocomplete: error: {e}"))
        return None
