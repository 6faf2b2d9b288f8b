"""GNU readline's C side, reached through :mod:`ctypes` for :mod:`autocomplete.readline`: the hooks it wraps, where the
history's numbering starts and whether a line of it is being edited.

The :mod:`readline` module is a thin layer over the C library; what it leaves out (the sort switch, the C hooks,
``history_base``, the forced redisplay) is read here. Nothing here exists with libedit (macOS's default
Python): :func:`library` is then None and the readline guest goes without.
"""

from __future__ import annotations

import ctypes
import readline

#: readline's C pre-input hook, ``int (*)(void)``.
Hook = ctypes.CFUNCTYPE(ctypes.c_int)

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
        for function in ("rl_forced_update_display", "history_get"):
            getattr(found, function)
        for variable in ("rl_sort_completion_matches", "history_base"):
            ctypes.c_int.in_dll(found, variable)
        ctypes.c_void_p.in_dll(found, "rl_pre_input_hook")
    except (OSError, AttributeError, ValueError):
        return None
    found.history_get.restype = ctypes.POINTER(_HistoryEntry)
    found.history_get.argtypes = [ctypes.c_int]
    return found


def pointer(lib: ctypes.CDLL, name: str) -> ctypes.c_void_p:
    """A C function pointer of readline's (``rl_pre_input_hook``), to read and set. The :mod:`readline` module sets
    the pre-input hook once, at import, to its own function, which calls what ``set_pre_input_hook()`` was last
    given."""
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
