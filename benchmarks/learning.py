"""Learning its user: what each adaptation technique buys on held-out text, and the peer, presage.

    python -m benchmarks.learning --markdown out.md        # the BENCHMARKS.md table (tens of minutes on 2 busy cores)
    python -m benchmarks.learning --tune                    # the grid that chose LearnConfig's defaults (hours)
    python -m benchmarks.learning --texts novels --brief --words 40000 --no-latency   # whole books (half an hour)
    python -m benchmarks.learning --quick                   # seconds: keeps the code path working (tests run it)
    python -m benchmarks.learning --ceiling --texts novels --words 40000   # how far learning could go (15 minutes)

Every text is replayed as its user would type it (``autocomplete.evaluate``: each line typed as the edited text,
then committed and learned before the next one) with nothing learned at the start: the shipped model alone, the
continuous cache alone (its share learned online), the personal lexicon alone, dynamic evaluation alone (of the
output layer, of the top LSTM layer, of both), and all three (the defaults). Columns:
perplexity and top-1 accuracy over every token, keystroke savings with 6 suggestions (presage's default) over the
text's first words. Keystroke latency is timed in a separate pass in which the learner runs in the background while
the next line is typed, as in a session (learning off against on; ``--latency-only`` runs only this pass). Keystrokes
come ``--pause-ms`` apart (5 ms by default, twenty times faster than a fast typist; 0: back to back, which leaves the
learner, which defers to keystrokes in flight, only the gaps the typing loop leaves). Columns: wall-clock p50/p99;
the same less the time the typing thread waited for a CPU held by other programs (``own``: on a shared, busy machine
the wall-clock tail is mostly that wait, with learning off too); how long after its commit a line was seen learned.

presage (``apt-get install presage``; never a dependency of the package) is built with ``text2ngram`` (case kept)
from exactly the default model's training files (``models/train-default.sh``) and typed by the same simulator on the
same tokens (``benchmarks.presage``), with its learning off (its 3-gram predictor alone) and on (each committed line
learned into a fresh copy of its database, its recency predictor added); ``presage_simulator``'s own figure, by its
own rules, is printed beside it (``--presage-db`` runs it over another database, e.g. a lower-cased one).

``--ceiling`` asks how far learning from the text typed so far could take the keystroke savings: the text is typed
with learning off and on, and each word's keystrokes are kept. What learning helps with is, above all, the words
typed before (their share of the keystrokes is printed; learning made the others no cheaper in our runs). The
columns price each of those at most 3, 2 or 1 keystrokes (found after at most 2, 1 or 0 of its letters, then taken
with one key), every other word as learning on typed it. The last is a true ceiling for learning that helps only
words typed before; the first two say what a gain takes: e.g. that +4 points is about what every word typed before,
found within its first two letters, would give.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from autocomplete import data
from autocomplete.evaluate import evaluate, keystroke_savings, read_eval_text
from autocomplete.paths import default_model_path
from autocomplete.personal import LearnConfig, Personal
from autocomplete.predictor import Predictor
from benchmarks import presage
from benchmarks.common import DATA, FIXTURE, ROOT, Report, percentile, run_queue_seconds

SECTION = "learning its user"


@dataclass(frozen=True)
class Text:
    name: str
    path: Path
    start: int  # words skipped from the start of the file
    words: int  # words in the slice
    style: str = "prose"  # how a model trained with styles reads it (as the session would: --style tech for docs)


def prepare_modern_data() -> ModuleType:
    """``models/prepare-modern-data.py`` (a script beside the model it made): the default model's training mix and
    the texts it holds out of it."""
    spec = importlib.util.spec_from_file_location("prepare_modern_data", ROOT / "models" / "prepare-modern-data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TUNING = Text("The Man Who Was Thursday, words 20,000 on (tuning; the rest of the book)",
              DATA / "books" / "man_who_was_thursday_1695.txt", 20_000, 40_000)


def texts(words: int, folder: Path, which: str = "all") -> list[Text]:
    """The held-out slices: both novels left out of the default model's training (*Thursday* never beyond word
    20,000, where the tuning slice starts), and the modern technical text and tldr pages it holds out (written to
    ``folder``); ``which``: all, novels or modern."""
    chosen = [
        Text("Ethan Frome (held-out novel)", DATA / "books" / "ethan_frome_4517.txt", 0, words),
        Text("The Man Who Was Thursday (held-out novel)", DATA / "books" / "man_who_was_thursday_1695.txt", 0,
             min(words, TUNING.start)),
    ] if which != "modern" else []
    if which != "novels" and (DATA / "modern").is_dir() and (DATA / "books").is_dir():
        prepare = prepare_modern_data()
        held = prepare.mix(DATA)[1]
        for name, key in (("Rust book, then PEPs (held-out modern technical prose)", "tech"),
                          ("tldr pages (held-out terminal commands)", "tldr")):
            prepare.write(folder / f"heldout-{key}.txt", held[key])
            chosen.append(Text(name, folder / f"heldout-{key}.txt", 0, words, "tech"))
    return chosen


OFF = LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False)
VARIANTS: list[tuple[str, LearnConfig | None]] = [
    ("model alone", None),
    ("continuous cache", LearnConfig(lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False)),
    ("personal lexicon", LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0)),
    ("dynamic evaluation, output layer", LearnConfig(window=0, lexicon=False, lr_top=0.0)),
    ("dynamic evaluation, top LSTM layer", LearnConfig(window=0, lexicon=False, lr=0.0, lr_bias=0.0)),
    ("dynamic evaluation, both", LearnConfig(window=0, lexicon=False)),
    ("all three (defaults)", LearnConfig()),
]


def slice_text(text: Text, folder: Path) -> Path:
    """The slice as a file of whole paragraphs (or lines, for line-per-utterance text) starting at ``text.start``."""
    raw = text.path.read_text(encoding="utf-8")
    blocks = raw.split("\n\n") if "\n\n" in raw[:20000] else raw.split("\n")
    joiner = "\n\n" if "\n\n" in raw[:20000] else "\n"
    kept: list[str] = []
    seen = taken = 0
    for block in blocks:
        n = len(block.split())
        if seen >= text.start and taken < text.words:
            kept.append(block)
            taken += n
        seen += n
    out = folder / (re.sub(r"\W+", "_", text.name.lower()).strip("_")[:40] + ".txt")
    out.write_text(joiner.join(kept).strip() + "\n", encoding="utf-8")
    return out


FIXTURE_TEXT = Text("Shakespeare fixture", FIXTURE, 0, 150)


def chosen_texts(words: int, folder: Path, which: str, quick: bool) -> list[Text]:
    """The held-out slices to type, or the test fixture for ``--quick`` and where the shared data is missing."""
    chosen = [] if quick else texts(words, folder, which)
    return [FIXTURE_TEXT] if quick or not all(t.path.exists() for t in chosen) else chosen


def read_as(predictor: Predictor, text: Text, folder: Path) -> Path:
    """Set the style ``text`` is read in (where the model has it) and write its slice to ``folder``."""
    predictor.set_style(text.style if text.style in predictor.styles else None)
    return slice_text(text, folder)


def measure(predictor: Predictor, path: Path, config: LearnConfig | None, ksr_words: int) -> dict[str, float]:
    ids, surface = read_eval_text(data.resolve_sources([path]), predictor.tokenizer, predictor.vocab)
    predictor.personal = Personal(predictor.lm, config) if config is not None else None
    report = evaluate(predictor, ids, surface, ks=(1, 5), ksr_k=(6,), ksr_words=ksr_words)
    predictor.personal = None
    return {
        "tokens": report.tokens, "unknown": report.unknown_rate, "perplexity": report.perplexity,
        "top1": report.accuracy[1], "ksr": report.keystrokes[0].savings, "ksr_words": report.keystrokes[0].words,
    }


@dataclass
class Typing:
    """What the keystroke latency pass measured."""

    times: list[float]  # seconds per keystroke (wall clock)
    own: list[float]  # the same less the time the typing thread waited for a CPU other programs held
    lags: list[float]  # seconds from each committed line to its being learned, as seen by the next keystrokes
    lines: int  # lines committed while typing


def keystroke_latency(predictor: Predictor, path: Path, config: LearnConfig | None, words: int,
                      pause: float = 0.005) -> Typing:
    """Time each keystroke while typing the text's first ``words`` words, ``pause`` seconds apart (5 ms: twenty
    times faster than a fast typist, so the learner has little room), each line committed when it ends; the learner
    (if any) runs in the background meanwhile, as in a session."""
    ids, surface = read_eval_text(data.resolve_sources([path]), predictor.tokenizer, predictor.vocab)
    personal = Personal(predictor.lm, config) if config is not None else None
    predictor.personal = personal
    predictor.reset()
    result = Typing([], [], [], 0)
    committed: list[float] = []  # when each line not yet seen learned was committed
    line, typed_words = "", 0
    for token in surface:
        if token == "<eos>":
            predictor.commit(line + "\n")
            committed.append(time.perf_counter())
            result.lines += 1
            line = ""
            continue
        if typed_words >= words:
            break
        typed_words += 1
        for end in range(len(token) + 1):
            if pause:
                time.sleep(pause)
            queued = run_queue_seconds()
            start = time.perf_counter()
            predictor.suggest(line + token[:end], 6)
            took = time.perf_counter() - start
            result.times.append(took)
            result.own.append(took - (run_queue_seconds() - queued))
            if personal is not None:
                while committed and personal.stats.lines >= result.lines - len(committed) + 1:
                    result.lags.append(time.perf_counter() - committed.pop(0))
        line += token + " "
    if personal is not None:
        personal.wait()
        result.lags += [time.perf_counter() - t for t in committed]  # learned only after the typing ended
    predictor.personal = None
    return result


# ---- presage ------------------------------------------------------------------------------------------------------


def training_files(folder: Path) -> list[Path]:
    """The default model's training files, laid out in ``folder`` as ``models/train-default.sh`` does."""
    prepare_modern_data().main(DATA, folder / "mix")
    return sorted((folder / "mix" / "train").glob("*/*.txt"))


