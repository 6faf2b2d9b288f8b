"""Signal handlers for the length of a block (the commands' clean stop on Ctrl-C, SIGTERM and SIGHUP)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

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


GUEST = """
import atexit, os, signal, sys, time
from autocomplete.signals import exit_on_hangup

def save():  # an exit handler that saves what was learned, hit by another SIGHUP halfway
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.2)
    print("saved", flush=True)

atexit.register(save)
exit_on_hangup()
if sys.argv[1] == "hang up":
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(10)
    print("not ended", flush=True)
elif sys.argv[1] == "hang up at the end":  # the program returns while a thread of its own still runs
    import threading

    def late():
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGHUP)  # caught by the main thread waiting for this one
        time.sleep(0.5)

    threading.Thread(target=late).start()
"""


def test_a_guest_ends_on_a_hang_up_and_a_second_one_does_not_cut_its_exit_handlers_short():
    # a closed terminal window: SIGHUP from the kernel, then from the shell passing it on to its job
    done = subprocess.run([sys.executable, "-c", GUEST, "hang up"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (128 + signal.SIGHUP, "saved\n", "")


def test_a_hang_up_while_a_guest_ends_on_its_own_does_not_interrupt_its_exit_handlers():
    done = subprocess.run([sys.executable, "-c", GUEST, "end"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "saved\n", "")


def test_a_hang_up_after_a_guest_returned_while_its_threads_finish_prints_nothing_and_its_exit_handlers_run():
    done = subprocess.run([sys.executable, "-c", GUEST, "hang up at the end"], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "saved\n", "")


def test_a_guest_in_a_program_started_under_nohup_leaves_its_ignored_hang_up_alone():
    # such a program is meant to outlive its terminal: a closed window must not end it through the guest
    program = (
        "import os, signal\n"
        "from autocomplete.signals import exit_on_hangup\n"
        "exit_on_hangup()\n"
        "os.kill(os.getpid(), signal.SIGHUP)\n"
        "print('still running', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert (done.returncode, done.stdout, done.stderr) == (0, "still running\n", "")


def test_a_ctrl_c_inside_a_deferred_block_is_raised_when_it_ends_even_if_the_block_swallowed_it():
    from autocomplete.signals import interrupt_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_deferred():
            try:  # as PyTorch's start-up does with a KeyboardInterrupt raised while it imports numpy
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
            reached.append("end of block")
    assert reached == ["end of block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deferred_block_without_a_ctrl_c_raises_nothing_and_leaves_a_program_s_own_handler_alone():
    from autocomplete.signals import interrupt_deferred

    with interrupt_deferred():
        pass
    caught = []
    with handling([signal.SIGINT], lambda signum, frame: caught.append(signum)):
        with interrupt_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert caught == [signal.SIGINT]  # the program's handler had it, as it was


_INTERRUPTED_IMPORT = """
import builtins, os, signal, sys
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    if name == {name!r} and name not in sys.modules:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, while the program is being imported
        except KeyboardInterrupt:  # swallowed, as PyTorch's start-up does with one that lands as it imports numpy
            pass
        return real(name, *args, **kwargs)
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
from autocomplete.entry import main
sys.argv = ["autocomplete", "predict", "hello", "--model", "/nonexistent/model.pt"]
sys.exit(main())
"""


@pytest.mark.parametrize("name", ["autocomplete.cli", "torch"])
def test_ctrl_c_while_the_command_is_imported_ends_it_as_interrupted_without_a_traceback(name):
    # sweep j, items 1 and 2: a traceback from inside an import, or (torch's) lost: the session started anyway
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_IMPORT.format(name=name)], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stderr, done.stdout) == (130, "interrupted\n", "")


def test_a_kill_handled_at_the_first_instruction_of_a_function_c_calls_is_sent_again_not_raised_there(monkeypatch):
    from autocomplete import signals

    sent = []
    monkeypatch.setattr(signals, "_send_later", lambda signum, delay=0.05: sent.append(signum))
    monkeypatch.setattr(signals, "_ending", False)
    monkeypatch.setattr(signals, "end_anyway", lambda code: None)  # the guard would end this test run in 15 s

    @signals.c_callback_function
    def hook():  # as readline's pre-input hook, where a SystemExit would be printed and dropped
        return sys._getframe()

    signals._end_through_exit(signal.SIGTERM, hook())  # no SystemExit here: it would be lost
    assert sent == [signal.SIGTERM] and not signals._ending
    with pytest.raises(SystemExit) as ended:  # outside such a function, as before
        signals._end_through_exit(signal.SIGTERM, sys._getframe())
    assert ended.value.code == 128 + signal.SIGTERM
