"""Keystroke savings of presage (an n-gram word predictor) built from the same training files, on the same held-out
texts as ``autocomplete eval``: the baseline of the model card. A benchmark only: presage is never a dependency.

    python -m benchmarks.presage_baseline --db RUN/presage.db --train FILE_OR_FOLDER... \\
        --eval RUN/data/heldout/novels.txt RUN/data/heldout/tldr.txt --words 2000

Needs presage's ``text2ngram`` and ``presage_simulator`` on the PATH (Debian/Ubuntu package ``presage``). The
database holds lower-cased 1-, 2- and 3-gram counts (``text2ngram -n N -l -f sqlite`` for N = 1, 2, 3 into one
file: with the 3-gram table alone presage_simulator aborts), built once and reused. The simulator runs with presage's smoothed n-gram predictor alone (its stock configuration otherwise: deltas
0.01 0.1 0.89, 6 suggestions), case-insensitive, online learning off (adaptation off, as in ``autocomplete eval``).
Each held-out text is cut to the lines that hold its first ``--words`` tokens as ``autocomplete eval --ksr-words``
counts them, so both type the same text. The two simulations differ in protocol: presage's KSR counts the keystrokes
of every character including spaces and newlines, and selecting a suggestion costs one key; see
autocomplete/evaluate.py for ours.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from autocomplete.tokenizer import Tokenizer

_STOCK_CONFIG = Path("/etc/presage.xml")


def training_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        files.extend(sorted(p for p in path.rglob("*.txt")) if path.is_dir() else [path])
    return files


def build_db(db: Path, files: list[Path]) -> None:
    """Fill the 1-, 2- and 3-gram tables of ``db`` that are still empty. ``text2ngram -n 3`` fills only the 3-gram
    table: presage's smoothed predictor then aborts (``numerator <= denominator``), so every order is counted."""
    missing = [n for n in (1, 2, 3) if _rows(db, n) == 0]
    if not missing:
        print(f"reusing {db}", file=sys.stderr)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=db.parent, delete=False) as joined:
        for f in files:  # one input file: text2ngram's command line would be too long for thousands of files
            joined.write(f.read_text(encoding="utf-8"))
            joined.write("\n")
    try:
        for n in missing:
            subprocess.run(["text2ngram", "-n", str(n), "-l", "-f", "sqlite", "-o", str(db), joined.name],
                           check=True, stdout=subprocess.DEVNULL)
    finally:
        Path(joined.name).unlink()


def _rows(db: Path, n: int) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute(f"SELECT COUNT(*) FROM _{n}_gram").fetchone()[0]
        except sqlite3.OperationalError:  # no such table
            return 0


def config_for(db: Path, folder: Path) -> Path:
    xml = _STOCK_CONFIG.read_text()
    xml = re.sub(r"<PREDICTORS>.*?</PREDICTORS>", "<PREDICTORS>DefaultSmoothedNgramPredictor</PREDICTORS>", xml)
    xml = re.sub(r"<ONLINE_LEARNING>\w+</ONLINE_LEARNING>", "<ONLINE_LEARNING>no</ONLINE_LEARNING>", xml)
    xml = re.sub(r"<SUGGESTIONS>\d+</SUGGESTIONS>", "<SUGGESTIONS>6</SUGGESTIONS>", xml)
    xml = xml.replace("/usr/share/presage/database_en.db", str(db.resolve()), 1)
    path = folder / "presage.xml"
    path.write_text(xml)
    return path


def first_tokens(text: Path, tokens: int) -> str:
    """The start of ``text`` that holds its first ``tokens`` tokens (as ``autocomplete eval`` counts them), whole
    whitespace-separated words, one line per line."""
    tokenizer = Tokenizer()
    out: list[str] = []
    left = tokens
    for line in text.read_text(encoding="utf-8").splitlines():
        kept: list[str] = []
        for word in line.split():
            if left <= 0:
                break
            kept.append(word)
            left -= len(tokenizer.tokenize_line(word))
        if kept:
            out.append(" ".join(kept))
        if left <= 0:
            break
    return "\n".join(out) + "\n"


def simulate(config: Path, text: str, folder: Path) -> float:
    sample = folder / "sample.txt"
    sample.write_text(text)
    run = subprocess.run(["presage_simulator", "-q", "-i", "-c", str(config), str(sample)],
                         check=True, capture_output=True, text=True)
    match = re.search(r"KSR:\s*(-?[\d.]+)", run.stdout)
    if not match:
        raise SystemExit(f"presage_simulator printed no KSR:\n{run.stdout[-500:]}{run.stderr[-500:]}")
    return float(match.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, required=True, help="the n-gram database (built when missing)")
    p.add_argument("--train", nargs="+", required=True, help="training files or folders (*.txt below them)")
    p.add_argument("--eval", nargs="+", type=Path, required=True, help="held-out texts")
    p.add_argument("--words", type=int, default=2000, help="tokens typed from each text (default 2000)")
    a = p.parse_args()
    for tool in ("text2ngram", "presage_simulator"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install presage (benchmarks only)")
    build_db(a.db, training_files(a.train))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = config_for(a.db, folder)
        for text in a.eval:
            ksr = simulate(config, first_tokens(text, a.words), folder)
            print(f"{text}: presage keystroke savings {ksr:.1f} % with 6 suggestions ({a.words} tokens)")


if __name__ == "__main__":
    main()