def presage_database(folder: Path, db: Path | None = None) -> Path | None:
    """``db`` if given, else presage's 1-, 2- and 3-gram counts of the default model's training files, case kept,
    built once (tens of minutes on a busy machine) and kept in ``folder``; None where presage is not installed."""
    if presage.missing() is not None or (db is None and shutil.which("text2ngram") is None):
        return None
    if db is not None:
        return db
    built = folder / "default-mix.db"
    return built if built.exists() else presage.build_database(built, training_files(folder))


def presage_rows(report: Report, command: str, db: Path, text: Text, path: Path, tokens: list[str],
                 base: dict[str, float]) -> None:
    """presage with its learning off and on, typed by our simulator; presage_simulator's own figure beside it."""
    case = "lower-cased" if presage.is_lowercase(db) else "case kept"
    for learn in (False, True):
        result = presage.keystrokes_isolated(db, tokens, learn, text.words)
        own = presage.simulator_savings(db, path, learn, text.words)
        name = f"{text.name}: presage ({case}), learning {'on' if learn else 'off'}"
        report.add(SECTION, name, command, ksr6="failed" if result is None else f"{result.savings:.1%}",
                   gain="" if result is None else f"{(result.savings - base['ksr']) * 100:+.1f}",
                   words="" if result is None else result.words,
                   presage_simulator="failed" if own is None else f"{own:.1%}")


