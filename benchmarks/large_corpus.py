"""Train on a corpus several times larger than the memory the training process may use.

Writes a synthetic corpus (Zipf-distributed words, ``--corpus-mb`` of text in a few files), then runs
``autocomplete train`` on it in a child process whose memory is capped with ``setrlimit`` (``--limit-mb``), twice:
the first run tokenises the corpus into the token cache, the second finds it there. It prints the corpus size, the
cap and each child's peak resident set (from ``wait4``), which stays near the size of an idle PyTorch process
however large the corpus is, because training reads its batches from the cached ids file.

The cap is ``RLIMIT_DATA`` by default (heap and private anonymous memory: what holding a corpus in memory would
need; PyTorch runs a tiny model in about 350 MB of it). ``--limit as`` caps the whole address space instead, which
also counts the shared libraries: PyTorch needs about 900 MB of that just to start on a CPU-only machine.
``--in-memory`` adds a third run with ``--no-cache`` under the same cap, to show that it fails.

    python benchmarks/large_corpus.py                      # ~1.2 GB of text, 384 MB cap: about 2 minutes
    python benchmarks/large_corpus.py --corpus-mb 8000 --limit-mb 512 --keep
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MB = 1 << 20
LIMITS = {"data": resource.RLIMIT_DATA, "as": resource.RLIMIT_AS}


def write_corpus(folder: Path, total_mb: int, files: int, vocabulary: int, seed: int = 0) -> list[Path]:
    """``files`` text files of about ``total_mb`` MB together: long lines of Zipf-distributed words."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocabulary)]
    weights = [1.0 / (rank + 1) for rank in range(vocabulary)]
    blocks = []  # a few distinct 4 MB blocks, cycled: generating every byte afresh would dominate the run time
    for _ in range(4):
        lines, size = [], 0
        while size < 4 * MB:
            line = " ".join(rng.choices(words, weights, k=150)) + "\n"
            lines.append(line)
            size += len(line)
        blocks.append("".join(lines).encode())
    paths, per_file = [], total_mb * MB // files
    for i in range(files):
        path = folder / f"part{i:02d}.txt"
        with open(path, "wb") as f:
            written = 0
            while written < per_file:
                block = blocks[(i + written // len(blocks[0])) % len(blocks)]
                f.write(block)
                written += len(block)
        paths.append(path)
    return paths


def capped(kind: str, limit_mb: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(LIMITS[kind], (limit_mb * MB, limit_mb * MB))

    return apply


def run_capped(command: list[str], kind: str, limit_mb: int) -> tuple[int, float, float]:
    """(exit code, seconds, peak resident MB) of ``command`` under the cap; its output goes to the terminal."""
    started = time.perf_counter()
    child = subprocess.Popen(command, preexec_fn=capped(kind, limit_mb))
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus-mb", type=int, default=1200, help="size of the synthetic corpus (default 1200)")
    parser.add_argument("--limit-mb", type=int, default=384, help="memory cap of the training process (default 384)")
    parser.add_argument("--limit", choices=sorted(LIMITS), default="data", help="which rlimit to set (default data)")
    parser.add_argument("--files", type=int, default=4, help="corpus files (default 4)")
    parser.add_argument("--vocabulary", type=int, default=20000, help="distinct words in the corpus (default 20000)")
    parser.add_argument("--steps", type=int, default=50, help="training steps per run (default 50)")
    parser.add_argument("--workdir", type=Path, default=None, help="where corpus, cache and model go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (corpus and cache) afterwards")
    parser.add_argument("--in-memory", action="store_true", help="also try --no-cache under the same cap (fails)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="autocomplete-large-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        paths = write_corpus(work, args.corpus_mb, args.files, args.vocabulary)
        corpus_mb = sum(p.stat().st_size for p in paths) / MB
        print(f"corpus: {corpus_mb:,.0f} MB of text in {len(paths)} files ({time.perf_counter() - started:.0f} s)")
        print(f"cap: RLIMIT_{args.limit.upper()} = {args.limit_mb} MB ({corpus_mb / args.limit_mb:.1f}× smaller)\n")
        train = [
            sys.executable, "-m", "autocomplete", "train", *map(str, paths), "-o", str(work / "model.pt"),
            "--tokenizer", "whitespace", "--breaks", "line", "--valid-fraction", "0.001",
            "--vocab-size", "5000", "--batch-size", "16", "--embedding-dim", "32", "--hidden-dim", "64",
            "--layers", "1", "--max-steps", str(args.steps), "--device", "cpu", "--threads", "1", "--quiet",
            "--save-every", "1e9",
        ]
        runs = [("first run (tokenises into the cache)", [*train, "--cache-dir", str(work / "cache")]),
                ("second run (reads the cache)", [*train, "--cache-dir", str(work / "cache")])]
        if args.in_memory:
            runs.append(("in memory (--no-cache)", [*train, "--no-cache"]))
        results = []
        for title, command in runs:
            print(f"--- {title}", flush=True)
            results.append((title, *run_capped(command, args.limit, args.limit_mb)))
        cache_mb = sum(p.stat().st_size for p in (work / "cache").glob("*.tokens")) / MB
        print(f"\ncorpus {corpus_mb:,.0f} MB text, {cache_mb:,.0f} MB of token ids; "
              f"cap RLIMIT_{args.limit.upper()} {args.limit_mb} MB")
        for title, code, seconds, peak in results:
            outcome = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"{title:<40} {outcome:<18} {seconds:6.0f} s   peak RSS {peak:6.0f} MB")
        streamed_ok = all(code == 0 for _, code, _, _ in results[:2])
        return 0 if streamed_ok else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
