"""IPython plugin: next-word suggestions where you write English in a Python shell.

    %load_ext autocomplete.ipython                               # in a running IPython
    c.InteractiveShellApp.extensions = ["autocomplete.ipython"]  # or for good, in ipython_config.py

In comments, strings and docstrings: grey text from the language model (Right accepts it, Alt-F one word, Alt-N/Alt-P
the alternatives, Ctrl-T a sampled continuation) and the word menu on Tab. Everywhere else IPython stays IPython:
its own history suggestions, Jedi completion, and Tab that indents in leading whitespace. The model is
``$AUTOCOMPLETE_MODEL`` or the shipped one; each shell gets its own session over weights loaded once per process.

    %autocomplete off | on | temp 0.7 | learn [on|off] | forget | status

The prose of each cell you run (its comments, strings and docstrings, never its code) becomes context for the next
and is learned into your personal state, as the terminal session learns your lines: a name written in one cell is
offered in the next. A cell that starts with a space is not learned; ``%autocomplete learn off`` pauses learning;
``%autocomplete forget`` erases what was learned (``autocomplete forget`` refuses while this shell holds it).

The plugin takes the place of IPython's suggester, completer and key bindings with wrappers that hand everything
outside prose back to them. IPython replaces those objects when its configuration changes (``%config
TerminalInteractiveShell.autosuggestions_provider=...``, ``shortcuts``...): the plugin watches those settings and
checks again after every cell, wrapping whatever IPython installed.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from prompt_toolkit.key_binding import KeyBindingsBase, merge_key_bindings

if TYPE_CHECKING:  # the model's modules (PyTorch with them) are imported only where IPython will prompt
    from autocomplete.python_shell import PythonGuest

# the shell settings after whose change IPython installs a new suggester or new key bindings
_WATCHED = ["autosuggestions_provider", "llm_provider_class", "llm_prefix_from_history", "shortcuts"]
_plugins: weakref.WeakKeyDictionary[Any, _Plugin] = weakref.WeakKeyDictionary()


class _Plugin:
    def __init__(self, shell: Any, guest: PythonGuest) -> None:
        self.shell = shell
        self.guest = guest
        self.keys: KeyBindingsBase | None = None  # the merged bindings we installed
        self.originals: tuple[Any, Any, Any] | None = None  # IPython's suggester, completer and bindings
        self.hidden_magic: tuple[Any, Any] = (None, None)  # a line magic named autocomplete that ours hides
        # what a cell teaches shows in the next at once
        from autocomplete.completion import follow_learning

        self.unfollow = follow_learning(shell.pt_app.app, shell.pt_app.default_buffer, guest.suggest)

    def install(self, *_: object) -> None:
        """Put the guest in front of whatever IPython has installed now (idempotent)."""
        app = self.shell.pt_app
        if app is None:
            return
        from IPython.terminal.shortcuts.auto_suggest import NavigableAutoSuggestFromHistory

        suggest, completer = self.guest.suggest, self.guest.completer
        host_suggest = suggest.fallback if app.auto_suggest is suggest else app.auto_suggest
        host_completer = completer.fallback if app.completer is completer else app.completer
        host_keys = self.originals[2] if self.originals and app.key_bindings is self.keys else app.key_bindings
        self.originals = (host_suggest, host_completer, host_keys)
        self.guest.host(host_suggest, host_completer)
        # IPython draws suggestions at the end of any line only with its navigable provider
        suggest.any_line = isinstance(host_suggest, NavigableAutoSuggestFromHistory)
        app.auto_suggest = suggest
        app.completer = completer
        if app.key_bindings is not self.keys:
            self.keys = merge_key_bindings([host_keys, self.guest.keys]) if host_keys else self.guest.keys
            app.key_bindings = self.keys

    def uninstall(self) -> None:
        """Take back everything :func:`load_ipython_extension` put in: the wrappers, the watchers and the magic, so
        nothing can switch this guest on again and a later ``%load_ext`` starts afresh."""
        app = self.shell.pt_app
        self.guest.enabled = False  # its handler on the buffer stays attached: it now finds nothing to do
        self.shell.unobserve(self.install, names=_WATCHED)
        self.shell.events.unregister("post_run_cell", self.install)
        self.shell.events.unregister("post_run_cell", self.ran)
        self.unfollow()
        self.guest.close()  # the personal state saved and let go, if no other shell uses it
        self.remove_magic()
        if app is not None and self.originals is not None:
            app.auto_suggest, app.completer, app.key_bindings = self.originals

    def add_magic(self) -> None:
        manager = self.shell.magics_manager
        line_magics, user_magics = manager.magics["line"], manager.user_magics
        self.hidden_magic = (line_magics.get("autocomplete"), getattr(user_magics, "autocomplete", None))
        self.shell.register_magic_function(self.magic, magic_kind="line", magic_name="autocomplete")

    def remove_magic(self) -> None:
        """IPython has no call that unregisters a magic: undo what ``register_magic_function`` recorded (the line
        magics' table and an attribute of the user's magics object)."""
        manager = self.shell.magics_manager
        if manager.magics["line"].get("autocomplete") != self.magic:
            return  # someone registered another since: theirs stays
        table, attribute = self.hidden_magic
        if table is None:
            del manager.magics["line"]["autocomplete"]
        else:
            manager.magics["line"]["autocomplete"] = table
        if attribute is not None:
            manager.user_magics.autocomplete = attribute
        elif getattr(manager.user_magics, "autocomplete", None) == self.magic:
            delattr(manager.user_magics, "autocomplete")

    def ran(self, result: Any) -> None:
        """After each cell: what it held is the user's text (``post_run_cell`` passes IPython's ExecutionResult)."""
        source = getattr(getattr(result, "info", None), "raw_cell", None)
        if isinstance(source, str):
            self.guest.ran(source)

    def magic(self, line: str) -> None:
        print(self.guest.command(line))


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext autocomplete.ipython``: suggestions in this shell's comments, strings and docstrings."""
    if shell in _plugins or not _prompts(shell):
        return
    if getattr(shell, "pt_app", None) is None:
        print("autocomplete: this IPython has no prompt_toolkit prompt (--simple-prompt or not a terminal): "
              "suggestions are off")
        _not_loaded(shell)
        return
    from autocomplete.python_shell import start_guest

    guest = start_guest()
    if guest is None:  # it said why in one line
        _not_loaded(shell)
        return
    plugin = _plugins[shell] = _Plugin(shell, guest)
    plugin.install()
    shell.observe(plugin.install, names=_WATCHED)
    shell.events.register("post_run_cell", plugin.install)
    shell.events.register("post_run_cell", plugin.ran)
    plugin.add_magic()


def _prompts(shell: Any) -> bool:
    """Whether ``shell`` will prompt: not under ``ipython script.py`` or ``ipython -c …`` (without ``-i``), which load
    the profile's extensions too, and would load the model (seconds), hold the personal state and print into the
    script's output for nothing. A shell IPython's application did not start (``IPython.embed()``) prompts."""
    return getattr(getattr(shell, "parent", None), "interact", True) is not False


def _not_loaded(shell: Any) -> None:
    """Have IPython forget this extension, which installed nothing, so that ``%load_ext`` tries again (once the model
    is fixed) instead of answering "already loaded". IPython counts an extension as loaded when its load function
    returns and only a raised exception stops that, which it shows with a traceback; so the name comes off
    ``extension_manager.loaded`` just before the next cell runs, before any ``%load_ext`` in it."""

    def forget() -> None:
        shell.extension_manager.loaded.discard(__name__)
        shell.events.unregister("pre_execute", forget)

    shell.events.register("pre_execute", forget)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext autocomplete.ipython``: IPython's own suggester, completer and keys back, no ``%autocomplete``;
    ``%load_ext`` may load it again."""
    plugin = _plugins.pop(shell, None)
    if plugin is not None:
        plugin.uninstall()
