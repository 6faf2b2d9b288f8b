"""Signal handlers for the length of a block: how the commands stop cleanly on Ctrl-C, SIGTERM and SIGHUP.

Only the main thread of the interpreter may install a handler; anywhere else (a program that runs training or a
command in a thread of its own) the block runs with the signals as the host set them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType

Handler = Callable[[int, "FrameType | None"], object]


def named(*names: str) -> list[signal.Signals]:
    """The signals called ``names`` that this platform has (Windows has no SIGHUP)."""
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


@contextmanager
def handling(signals: Iterable[signal.Signals], handler: Handler) -> Iterator[bool]:
    """``handler`` handles ``signals`` inside the block; the handlers before it are back after it, however it ends.

    Yields whether the handler was installed: False off the main thread, where the signals stay as they were.
    """
    try:
        previous = {sig: signal.signal(sig, handler) for sig in signals}
    except ValueError:  # not the main thread
        yield False
        return
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _end_through_exit(signum: int, frame: FrameType | None) -> None:
    for sig in named("SIGTERM", "SIGHUP"):  # a second signal (a terminal often sends both) ends it on the spot
        if signal.getsignal(sig) is _end_through_exit:
            signal.signal(sig, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def exit_on_hangup() -> None:
    """For a guest in a host program (IPython, ptpython, a readline program): SIGHUP (a closed terminal window) and
    SIGTERM, where the host leaves them to kill the process on the spot, end it through :class:`SystemExit` instead,
    so that its exit handlers run and what was learned is saved. A host's own handlers are left alone, and so is
    every signal off the main thread."""
    try:
        for sig in named("SIGTERM", "SIGHUP"):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _end_through_exit)
    except ValueError:  # not the main thread
        pass
