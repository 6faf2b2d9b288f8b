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

The prose of each input you run (its comments, strings and docstrings, never its code) becomes context for the next
and is learned into your personal state, as the terminal session learns your lines; an input that starts with a space
is not learned. ``configure(repl, learn=False)`` uses what was learned and learns nothing; the guest it returns
takes ``guest.command("learn off")``, ``"learn"`` (what it holds) and ``"forget"``, as IPython's ``%autocomplete``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prompt_toolkit.buffer import Buffer

from autocomplete.completion import follow_learning
from autocomplete.python_shell import PythonGuest, start_guest

ASKED = 'guest.command("{}")'  # ptpython has no magics: its user calls the guest configure returned


def configure(repl: Any, model: str | Path | None = None, learn: bool = True) -> PythonGuest | None:
    """Add the model's suggestions to ptpython's ``repl`` (a ``PythonRepl``); returns the guest (``.enabled``,
    ``.settings``, ``.command("temp 0.5")``) for further tuning. A model that cannot be loaded gets one line and
    None, ``repl`` untouched: raising would make ptpython print a traceback and wait for Enter. ``learn``: as
    :func:`autocomplete.python_shell.shell_session`."""
    guest = start_guest(model, learn, asked=ASKED)
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
    host_accept = buffer.accept_handler  # called with the input once ptpython has found it complete

    def accept(buff: Buffer) -> bool:
        guest.ran(buff.text)
        return bool(host_accept(buff)) if host_accept is not None else False

    buffer.accept_handler = accept
    follow_learning(repl.app, buffer, guest.suggest)  # what an input taught shows in the next one as soon as it is learned
    return guest
