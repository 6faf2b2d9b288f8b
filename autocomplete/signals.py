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