# ---- the report ---------------------------------------------------------------------------------------------------


def run(report: Report, model: Path, quick: bool, command: str, words: int = 3000, presage_dir: Path | None = None,
        latency_words: int = 600, presage_only: bool = False, latency_only: bool = False,
        presage_db: Path | None = None, latency_pause: float = 0.005, no_presage: bool = False,
        which: str = "all", brief: bool = False, no_latency: bool = False) -> None:
    predictor = Predictor.load(model, quantize=True)  # as the session runs it
    variants = [VARIANTS[0], VARIANTS[-1]] if brief else VARIANTS
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chosen = chosen_texts(words, folder, which, quick)
        if chosen == [FIXTURE_TEXT]:
            latency_words = 60
        db = None if quick or latency_only or no_presage else presage_database(presage_dir or folder, presage_db)
        for text in [] if latency_only else chosen:
            path = read_as(predictor, text, folder)
            base: dict[str, float] | None = None
            for name, config in variants[:1] if presage_only else variants:
                m = measure(predictor, path, config, text.words)
                base = base or m
                report.add(
                    SECTION, f"{text.name}: {name}", command, tokens=m["tokens"], unknown=f"{m['unknown']:.1%}",
                    perplexity=m["perplexity"], change=f"{m['perplexity'] / base['perplexity'] - 1:+.1%}",
                    top1=f"{m['top1']:.1%}", ksr6=f"{m['ksr']:.1%}", gain=f"{(m['ksr'] - base['ksr']) * 100:+.1f}",
                    words=m["ksr_words"],
                )
            if db is not None and base is not None:
                tokens = presage.surface_tokens(path, "auto", predictor.tokenizer)  # what measure() typed
                presage_rows(report, command, db, text, path, tokens, base)
        if presage_only or no_latency:
            return
        text = chosen[0]
        path = read_as(predictor, text, folder)
        for name, config in (("learning off", None), ("learning on", LearnConfig())):
            typing = keystroke_latency(predictor, path, config, latency_words, latency_pause)
            lags = typing.lags or [float("nan")]
            report.add(f"{SECTION}: keystroke latency", f"{text.name}, {name}", command,
                       keystrokes=len(typing.times), p50_ms=percentile(typing.times, 50) * 1e3,
                       p99_ms=percentile(typing.times, 99) * 1e3, own_p50_ms=percentile(typing.own, 50) * 1e3,
                       own_p99_ms=percentile(typing.own, 99) * 1e3, lines=typing.lines,
                       learned_lag_p50_ms=percentile(lags, 50) * 1e3 if config else "",
                       learned_lag_max_ms=max(lags) * 1e3 if config else "")


