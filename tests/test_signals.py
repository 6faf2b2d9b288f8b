"""Signal handlers for the length of a block (the commands' clean stop on Ctrl-C, SIGTERM and SIGHUP)."""

import os
import signal
import threading

from autocomplete.signals import handling, named


def test_a_signal_inside_the_block_reaches_the_handler_and_the_previous_handler_is_back_after():
    received = []
    before = signal.getsignal(signal.SIGUSR1)
    with handling([signal.SIGUSR1], lambda signum, frame: received.append(signum)) as installed:
        os.kill(os.getpid(), signal.SIGUSR1)
    assert installed and received == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_the_previous_handlers_are_back_when_the_block_raises():
    before = signal.getsignal(signal.SIGUSR2)
    try:
        with handling([signal.SIGUSR2], lambda signum, frame: None):
            raise SystemExit(143)
    except SystemExit:
        pass
    assert signal.getsignal(signal.SIGUSR2) is before


def test_off_the_main_thread_the_block_runs_with_the_signals_left_as_they_are():
    before = signal.getsignal(signal.SIGUSR1)
    seen = []

    def run():
        with handling([signal.SIGUSR1], lambda signum, frame: None) as installed:
            seen.append((installed, signal.getsignal(signal.SIGUSR1)))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [(False, before)]


def test_only_the_signals_this_platform_has_are_named():
    assert named("SIGTERM", "SIGNOTONANYPLATFORM") == [signal.SIGTERM]
