"""Long sessions and busy machines: memory and keystroke latency after 10 K / 100 K / 1 M committed words, the memory
of a session, and keystroke latency with another process keeping a core busy.

Run through ``python -m benchmarks.run --only long contention``. The committed text is a book cycled as often as
needed, committed in batches (one ``commit()`` per chunk of lines, as a program that feeds a long document would);
the keystrokes replay the next lines character by character through the session's own code path
(:func:`benchmarks.inference.repl_path`), each line committed when it is finished, as the session does on Enter.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from autocomplete.predictor import Predictor
from benchmarks.common import Report, percentile, timed
from benchmarks.inference import repl_path


def rss_mb() -> float:
    """The process's resident memory now (not its peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _lines(path: Path) -> Iterator[str]:
    """The book's non-empty lines, over and over."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    while True:
        yield from lines


def _commit_words(predictor: Predictor, lines: Iterator[str], words: int, batch: int = 2000) -> int:
    """Commit about ``words`` words in batches of about ``batch`` words; returns how many were committed."""
    done = 0
    while done < words:
        chunk: list[str] = []
        size = 0
        while size < min(batch, words - done):
            line = next(lines)
            chunk.append(line)
            size += len(line.split())
        predictor.commit("\n".join(chunk) + "\n")
        done += size
    return done


def _type_lines(predictor: Predictor, lines: Iterator[str], keystrokes: int) -> list[float]:
    """Milliseconds per keystroke while typing lines (each committed at its end), through the session's code path."""
    keystroke = repl_path(predictor)
    times: list[float] = []
    while len(times) < keystrokes:
        line = next(lines)[:120]
        for i in range(1, len(line) + 1):
            times.append(timed(lambda t=line[:i]: keystroke(t)) * 1000)
        predictor.commit(line + "\n")
    return times


def long_session(report: Report, predictor: Predictor, text: Path, quick: bool, command: str) -> None:
    """RSS and keystroke latency as the committed context grows (the same session throughout)."""
    marks = (2_000, 10_000) if quick else (10_000, 100_000, 1_000_000)
    keystrokes = 60 if quick else 400
    session = predictor.session()
    lines = _lines(text)
    committed = 0
    _type_lines(session, lines, 20)  # warm-up
    for mark in marks:
        started = time.perf_counter()
        steps = session.steps
        committed += _commit_words(session, lines, mark - committed)
        seconds = time.perf_counter() - started
        tokens = session.steps - steps
        gc.collect()
        times = _type_lines(session, lines, keystrokes)
        report.add(
            "long session", f"{mark:,} words committed", command,
            rss_mb=rss_mb(), state_cache_kb=session.cache_size() / 1e3,
            keystroke_p50_ms=percentile(times, 50), keystroke_p99_ms=percentile(times, 99),
            commit_tokens_per_s=tokens / seconds, context_tokens=session.context_length,
        )


def session_memory(report: Report, predictor: Predictor, text: Path, quick: bool, command: str) -> None:
    """Bytes per session: many sessions over one model, each with 1,000 words committed or in its edited text. The
    tensors a session holds are counted exactly; the process's RSS growth per session is shown beside them (it can be
    lower: new sessions fill memory the allocator already holds)."""
    count = 5 if quick else 40
    lines = _lines(text)
    words = " ".join(next(lines) for _ in range(150)).split()[:1000]
    for where in ("committed", "being edited"):
        sessions = []
        gc.collect()
        before = rss_mb()
        for _ in range(count):
            session = predictor.session()
            if where == "committed":
                session.commit(" ".join(words) + "\n")
                session.suggest("I would like to ")
                session.suggest("I would like to s")
            else:
                session.suggest(" ".join(words) + " ")
                session.suggest(" ".join(words) + " and s")
            sessions.append(session)
        gc.collect()
        report.add(
            "memory per session", f"1,000 words {where}", command,
            tensors_kb=sessions[0].memory_bytes() / 1e3, state_cache_kb=sessions[0].cache_size() / 1e3,
            rss_growth_kb_per_session=(rss_mb() - before) * 1e3 / count,
        )


def _hog() -> subprocess.Popen[bytes]:
    """Another program keeping one core busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def contention(report: Report, predictor: Predictor, text: Path, quick: bool, command: str) -> None:
    """Keystroke latency and the time to absorb 5,000 committed words, with 1 and 2 PyTorch threads, with and
    without a busy process beside them."""
    keystrokes = 60 if quick else 300
    words = 1000 if quick else 5000
    threads = torch.get_num_threads()
    try:
        for busy in (False, True):
            hog = _hog() if busy else None
            try:
                for n in (1, 2):
                    torch.set_num_threads(n)
                    session = predictor.session()
                    lines = _lines(text)
                    started = time.perf_counter()
                    _commit_words(session, lines, words, batch=words)
                    absorb = time.perf_counter() - started
                    times = _type_lines(session, lines, keystrokes)
                    report.add(
                        "busy machine", f"{n} thread{'s' if n > 1 else ''}, {'plus a process keeping a core busy' if busy else 'no extra process'}",
                        command, keystroke_p50_ms=percentile(times, 50), keystroke_p99_ms=percentile(times, 99),
                        keystroke_max_ms=max(times), **{f"commit_{words}_words_s": absorb},
                    )
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    finally:
        torch.set_num_threads(threads)
