"""ptpython plugin: next-word suggestions where you write English in a Python shell.

In ptpython's ``config.py`` (``~/.config/ptpython/config.py``, or ``ptpython --config-file FILE``)::

    import autocomplete.ptpython

    def configure(repl):
        autocomplete.ptpython.configure(repl)

In comments, strings and docstrings: grey text from the language model (Right accepts it, Alt-F one word, Alt-N/Alt-P
the alternatives, Ctrl-T a sampled continuation) and the word menu on Tab. Everywhere else ptpython stays ptpython:
its own completion, its history suggestions if you turned them on (``repl.enable_auto_suggest``), and Tab that
indents in leading whitespace. The model is ``model=``, ``$AUTOCOMPLETE_MODEL`` or the shipped one; one that
cannot be loaded is reported in one line and ptpython starts without the plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocomplete.python_shell import PythonGuest, start_guest


def configure(repl: Any, model: str | Path | None = None) -> PythonGuest | None:
    """Add the model's suggestions to ptpython's ``repl`` (a ``PythonRepl``); returns the guest (``.enabled``,
    ``.settings``, ``.command("temp 0.5")``) for further tuning. A model that cannot be loaded gets one line and
    None, ``repl`` untouched: raising would make ptpython print a traceback and wait for Enter."""
    guest = start_guest(model)
    if guest is None:
        return None
    buffer = repl.default_buffer
    guest.host(buffer.auto_suggest, repl.completer)
    buffer.auto_suggest = guest.suggest
    repl.completer = guest.completer  # ptpython wraps it (threads, fuzzy matching, private names) as its own
    for binding in guest.keys.bindings:  # ptpython's own extra keys: they win over its defaults
        repl.extra_key_bindings.add(
            *binding.keys, filter=binding.filter, eager=binding.eager, is_global=binding.is_global,
            save_before=binding.save_before, record_in_macro=binding.record_in_macro,
        )(binding.handler)
    return guest
