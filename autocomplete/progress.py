"""Progress of long runs (training, evaluation): one bar with a time estimate on a terminal, plain lines elsewhere.

A bar redrawn in place with carriage returns is what a terminal wants and what a log file does not (piped to a file,
the updates pile up into one enormous line). So a run draws a tqdm bar only when its stream is a terminal; otherwise it
writes a plain line at most every ``interval`` seconds, with the same numbers and the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Literal, TextIO

from tqdm import tqdm

Mode = Literal["bar", "lines", "off"]


def choose_mode(quiet: bool = False, stream: TextIO | None = None) -> Mode:
    """``bar`` on a terminal, ``lines`` when ``stream`` (standard error by default) is a file or a pipe."""
    if quiet:
        return "off"
    stream = stream or sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "lines"


def count(n: int, noun: str) -> str:
    """``1 step``, ``0 steps``, ``1,234 tokens``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def duration(seconds: float) -> str:
    """A short human duration: ``42 s``, ``5 min``, ``2 h 7 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Progress:
    """``total`` units of work, ``initial`` of them done before (a resumed run); see the module docstring.

    ``log`` receives the plain lines and every message written through :meth:`write` (which clears the bar first, so
    a message never lands in the middle of it)."""

    def __init__(
        self,
        total: int,
        mode: Mode,
        log: Callable[[str], None],
        desc: str,
        unit: str = "step",
        initial: int = 0,
        interval: float = 60.0,
        file: TextIO | None = None,
    ) -> None:
        self.total, self.mode, self.log, self.desc, self.unit = total, mode, log, desc, unit
        self.done = self.initial = initial
        self.interval = interval
        self.file = file or sys.stderr
        self._started = self._last_line = time.monotonic()
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.file, dynamic_ncols=True,
                 mininterval=0.5, leave=True)
            if mode == "bar" else None
        )

    def update(self, n: int = 1, **fields: str) -> None:
        """``n`` more units done; ``fields`` (loss, tokens/s…) are shown next to the bar or in the next plain line."""
        self.done += n
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(n)
        elif self.mode == "lines" and time.monotonic() - self._last_line >= self.interval:
            self.log(self.line(fields))

    def line(self, fields: dict[str, str]) -> str:
        """``training: 1,234/10,000 steps (12%), loss 4.210, about 5 min left``."""
        self._last_line = now = time.monotonic()
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        parts = [f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s{share}"]
        parts += [f"{name.replace('_', ' ')} {value}" for name, value in fields.items()]
        rate = (self.done - self.initial) / max(1e-9, now - self._started)
        if rate > 0 and self.done < self.total:
            parts.append(f"about {duration((self.total - self.done) / rate)} left")
        return ", ".join(parts)

    def write(self, message: str) -> None:
        """Log ``message`` (on a terminal: above the bar, which is redrawn below it)."""
        with tqdm.external_write_mode(file=self.file) if self.bar is not None else nullcontext():
            self.log(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
