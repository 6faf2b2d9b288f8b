"""Shared pieces of the benchmark suite: timing, percentiles, the machine, and result rows."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("AUTOCOMPLETE_BENCH_DATA", ROOT.parent / "shared" / "data"))
FIXTURE = ROOT / "tests" / "fixtures" / "shakespeare.txt"


@dataclass
class Row:
    section: str
    name: str
    values: dict[str, str]
    command: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, name: str, command: str = "", **values: object) -> None:
        row = Row(section, name, {k: _fmt(v) for k, v in values.items()}, command)
        self.rows.append(row)
        shown = "  ".join(f"{k}={v}" for k, v in row.values.items())
        print(f"[{section}] {name}: {shown}", flush=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_queue_seconds() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat; 0.0 elsewhere).

    On a shared, busy machine a keystroke's wall time includes waits for a CPU that other programs hold; subtracting
    this counter's growth over the keystroke leaves what the keystroke itself cost, waits for locks and the GIL
    included."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def median_time(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()
    return statistics.median(timed(fn) for _ in range(repeat))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_words(path: Path, limit: int) -> list[str]:
    """The first ``limit`` whitespace-separated words of a text file (for replaying typing)."""
    words: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words.extend(line.split())
            if len(words) >= limit:
                break
    return words[:limit]
