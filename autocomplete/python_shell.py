"""What the IPython and ptpython plugins share: the model loaded once per process, a session per shell, and the
adapters wired as guests of a Python shell (the model in comments, strings and docstrings; the shell's own
suggestions, completion and keys everywhere else)."""

from __future__ import annotations

import os
import threading
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
from autocomplete.predictor import Predictor, load
from autocomplete.settings import SamplingConfig

USAGE = "usage: %autocomplete on|off|temp T|status"

_loaded: dict[str, Predictor] = {}
_loading = threading.Lock()


def shell_session(model: str | Path | None = None) -> Predictor:
    """A new context (its own committed text and caches) over the model at ``model`` (default: $AUTOCOMPLETE_MODEL
    or the shipped one), whose weights are loaded once per process however many shells ask."""
    key = str(Path(model).expanduser()) if model is not None else os.environ.get(MODEL_ENV, "")
    with _loading:
        base = _loaded.get(key)
        if base is None:
            # comments and docstrings: technical writing
            # what was learned is used; the shells' code is never learned, so the state is not held nor saved (a
            # session or `learn` may save into it meanwhile)
            base = _loaded[key] = load(Path(key) if key else None, threads=None, mode="code", save=False)
    return base.session()


@Condition
def _cursor_in_leading_whitespace() -> bool:
    before = get_app().current_buffer.document.current_line_before_cursor
    return not before or before.isspace()


class PythonGuest:
    """The adapters for one Python shell. ``suggest``, ``completer`` and ``keys`` go where the host's were, with the
    host's as their ``fallback``; Tab stays the host's in leading whitespace (it indents there)."""

    def __init__(self, predictor: Predictor, settings: SamplingSettings | None = None) -> None:
        self.enabled = True
        self.predictor = predictor
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

    def command(self, arg: str) -> str:
        """``on``, ``off``, ``temp T`` or ``status``: the one line to show the user."""
        name, _, value = arg.strip().partition(" ")
        if name == "off":
            self.enabled = False
            return "autocomplete: off (the shell's own suggestions everywhere)"
        if name == "on":
            self.enabled = True
            return "autocomplete: on in comments, strings and docstrings"
        if name in ("temp", "temperature"):
            try:
                self.settings.update(temperature=SamplingConfig.parse("temperature", value))
            except AutocompleteError as e:
                return f"autocomplete: {e}"
            return f"autocomplete: temperature = {self.settings.temperature:g}"
        if name in ("", "status"):
            state = "on" if self.enabled else "off"
            return f"autocomplete: {state}, model {self.predictor.lm.name}, temperature {self.settings.temperature:g}"
        return USAGE


def start_guest(model: str | Path | None = None) -> PythonGuest | None:
    """The guest for a new shell over :func:`shell_session` (``model`` as there), or None after one line that says
    why not (a missing or unreadable model): a plugin that cannot start leaves its shell working as it was, without
    a traceback. The line goes to standard output, where the shell prints its own messages."""
    try:
        return PythonGuest(shell_session(model))
    except AutocompleteError as e:
        print(f"autocomplete: error: {e}")
        return None
