"""Next-word completion for programs that read lines with readline: ``input()``, :mod:`cmd`, :mod:`code`.

::

    import autocomplete.readline

    completer = autocomplete.readline.install()    # the shipped model; install(predictor) to share a loaded one
    line = input("> ")                              # Tab completes the word being typed, or offers the next words

For a :class:`cmd.Cmd` program, whose ``cmdloop`` puts its own completer in place, route the arguments of commands
to this one (command names still complete as usual)::

    class Notes(cmd.Cmd):
        def completedefault(self, text, line, begidx, endidx):
            return completer.matches(text, line, begidx, endidx)

What readline users otherwise solve themselves: the ranking is kept (readline sorts matches alphabetically; with GNU
readline the sort is switched off and the list of candidates is shown most likely first, with probabilities, while
the lists of the program's own completion are sorted and listed as readline lists them), a completed word gets its
space (one Tab finishes the word and moves on), apostrophes and hyphens stay inside words (``don't``,
``well-known``), and the candidates are computed once per line and cursor position, however often readline asks (and
again once a line is learned). Lines the program reads become context for the next ones, as soon as the next is
asked for, and are learned, each once (they are taken from readline's history, also where it is capped or the
program removes lines from it; a history file the program loads, ``read_history_file``, is not learned again: the
completer runs before each line is read, in readline's pre-input hook, to tell its lines from those typed). With GNU
readline it wraps the hook in C, so a pre-input hook of the program's own, set before or after :func:`install`, keeps
running; with libedit :func:`install` takes the hook, and a program with its own calls
:meth:`ReadlineCompleter.before_input` from it.

The completer works on its own :meth:`~autocomplete.predictor.Predictor.session` of the predictor, so sharing a
loaded model with the rest of the program does not disturb its contexts. :func:`uninstall` puts back what
:func:`install` replaced.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import readline
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autocomplete import libreadline
from autocomplete.display import percent
from autocomplete.predictor import Predictor, Suggestion, _check_flag, _whole
from autocomplete.settings import SamplingConfig
from autocomplete.signals import c_callback_function, ctrl_c_sent_again, exit_on_hangup
from autocomplete.tokenizer import printable

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

#: Word delimiters for readline: whitespace and punctuation, but not apostrophes, hyphens, letters or digits, so
#: ``don't`` and ``well-known`` are completed as one word.
DELIMS = " \t\n\"`()[]{}<>,.;:!?@#$%^&*=+|\\/~"


@dataclass
class _Saved:
    completer: Callable[[str, int], str | None] | None
    delims: str
    sort: int | None
    pre_input: int | None  # the address in GNU readline's C pre-input hook (the readline module's function)
    display: int | None  # the address in GNU readline's C hook that lists matches (None: readline's own listing)


class ReadlineCompleter:
    """A readline completer over a predictor session: ``completer(text, state)`` as readline calls it, and
    :meth:`matches` as :class:`cmd.Cmd`'s ``complete_*`` methods return them."""

    def __init__(self, predictor: Predictor, k: int = SamplingConfig.suggestions, learn: bool = True) -> None:
        self.predictor = predictor
        self.k = _whole("k", k, 1)  # a ConfigError here, not a Tab that silently does nothing
        _check_flag("learn", learn)
        self.learn = learn  # lines read by the program become context
        # where the history ended and its newest line when last looked: lines already there are not new text
        self._end, self._newest = _history_end(), _newest_line(None)
        self._reading = False  # before_input() has run: a line can have been read since the last look
        self._debugger = False  # the line being read is the debugger's (pdb's prompt): a command, never learned
        # (the predictor's answers_version: its context and what was learned, text before the word, the word)
        self._key: tuple[tuple[int, int, int], str, str] | None = None
        self._ranked: list[Suggestion] = []
        self._matches: list[str] = []
        self.computed = 0  # how many times the model was asked (tests check the per-line cache with it)

    @c_callback_function  # readline calls it, and drops what it raises: a signal that would end the program waits
    def __call__(self, text: str, state: int) -> str | None:
        with ctrl_c_sent_again():
            if state == 0:
                line = readline.get_line_buffer()
                self.matches(text, line, readline.get_begidx(), readline.get_endidx())
            return self._matches[state] if state < len(self._matches) else None
        return None  # a Ctrl-C while it ran: held, and sent again

    def matches(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        """The completions of ``text`` (the word readline is completing, ``line[begidx:endidx]``), most likely
        first, each with the space that follows a finished word."""
        before = line[:begidx]
        self._absorb_history()
        key = (self.predictor.answers_version, before, text)  # a Tab after a line is learned asks again
        if key != self._key:
            self._ranked = self.predictor.suggest(before, self.k, partial=text)
            self._matches = [s.word + " " for s in self._ranked]
            self._key = key
            self.computed += 1
        return list(self._matches)

    def _absorb_history(self) -> None:
        """Commit the lines the program has read since the last line or completion (readline adds them to its
        history)."""
        lines = self._new_lines()
        if not self._debugger:
            self._learn(lines)

    def _learn(self, lines: list[str]) -> None:
        if self.learn and lines:
            self.predictor.commit("".join(line + "\n" for line in lines))

    def _new_lines(self) -> list[str]:
        """The lines added to readline's history since the last look, oldest first (the look moves past them).

        Each line added moves the history's end on by one, also where a capped history (``set history-size``)
        drops its oldest line to make room. A program that keeps one copy of each line removes the older copy of the
        line just read: then the end stays, and the newest line is what changed."""
        end = _history_end()
        length = readline.get_current_history_length()
        newest = _newest_line(self._newest)
        count = min(max(end - self._end, 0), length)
        if count == 0 and newest is not None and newest != self._newest:
            count = 1
        self._end, self._newest = end, newest
        items = (readline.get_history_item(number) for number in range(end - count, end))
        return [item for item in items if item]

    def before_input(self) -> None:
        """readline is about to read a line (its pre-input hook): the line read last is committed now, so that the
        words it brought are offered on this one. Since the last line read, the history grew by that line; if it grew
        by more, the program loaded a history file (``read_history_file``), whose lines were learned when they were
        typed and are not learned again. The first call comes before any line is read: whatever the history gained
        since the completer was made was loaded (a one-line file too, as ``python -i`` loads ~/.python_history).

        With GNU readline, :func:`install` runs it ahead of the program's own pre-input hook. With libedit it takes
        readline's pre-input hook: a program that sets its own after :func:`install` calls this from it."""
        lines = self._new_lines()
        if self._reading and len(lines) == 1 and not self._debugger:
            self._learn(lines)  # more: skipped, the line typed just before the load with it (one cannot tell them)
        self._reading = True
        self._debugger = _debugger_reads()

    def stop(self) -> None:
        """Learn the lines read so far and none after (:func:`uninstall` calls it): a :class:`cmd.Cmd` program may
        still ask :meth:`matches`, which then only completes."""
        if self.learn:
            self._absorb_history()
            atexit.unregister(self._absorb_history)  # registered by install()
            self.learn = False

    def offered(self, matches: Sequence[str]) -> bool:
        """Whether ``matches`` are the candidates this completer gave last, not a list of the program's own
        completion (a :class:`cmd.Cmd` ``complete_*`` method, pdb's names), which readline lists as usual."""
        return bool(matches) and sorted(matches) == sorted(self._matches)

    def display(self, substitution: str, matches: Sequence[str], longest: int) -> None:
        """Readline's list of this completer's candidates, in rank order with probabilities (it would sort them
        alphabetically)."""
        shown = set(matches)
        words = [f"{s.word} {percent(s.probability)}" for s in self._ranked if s.word + " " in shown]
        words += [m.strip() for m in matches if m not in {s.word + " " for s in self._ranked}]
        sys.stdout.write("\n" + printable("   ".join(words)) + "\n")  # words come from a model file: never obeyed
        sys.stdout.flush()
        assert _library is not None
        _library.rl_forced_update_display()  # the prompt and the line again, below the list


def _debugger_reads() -> bool:
    """Whether the line about to be read is a debugger's: pdb (and what is built on it) puts its own completer in
    place while its prompt reads a command (``c``, ``p x``), which is the program's to run, not the user's text."""
    pdb = sys.modules.get("pdb")
    owner = getattr(readline.get_completer(), "__self__", None)
    return pdb is not None and isinstance(owner, pdb.Pdb)


def _history_end() -> int:
    """The number one past the newest line of readline's history, as ``get_history_item`` numbers lines: GNU
    readline counts from ``history_base``, which a capped history moves on as it drops its oldest lines; libedit
    from 1."""
    first = libreadline.history_base(_library) if _library is not None else 1
    return first + readline.get_current_history_length()


def _newest_line(otherwise: str | None) -> str | None:
    """The newest line of the history (None if it is empty), or ``otherwise`` while the user has it changed by going
    back to it (GNU readline): not a line read."""
    end = _history_end()
    if readline.get_current_history_length() == 0:
        return None
    if _library is not None and libreadline.being_edited(_library, end - 1):
        return otherwise
    return readline.get_history_item(end - 1)


_library = libreadline.library()
_pre_input = libreadline.pointer(_library, "rl_pre_input_hook") if _library is not None else None
_list_hook = libreadline.pointer(_library, "rl_completion_display_matches_hook") if _library is not None else None
_hook: CFuncPtr | None = None  # the C function in the pre-input hook while installed (kept alive here)
_display: CFuncPtr | None = None  # the C function that lists matches while installed (kept alive here)
_saved: _Saved | None = None
_installed: ReadlineCompleter | None = None  # the completer install() put in place, until uninstall()


def install(
    predictor: Predictor | None = None,
    *,
    completer_delims: str = DELIMS,
    k: int = SamplingConfig.suggestions,
    learn: bool = True,
    tab: bool = True,
) -> ReadlineCompleter:
    """Make readline complete words with the language model; returns the completer.

    ``predictor``: a loaded predictor to share (the completer uses its own session of it); by default the shipped
    model is loaded (:func:`autocomplete.load`). ``completer_delims``: the characters that end a word for readline.
    ``k``: candidates offered. ``learn``: lines the program reads become context. ``tab``: bind Tab to completion.

    With GNU readline this switches readline's alphabetical sorting of matches off (process-wide, until
    :func:`uninstall`) and shows this completer's candidates with their probabilities; lists of the program's own
    completion are shown as before. With libedit the candidates are offered as libedit lists them.

    Bad arguments are a :class:`TypeError` (``predictor`` not a :class:`~autocomplete.predictor.Predictor`,
    ``completer_delims`` not text, ``learn`` or ``tab`` not True or False) or a
    :class:`~autocomplete.errors.ConfigError` (``k`` not an integer ≥ 1), said before readline is changed: inside
    readline an error at Tab would only make Tab do nothing.
    """
    global _saved, _installed, _hook, _display
    _check_arguments(predictor, completer_delims, k, learn, tab)
    if predictor is None:
        from autocomplete.predictor import load

        predictor = load(mode="code", save=learn)  # a readline program reads commands
        if predictor.personal is not None and predictor.personal.warning:  # e.g. a session holds the state
            print(printable(f"autocomplete: warning: {predictor.personal.warning}"), file=sys.stderr)
    completer = ReadlineCompleter(predictor.session(), k=k, learn=learn)
    if _installed is not None:  # installed again without uninstall(): the new completer takes over the learning
        _installed.stop()
    _installed = completer
    if learn:  # the lines read since the last Tab are learned too (before the state is saved at exit)
        atexit.register(completer._absorb_history)
        exit_on_hangup()  # a closed terminal window runs those exit handlers too
    if _saved is None:
        sort = libreadline.integer(_library, "rl_sort_completion_matches").value if _library else None
        hook = _pre_input.value if _pre_input is not None else None
        shown = _list_hook.value if _list_hook is not None else None
        _saved = _Saved(readline.get_completer(), readline.get_completer_delims(), sort, hook, shown)
    readline.set_completer(completer)
    readline.set_completer_delims(completer_delims)
    if learn:  # the pre-input hook tells a loaded history file from lines typed
        if _pre_input is not None:
            _hook = libreadline.Hook(_before_input_then(completer, _saved.pre_input))
            _pre_input.value = ctypes.cast(_hook, ctypes.c_void_p).value
        elif hasattr(readline, "set_pre_input_hook"):
            readline.set_pre_input_hook(completer.before_input)
    if _library is not None and _list_hook is not None:
        libreadline.integer(_library, "rl_sort_completion_matches").value = 0
        _display = libreadline.Display(_display_then(completer, _library, _saved.display, bool(_saved.sort)))
        _list_hook.value = ctypes.cast(_display, ctypes.c_void_p).value
    if tab:
        readline.parse_and_bind("bind ^I rl_complete" if "libedit" in (readline.__doc__ or "") else "tab: complete")
    return completer


def _before_input_then(completer: ReadlineCompleter, host: int | None) -> Callable[[], int]:
    """The C pre-input hook: ``completer.before_input()``, then the hook that was there (the readline module's, which
    runs the program's own Python hook)."""
    previous = libreadline.Hook(host) if host else None

    @c_callback_function  # a signal that would end the program here is sent again once readline waits for keys
    def hook() -> int:
        with ctrl_c_sent_again():
            try:
                completer.before_input()
            except Exception:  # as readline treats an error in a Python hook: the line is read all the same
                pass
            return previous() if previous is not None else 0
        return 0  # a Ctrl-C inside it: held, and sent again

    return hook


def _display_then(
    completer: ReadlineCompleter, lib: ctypes.CDLL, host: int | None, sort: bool
) -> Callable[[Any, int, int], None]:
    """The C hook that lists matches: the completer's own candidates ranked, with probabilities; any other list (the
    program's own completion) as readline would have had it: sorted if the program had readline sort (``sort``), then
    listed by the hook that was there (a Python one of the program's, through the readline module), or else as
    readline itself lists matches, with its columns and its question before a long list."""
    previous = libreadline.Display(host) if host else None

    def list_matches(matches: Any, count: int, longest: int) -> None:  # (char **matches, int count, int longest)
        try:
            words = [os.fsdecode(matches[number] or b"") for number in range(1, count + 1)]
            if completer.offered(words):
                completer.display(os.fsdecode(matches[0] or b""), words, longest)
                return
            if sort:
                matches, count = libreadline.sorted_matches(lib, matches, count)
            if previous is not None:
                previous(matches, count, longest)
            else:
                libreadline.display_match_list(lib, matches, count, longest)
        except Exception:  # as readline treats an error in a Python hook: no list, the line stays as it was
            pass

    @c_callback_function
    def display(matches: Any, count: int, longest: int) -> None:
        with ctrl_c_sent_again():
            list_matches(matches, count, longest)

    return display


def _check_arguments(predictor: object, completer_delims: object, k: object, learn: object, tab: object) -> None:
    """:func:`install`'s arguments, each checked as :func:`autocomplete.load` checks its own."""
    if predictor is not None and not isinstance(predictor, Predictor):
        note = " (load it first: autocomplete.load(path))" if isinstance(predictor, (str, os.PathLike)) else ""
        raise TypeError(f"predictor must be a Predictor or None{note}, got {type(predictor).__name__}")
    if not isinstance(completer_delims, str):
        raise TypeError(f"completer_delims must be str, got {type(completer_delims).__name__}")
    _whole("k", k, 1)
    _check_flag("learn", learn)
    _check_flag("tab", tab)


def uninstall() -> None:
    """Put back the completer, delimiters, sorting and listing that :func:`install` replaced, and stop learning: the
    lines read until now are learned, those read after are not (a program may uninstall before it asks for a
    password)."""
    global _saved, _installed, _hook, _display
    if _installed is not None:
        _installed.stop()
        _installed = None
    if _saved is None:
        return
    readline.set_completer(_saved.completer)
    readline.set_completer_delims(_saved.delims)
    if _pre_input is not None:
        _pre_input.value = _saved.pre_input  # the program's own Python hook was never touched
        _hook = None
    elif hasattr(readline, "set_pre_input_hook"):
        readline.set_pre_input_hook(None)  # libedit: install() took the hook (the program's own is not knowable)
    if _list_hook is not None and _display is not None:
        if _list_hook.value == ctypes.cast(_display, ctypes.c_void_p).value:  # not one the program set since
            _list_hook.value = _saved.display
        _display = None
    if _library is not None and _saved.sort is not None:
        libreadline.integer(_library, "rl_sort_completion_matches").value = _saved.sort
    _saved = None