def typed_costs(predictor: Predictor, tokens: list[str], config: LearnConfig | None, words: int) -> list[tuple[str, int]]:
    """Each word of ``tokens`` (up to ``words``) and the keystrokes it took with 6 suggestions, learning as set."""
    costs: list[tuple[str, int]] = []
    predictor.personal = Personal(predictor.lm, config) if config is not None else None
    keystroke_savings(predictor, tokens, 6, words, each=lambda token, cost: costs.append((token, cost)))
    predictor.personal = None
    return costs


def ceilings(off: list[tuple[str, int]], on: list[tuple[str, int]]) -> dict[str, float]:
    """Keystroke savings off and on, the share of the keystrokes spent on words typed before (in any case), and the
    savings if each of those cost at most 3, 2 or 1 keys, everything else as ``on`` typed it."""
    full = sum(len(token) + 1 for token, _ in off)
    seen: set[str] = set()
    before: list[bool] = []
    for token, _ in off:
        before.append(token.lower() in seen)
        seen.add(token.lower())
    result = {
        "off": 1 - sum(c for _, c in off) / full, "on": 1 - sum(c for _, c in on) / full,
        "typed_before": sum(len(t) + 1 for (t, _), b in zip(off, before) if b) / full,
    }
    for cap in (3, 2, 1):
        result[f"cap{cap}"] = 1 - sum(min(c, cap) if b else c for (_, c), b in zip(on, before)) / full
    return result


def ceiling(report: Report, model: Path, command: str, words: int, which: str, quick: bool = False) -> None:
    predictor = Predictor.load(model, quantize=True)
    with tempfile.TemporaryDirectory() as tmp:
        for text in chosen_texts(words, Path(tmp), which, quick):
            path = read_as(predictor, text, Path(tmp))
            _, tokens = read_eval_text(data.resolve_sources([path]), predictor.tokenizer, predictor.vocab)
            off = typed_costs(predictor, tokens, None, text.words)
            c = ceilings(off, typed_costs(predictor, tokens, LearnConfig(), text.words))
            report.add(f"{SECTION}: ceiling", text.name, command, words=len(off), off=f"{c['off']:.1%}",
                       on=f"{c['on']:.1%} ({(c['on'] - c['off']) * 100:+.1f})",
                       typed_before=f"{c['typed_before']:.1%} of the keys",
                       **{f"each_typed_before_at_most_{cap}_keys": f"{c[f'cap{cap}']:.1%} ({(c[f'cap{cap}'] - c['off']) * 100:+.1f})"
                          for cap in (3, 2, 1)})


