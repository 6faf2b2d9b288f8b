"""The benchmark suite in one command.

    python -m benchmarks.run                      # everything this machine can measure (tens of minutes)
    python -m benchmarks.run --quick              # a few seconds per section: keeps the code paths working
    python -m benchmarks.run --markdown out.md    # also write the results as Markdown tables

Sections: keystroke latency through the session's own code path against re-running the model on every keystroke,
cold start and memory, generation speed, CPU inference levers, long sessions (memory and keystroke latency after
10 K / 100 K / 1 M committed words, memory per session) and a busy machine (keystrokes with another process on a
core), training throughput and perplexity per epoch against the classic PyTorch recipe on PTB, the PTB test
quality of given models, and what learning its user buys (``benchmarks.learning``). Numbers are printed, never
asserted: the test suite only runs ``--quick`` to check that the suite still works.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from autocomplete import data
from autocomplete.paths import default_model_path
from autocomplete.predictor import Predictor
from benchmarks import inference, learning, long_session, ptb
from benchmarks.common import DATA, FIXTURE, Report, git_revision, machine

SECTIONS = [
    "latency", "startup", "generation", "levers", "long", "sessions", "contention", "training", "quality", "learning",
]
OURS = {"batch_size": 64, "optimizer": "adamw", "lr": 4e-3, "warmup_steps": 100, "schedule": "cosine"}


def held_out_text(quick: bool) -> Path:
    book = DATA / "books" / "ethan_frome_4517.txt"  # held out of the default model's training
    return book if book.exists() and not quick else FIXTURE


def run(args: argparse.Namespace) -> Report:
    report = Report()
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or 1)  # inference rows: one thread, as autocomplete.load() runs the model
    sections = set(args.only or SECTIONS)
    model = args.model or default_model_path()
    predictor = Predictor.load(model, quantize=True)  # as the session runs it
    text = held_out_text(args.quick)
    if "latency" in sections:
        inference.keystroke_latency(report, predictor, text, args.quick, command)
    if "startup" in sections:
        inference.cold_start(report, model, command)
    if "generation" in sections:
        inference.generation(report, predictor, args.quick, command)
    if "levers" in sections:
        exact = Predictor.load(model)
        ids, _ = _eval_ids(exact, text)
        inference.levers(report, exact, ids, args.quick, command)
    if "long" in sections:
        long_session.long_session(report, predictor, text, args.quick, command)
    if "sessions" in sections:
        long_session.session_memory(report, predictor, text, args.quick, command)
    if "contention" in sections:
        long_session.contention(report, predictor, text, args.quick, command)
    torch.set_num_threads(args.threads or default_threads)  # training rows: PyTorch's choice unless --threads
    ptb_folder = args.ptb
    if "training" in sections and (ptb_folder / "train.txt").exists():
        corpus = ptb.load_ptb(ptb_folder)
        steps = 30 if args.quick else 300
        variants = [
            (ptb.CLASSIC, ptb.SMALL),  # the classic recipe in our loop
            (ptb.CLASSIC, ptb.SMALL_TIED_ADAPTIVE),  # ... with the tied two-level softmax
            (OURS, ptb.SMALL_ADAPTIVE),  # the fastest: untied adaptive softmax, batch 64, AdamW
        ]
        ptb.throughput(report, corpus, steps, command, variants, rounds=1 if args.quick else 3)
        if not args.quick:
            ptb.per_epoch(report, corpus, args.epochs, command, ptb.CLASSIC, ptb.SMALL_TIED_ADAPTIVE)
    elif "training" in sections:
        report.notes.append(f"training rows skipped: no PTB at {ptb_folder}")
    if "quality" in sections and args.ptb_models:
        ptb.quality(report, ptb_folder, args.ptb_models, 200 if args.quick else args.ksr_words, command)
    if "learning" in sections:
        learning.run(report, model, args.quick, command)
    return report


def _eval_ids(predictor: Predictor, text: Path) -> tuple[torch.Tensor, list[str]]:
    from autocomplete.evaluate import read_eval_text

    return read_eval_text(data.resolve_sources([text]), predictor.tokenizer, predictor.vocab)


def markdown(report: Report, command: str) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} at commit {git_revision()} on: {machine()}.",
        f"Command: `{command}`",
        "",
    ]
    sections: dict[str, list] = {}
    for row in report.rows:
        sections.setdefault(row.section, []).append(row)
    for section, rows in sections.items():
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row.values if k not in keys]
        lines += [f"### {section}", "", "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for row in rows:
            lines.append(f"| {row.name} | " + " | ".join(row.values.get(k, "") for k in keys) + " |")
        lines.append("")
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs, numbers are rough")
    parser.add_argument("--model", type=Path, default=None, help="model for the inference rows (default: shipped)")
    parser.add_argument("--ptb", type=Path, default=DATA / "ptb", help="folder with PTB train/valid/test.txt")
    parser.add_argument("--ptb-models", type=Path, nargs="*", default=[], help="PTB-trained models for the quality table")
    parser.add_argument("--ksr-words", type=int, default=2000, help="words typed in the keystroke simulation")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the perplexity-per-epoch comparison")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 for the inference rows, as the session; PyTorch's choice for "
                             "training)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    report = run(args)
    if args.markdown:
        command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        args.markdown.write_text(markdown(report, command))
        print(f"written to {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
