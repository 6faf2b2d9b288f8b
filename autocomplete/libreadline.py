"""GNU readline's C side, reached through :mod:`ctypes` for :mod:`autocomplete.readline`: the hooks it wraps, where the
history's numbering starts and whether a line of it is being edited, and readline's own way of listing matches.

The :mod:`readline` module is a thin layer over the C library; what it leaves out (the sort switch, the C hooks,
``history_base``, the default list display) is read here. Nothing here exists with libedit (macOS's default
Python): :func:`library` is then None and the readline guest goes without.
"""

from __future__ import annotations

import ctypes
import functools
import readline
from typing import TypeAlias

#: readline's C pre-input hook, ``int (*)(void)``.
Hook = ctypes.CFUNCTYPE(ctypes.c_int)

#: readline's C hook that lists matches, ``void (*)(char **matches, int count, int longest)``: ``matches[0]`` is what
#: replaces the word, ``matches[1:count + 1]`` the candidates.
Display = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int)

#: readline's ``char **`` list of matches, or an array made in its place.
Matches: TypeAlias = "ctypes._Pointer[ctypes.c_char_p] | ctypes.Array[ctypes.c_char_p]"

_STATE_CALLBACK = 0x0080000  # RL_STATE_CALLBACK: readline reads through rl_callback_read_char, as Python has it do


class _HistoryEntry(ctypes.Structure):
    _fields_ = [("line", ctypes.c_char_p), ("timestamp", ctypes.c_char_p), ("data", ctypes.c_void_p)]


def library() -> ctypes.CDLL | None:
    """The C readline library the :mod:`readline` module runs on (its symbols resolve through the module's handle),
    or None with libedit or a readline that lacks one of what this module reads."""
    path = getattr(readline, "__file__", None)
    if not path or "libedit" in (readline.__doc__ or ""):
        return None
    try:
        found = ctypes.CDLL(path)
        for function in ("rl_forced_update_display", "rl_display_match_list", "rl_crlf", "rl_read_key", "rl_ding",
                         "history_get", "fputs", "fflush", "strcoll"):
            getattr(found, function)
        for variable in ("rl_sort_completion_matches", "rl_ignore_completion_duplicates", "rl_completion_query_items",
                         "rl_display_fixed", "history_base"):
            ctypes.c_int.in_dll(found, variable)
        for pointer in ("rl_pre_input_hook", "rl_completion_display_matches_hook", "rl_outstream",
                        "rl_readline_state"):
            ctypes.c_void_p.in_dll(found, pointer)
    except (OSError, AttributeError, ValueError):
        return None
    found.history_get.restype = ctypes.POINTER(_HistoryEntry)
    found.history_get.argtypes = [ctypes.c_int]
    found.rl_display_match_list.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    found.fputs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    found.fflush.argtypes = [ctypes.c_void_p]
    found.strcoll.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return found


def pointer(lib: ctypes.CDLL, name: str) -> ctypes.c_void_p:
    """A C function pointer of readline's (``rl_pre_input_hook``, ``rl_completion_display_matches_hook``), to read
    and set. The :mod:`readline` module sets the pre-input hook once, at import, to its own function, which calls
    what ``set_pre_input_hook()`` was last given; it sets the display hook when ``set_completion_display_matches_hook``
    is called."""
    return ctypes.c_void_p.in_dll(lib, name)


def integer(lib: ctypes.CDLL, name: str) -> ctypes.c_int:
    """One of readline's ``int`` variables (``rl_sort_completion_matches``)."""
    return ctypes.c_int.in_dll(lib, name)


def history_base(lib: ctypes.CDLL) -> int:
    """The number ``readline.get_history_item()`` gives the oldest line: 1, until a capped history (``set
    history-size``) drops its oldest lines to make room, each adding one."""
    return ctypes.c_int.in_dll(lib, "history_base").value


def being_edited(lib: ctypes.CDLL, number: int) -> bool:
    """Whether line ``number`` of the history (as ``get_history_item`` numbers it) holds changes the user made to it
    by going back to it: readline keeps them, in the line's text, until the line is accepted or reverted (with
    ``revert-all-at-newline`` off, the default, a changed line not accepted stays changed)."""
    entry = lib.history_get(number)
    return bool(entry) and entry.contents.data is not None


def sorted_matches(lib: ctypes.CDLL, matches: Matches, count: int) -> tuple[Matches, int]:
    """``matches`` (``char **``: what replaces the word, then ``count`` candidates) as readline has them with its
    sorting on: in the locale's order (``strcoll``), and a candidate given twice kept once (unless the program turned
    ``rl_ignore_completion_duplicates`` off); a new array, and its count."""
    words = sorted((matches[number] or b"" for number in range(1, count + 1)), key=functools.cmp_to_key(lib.strcoll))
    if integer(lib, "rl_ignore_completion_duplicates").value:
        words = [word for number, word in enumerate(words) if number == 0 or word != words[number - 1]]
    return (ctypes.c_char_p * (len(words) + 2))(matches[0], *words, None), len(words)


def display_match_list(lib: ctypes.CDLL, matches: Matches, count: int, longest: int) -> None:
    """List matches as readline does when no display hook is set: its question from ``completion-query-items``
    matches on, then its columns, then the prompt and line again below them."""
    query = integer(lib, "rl_completion_query_items").value
    if 0 < query <= count:
        out = pointer(lib, "rl_outstream").value
        lib.rl_crlf()
        lib.fputs(f"Display all {count} possibilities? (y or n)".encode(), out)
        lib.fflush(out)
        if not _answered_yes(lib):
            lib.rl_crlf()
            _redisplay(lib)
            return
    lib.rl_display_match_list(matches, count, longest)
    _redisplay(lib)


def _answered_yes(lib: ctypes.CDLL) -> bool:
    """readline's answer to its question. Reading in callback mode, as Python's readline module does, readline does
    not wait for one: the list is shown."""
    if ctypes.c_ulong.in_dll(lib, "rl_readline_state").value & _STATE_CALLBACK:
        return True
    while True:
        key = lib.rl_read_key()
        if key in (ord("y"), ord("Y"), ord(" ")):
            return True
        if key in (ord("n"), ord("N"), 0x7F) or key < 0 or key == 0x07:  # Rubout; end of input, Ctrl-G
            return False
        lib.rl_ding()


def _redisplay(lib: ctypes.CDLL) -> None:
    lib.rl_forced_update_display()  # the prompt and the line again, below the list
    integer(lib, "rl_display_fixed").value = 1