def tune(model: Path, command: str) -> None:
    """The grid that chose the defaults: perplexity on the tuning slice (never one of the reported ones)."""
    predictor = Predictor.load(model, quantize=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = slice_text(TUNING, Path(tmp))
        ids, surface = read_eval_text(data.resolve_sources([path]), predictor.tokenizer, predictor.vocab)
        nothing = {"window": 0, "lr": 0.0, "lr_bias": 0.0, "lr_top": 0.0, "lexicon": False}
        grid: list[dict[str, object]] = [nothing]
        for weight in (0.05, 0.1, 0.15):  # the cache alone, its share fixed
            for flatness in (0.5, 1.0, 2.0):
                grid.append({**nothing, "window": 2000, "cache_weight": weight, "flatness": flatness, "cache_rate": 0.0})
        for rate in (0.001, 0.003, 0.01):  # ... its share learned online
            grid.append({**nothing, "window": 2000, "cache_rate": rate})
        for lr in (0.003, 0.01, 0.03):  # dynamic evaluation of the output layer alone
            for lr_bias in (0.03, 0.1, 0.3):
                grid.append({**nothing, "lr": lr, "lr_bias": lr_bias})
        for lr_top in (0.0001, 0.0003, 0.001):  # ... of the top LSTM layer alone
            grid.append({**nothing, "lr_top": lr_top})
        for decay in (0.0, 0.001, 0.005):  # everything on
            grid.append({"decay": decay})
        from autocomplete.evaluate import evaluate_learning

        for settings in grid:
            personal = Personal(predictor.lm, LearnConfig().replace(**settings))
            loss, accuracy, _ = evaluate_learning(predictor.model, personal, ids, surface, (1,))
            print(f"{settings}: perplexity {torch.tensor(loss).exp():.2f}, top-1 {accuracy[1]:.1%}", flush=True)
    print(f"({command}; {TUNING.name}, {TUNING.words:,} words)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny text: checks the code path, numbers are rough")
    parser.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    parser.add_argument("--words", type=int, default=3000, help="words of each text (default 3000)")
    parser.add_argument("--latency-words", type=int, default=600, help="words typed in the latency pass (600)")
    parser.add_argument("--presage-dir", type=Path, default=None,
                        help="where presage's database is built and kept (default: a temporary folder)")
    parser.add_argument("--presage-db", type=Path, default=None,
                        help="use this presage database as it is (e.g. one built lower-cased) instead of building one")
    parser.add_argument("--tune", action="store_true", help="print the grid that chose the defaults instead")
    parser.add_argument("--ceiling", action="store_true",
                        help="how far learning from the text typed so far could take the keystroke savings, instead")
    parser.add_argument("--no-presage", action="store_true", help="leave presage's rows out (our own rows only)")
    parser.add_argument("--presage-only", action="store_true", help="only the model alone and presage's rows")
    parser.add_argument("--latency-only", action="store_true", help="only the keystroke latency rows")
    parser.add_argument("--no-latency", action="store_true", help="leave the keystroke latency rows out")
    parser.add_argument("--texts", choices=("all", "novels", "modern"), default="all",
                        help="which held-out texts (default all)")
    parser.add_argument("--brief", action="store_true",
                        help="only the model alone and all three (not each technique alone): for whole books")
    parser.add_argument("--pause-ms", type=float, default=5.0,
                        help="pause between keystrokes in the latency pass (default 5; 0: back to back)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the session runs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.learning " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    model = args.model or default_model_path()
    if args.tune:
        tune(model, command)
        return 0
    report = Report()
    if args.ceiling:
        ceiling(report, model, command, args.words, args.texts, args.quick)
    else:
        run(report, model, args.quick, command, args.words, args.presage_dir, args.latency_words, args.presage_only,
            args.latency_only, args.presage_db, args.pause_ms / 1e3, args.no_presage, args.texts, args.brief,
            args.no_latency)
    if args.markdown:
        from benchmarks.run import markdown

        args.markdown.write_text(markdown(report, command))
        print(f"written to {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
