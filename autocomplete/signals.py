"""Signal handlers for the length of a block: how the commands stop cleanly on Ctrl-C, SIGTERM and SIGHUP.

Only the main thread of the interpreter may install a handler; anywhere else (a program that runs training or a
command in a thread of its own) the block runs with the signals as the host set them.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any, TypeVar

Handler = Callable[[int, "FrameType | None"], object]
F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 128 + signal.SIGINT  # the exit status of a command stopped by Ctrl-C, as shells report it


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


@contextmanager
def interrupt_deferred() -> Iterator[None]:
    """A Ctrl-C (SIGINT) that arrives inside the block is held until the block ends, then raised there as
    :class:`KeyboardInterrupt`: for imports, where one raised midway is lost (PyTorch's start-up swallows one that
    lands while it imports numpy: the program went on, and the user's next shell command became a session line) or
    shown as a traceback from inside importlib. Only where SIGINT has Python's own handler, in the main thread; a
    block that raises raises that instead."""
    caught: list[int] = []
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    with handling([signal.SIGINT], lambda signum, frame: caught.append(signum)):
        yield
    if caught:
        raise KeyboardInterrupt


_ending = False  # a guest's SIGHUP/SIGTERM handler has ended the program, or the program is ending anyway
_calmed = threading.Event()  # the program's exit handlers run (it got to its end)
END_WAIT = 15.0  # seconds a program ended by a signal has to reach its end cleanly before it is ended anyway


def end_anyway(code: int, ended: threading.Event = _calmed) -> None:
    """After SIGTERM or SIGHUP: if ``ended`` is not set within :data:`END_WAIT` seconds (the command, or the program,
    has not got to its end: an event loop can wait for ever on a task a closed terminal never lets finish, and a host
    may swallow the :class:`SystemExit` and spin on its dead terminal), save what was learned and end the process
    with ``code``, so that a closed window never leaves it running, holding the personal state's lock."""

    def watch() -> None:
        if ended.wait(END_WAIT):
            return
        from autocomplete import personal

        personal.save_all()
        os._exit(code)

    threading.Thread(target=watch, name="autocomplete-end", daemon=True).start()


_callbacks: set[CodeType] = set()  # the code of Python functions that C calls (see c_callback_function)


def c_callback_function(function: F) -> F:
    """Mark ``function`` as one that C calls (readline's hooks through ctypes, or its completer through the readline
    module), where an exception cannot get out: C prints it ("Exception ignored") or drops it. A SIGTERM or SIGHUP
    that would end the program (:func:`exit_on_hangup`) while such a function runs, from its first instruction on, is
    sent again a moment later, until it lands outside, where it ends the read of the line as it would have without the
    hook: a ``kill`` then ``fg`` of a program started in the background went unheard. The function itself is returned:
    a wrapper would be the function C calls, with a first instruction of its own."""
    _callbacks.add(function.__code__)
    return function


@contextmanager
def ctrl_c_sent_again() -> Iterator[None]:
    """Around the body of a :func:`c_callback_function`: a Ctrl-C inside it is sent again a moment after it returns,
    instead of being dropped there with the :class:`KeyboardInterrupt` it raised."""
    try:
        yield
    except KeyboardInterrupt:
        _send_later(signal.SIGINT)


def _in_c_callback(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _callbacks:
            return True
        frame = frame.f_back
    return False


def _send_later(signum: int, delay: float = 0.05) -> None:
    """Send ``signum`` to the main thread after ``delay`` seconds (by then back in C, waiting for a key)."""
    main = threading.main_thread().ident
    assert main is not None

    def send() -> None:
        time.sleep(delay)
        signal.pthread_kill(main, signum)

    threading.Thread(target=send, name="autocomplete-signal", daemon=True).start()


def _end_through_exit(signum: int, frame: FrameType | None) -> None:
    """The first SIGHUP or SIGTERM ends the program through :class:`SystemExit`; any after it, or one that arrives while
    the program already ends (its exit handlers running), does nothing: a closed terminal window sends SIGHUP twice
    (the kernel, then the shell passing it on), and the second must not cut short the save the first started. SIGKILL
    still ends it. One that arrives inside a C callback, where the exit would be lost, is sent again a moment later
    (:func:`c_callback_function`)."""
    global _ending
    if not _ending and _in_c_callback(frame):
        _send_later(signum)
        return
    if not _ending:
        _ending = True
        if not _shutting_down(frame):
            end_anyway(128 + signum)  # a host that swallows the SystemExit (and spins on a dead terminal) ends too
            raise SystemExit(128 + signum)


def _shutting_down(frame: FrameType | None) -> bool:
    """Whether the main thread is past the program's end, waiting for its other threads (a terminal closed under a
    program that its end of input just ended): raising there only prints "Exception ignored"; the exit handlers
    run next anyway."""
    while frame is not None and frame.f_back is not None:
        frame = frame.f_back
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter runs once the main program returns
    return frame is not None and frame.f_code is getattr(shutdown, "__code__", None)


def calm() -> None:
    """The program is ending (an exit handler runs): from now on the guest's handler lets SIGHUP and SIGTERM pass, so
    they no longer interrupt what the exit handlers save."""
    global _ending
    _ending = True
    _calmed.set()


_calm_at_exit = False


def exit_on_hangup() -> None:
    """For a guest in a host program (IPython, ptpython, a readline program): SIGHUP (a closed terminal window) and
    SIGTERM, where the host leaves them to kill the process on the spot, end it through :class:`SystemExit` instead,
    so that its exit handlers run and what was learned is saved. A host's own handlers are left alone, and so is
    every signal off the main thread."""
    global _calm_at_exit
    try:
        for sig in named("SIGTERM", "SIGHUP"):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _end_through_exit)
    except ValueError:  # not the main thread
        return
    if not _calm_at_exit:  # exit handlers run last registered first: this one before those registered until now
        atexit.register(calm)
        _calm_at_exit = True
