"""The ``autocomplete`` command's entry point. It imports the program with a Ctrl-C held back (on a busy machine
that takes a second), so one pressed that early ends it with "interrupted" and status 130, as a Ctrl-C later does,
never with a traceback from the middle of an import."""

from __future__ import annotations

import sys

from autocomplete.signals import EXIT_INTERRUPTED, interrupt_deferred


def main() -> int:
    try:
        with interrupt_deferred():
            from autocomplete.cli import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run()
