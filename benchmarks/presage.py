"""presage, the n-gram word predictor, measured by *our* keystroke simulator: the peer of the benchmarks.

    python -m benchmarks.presage --db DB --train FILE_OR_FOLDER... --eval TEXT... --words 2000 [--learn]

A benchmark only: presage is never a dependency of the package. It needs presage's library (``libpresage.so.1``,
Debian/Ubuntu package ``libpresage1v5``) and, to build a database or for presage's own figure, its programs
``text2ngram`` and ``presage_simulator`` (package ``presage``).

**Driver.** :class:`Presage` drives the library through its C API with ``ctypes`` (``presage_new_with_config`` with
a past-stream callback, ``presage_predict``, ``presage_learn``, ``presage_config_set``, ``presage_free``): no Python
binding is needed.

**Accounting.** :class:`PresageTypist` plugs it into :func:`autocomplete.evaluate.keystroke_savings`, so presage types
exactly the tokens our model types, with the same rules: every token (punctuation included) is a word followed by one
space; before each of its characters the user looks at the suggestions for the partial word; one key accepts the word
with its space; a suggestion that differs only in the case of its first letter counts (case elsewhere must match);
each line is committed when it ends. presage sees the committed text and the line as its past stream, predicts for
its own prefix (the characters after its last separator: apostrophes and hyphens separate words for presage, so after
``don'`` it completes ``t``), and what the user would get by accepting a suggestion — the typed partial word plus
presage's completion, as ``presage_completion`` defines it — is what the simulator compares with the token.

**Learning.** Off: the database as built, presage's smoothed 3-gram predictor alone. On: ``presage_learn`` of each
committed line into a fresh copy of the database (its ``LEARN`` switch on), with its recency predictor added, as its
own ``ONLINE_LEARNING`` would learn the text while typing; its separate user n-gram predictor is left out (it aborts
on ``numerator <= denominator`` a few hundred words into a novel).

**Database.** ``text2ngram -n N -f sqlite`` for N = 1, 2, 3 into one file (with the 3-gram table alone presage's
smoothed predictor aborts), case kept: the fair run. ``--lowercase`` builds it lower-cased (``text2ngram -l``), as the
earlier figures were; presage then tracks its context in lower case. A database given with ``--db`` is reused as it is
(its case is read from its words).

**presage's own figure** (``--reference``): ``presage_simulator -i`` on the same words (the text's lines that hold
them), by its own rules — every character counted, spaces and newlines included; one key accepts a word; a word
matches case-insensitively; punctuation is never a word — for comparison with figures measured that way before.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType

from autocomplete import data
from autocomplete.errors import AutocompleteError
from autocomplete.evaluate import KeystrokeResult, keystroke_savings
from autocomplete.tokenizer import EOS, Tokenizer

LIBRARY = "libpresage.so.1"
SUGGESTIONS = 6  # presage's default, and the benchmarks' column
_COMMAND_LINE = 100_000  # characters of file names passed to text2ngram as arguments rather than joined
_PAST_KEPT = 4000  # characters of the past stream handed to presage: far more than its 3-gram and recency window read

_Callback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)  # const char* (*)(void*): the stream callbacks
_Strings = ctypes.POINTER(ctypes.c_char_p)


class PresageError(RuntimeError):
    """presage is missing or returned an error code."""


def load_library() -> ctypes.CDLL | None:
    """presage's shared library with the C API's signatures declared, or None where it is not installed."""
    for name in (LIBRARY, ctypes.util.find_library("presage")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        handle = ctypes.c_void_p
        lib.presage_new_with_config.argtypes = [_Callback, ctypes.c_void_p, _Callback, ctypes.c_void_p,
                                                ctypes.c_char_p, ctypes.POINTER(handle)]
        lib.presage_new_with_config.restype = ctypes.c_int
        lib.presage_free.argtypes = [handle]
        lib.presage_free.restype = None
        lib.presage_predict.argtypes = [handle, ctypes.POINTER(_Strings)]
        lib.presage_predict.restype = ctypes.c_int
        lib.presage_free_string_array.argtypes = [_Strings]
        lib.presage_free_string_array.restype = None
        lib.presage_learn.argtypes = [handle, ctypes.c_char_p]
        lib.presage_learn.restype = ctypes.c_int
        lib.presage_config_set.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p]
        lib.presage_config_set.restype = ctypes.c_int
        return lib
    return None


def missing() -> str | None:
    """Why presage cannot be driven here, or None if it can."""
    return None if load_library() is not None else f"presage's library ({LIBRARY}) is not installed"


class Presage:
    """One presage instance over a configuration file; :attr:`past` is the text before the cursor.

    Not thread-safe (neither is presage). Close it (or use ``with``) to free the library's objects."""

    def __init__(self, config: Path) -> None:
        lib = load_library()
        if lib is None:
            raise PresageError(f"presage's library ({LIBRARY}) is not installed")
        self._lib = lib
        self._past = ctypes.create_string_buffer(b"")
        self._future = ctypes.create_string_buffer(b"")
        # the callbacks must outlive the instance: presage calls them on every predict
        self._past_cb = _Callback(lambda _arg: ctypes.addressof(self._past))
        self._future_cb = _Callback(lambda _arg: ctypes.addressof(self._future))
        self._handle = ctypes.c_void_p()
        self._check(lib.presage_new_with_config(self._past_cb, None, self._future_cb, None,
                                                str(config).encode(), ctypes.byref(self._handle)), "start")
        self.suggestions = SUGGESTIONS

    @staticmethod
    def _check(code: int, what: str) -> None:
        if code != 0:
            raise PresageError(f"presage failed to {what} (error code {code})")

    @property
    def past(self) -> str:
        return self._past.value.decode("utf-8", errors="replace")

    @past.setter
    def past(self, text: str) -> None:
        self._past = ctypes.create_string_buffer(text.encode("utf-8"))

    def set(self, variable: str, value: str) -> None:
        """Set a configuration variable (``Presage.Selector.SUGGESTIONS``...) for this instance."""
        self._check(self._lib.presage_config_set(self._handle, variable.encode(), value.encode()), f"set {variable}")

    def predict(self, k: int = SUGGESTIONS) -> list[str]:
        """presage's suggestions after :attr:`past`, best first: words completing its prefix (case-insensitively)."""
        if k != self.suggestions:
            self.set("Presage.Selector.SUGGESTIONS", str(k))
            self.suggestions = k
        result = _Strings()
        self._check(self._lib.presage_predict(self._handle, ctypes.byref(result)), "predict")
        words: list[str] = []
        try:
            i = 0
            while result and result[i] is not None:
                words.append(result[i].decode("utf-8", errors="replace"))
                i += 1
        finally:
            self._lib.presage_free_string_array(result)
        return words

    def learn(self, text: str) -> None:
        """Count ``text``'s n-grams into the database (only where the predictor's ``LEARN`` is on)."""
        self._check(self._lib.presage_learn(self._handle, text.encode("utf-8")), "learn")

    def close(self) -> None:
        if self._handle:
            self._lib.presage_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> Presage:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Offered:
    word: str  # what accepting the suggestion leaves as the word being typed


class PresageTypist:
    """presage behind the three calls :func:`~autocomplete.evaluate.keystroke_savings` makes of a predictor:
    ``reset``, ``suggest(text, k)`` (``text``: the line typed so far) and ``commit(line)``; with ``learn``, each
    committed line is learned (``presage_learn``) before the next one is typed, as the model's learner does.
    ``lowercase``: the database is lower-cased, so is what it learns (presage lower-cases its context in that mode
    but not the text given to ``presage_learn``: learned as typed, its counts disagree with the context's and its
    3-gram predictor aborts on ``numerator <= denominator``)."""

    personal = None  # keystroke_savings waits for a model's learner; presage learns synchronously

    def __init__(self, presage: Presage, learn: bool = False, lowercase: bool = False) -> None:
        self.presage = presage
        self.learn = learn
        self.lowercase = lowercase
        self.committed = ""

    def reset(self, context: str = "") -> None:
        self.committed = context[-_PAST_KEPT:]

    def commit(self, text: str, learn: bool = True) -> None:
        self.committed = (self.committed + text)[-_PAST_KEPT:]
        if self.learn and learn and text.strip():
            # presage completes the first n-grams of what it learns from the end of its past stream, which must
            # therefore end with the text learned (a stale one makes n-grams that its counts contradict)
            self.presage.past = self.committed
            self.presage.learn(text.lower() if self.lowercase else text)

    def suggest(self, text: str = "", k: int = SUGGESTIONS) -> list[Offered]:
        self.presage.past = self.committed + text
        partial = re.search(r"\S*$", text).group()  # type: ignore[union-attr]  # always matches
        prefix = _prefix(partial)
        head = partial[: len(partial) - len(prefix)]
        return [Offered(head + prefix + word[len(prefix):]) for word in self.presage.predict(k)]


def _prefix(partial: str) -> str:
    """presage's prefix within the partial word: the characters after its last separator (punctuation, ``'``, ``-``)."""
    match = re.search(r"[^\W_]*$", partial)
    return match.group() if match else ""


# ---- the database and the configuration ---------------------------------------------------------------------------


def training_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Files, and the ``*.txt`` below folders, in a stable order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise PresageError(f"{path}: no such file or folder")
        files.extend(sorted(path.rglob("*.txt")) if path.is_dir() else [path])
    if not files:
        raise PresageError(f"no training text in {', '.join(map(str, inputs))}")
    return files


def build_database(db: Path, files: Sequence[Path], lowercase: bool = False) -> Path:
    """``db`` with the 1-, 2- and 3-gram counts of ``files``, built when missing (minutes to tens of minutes), else
    reused as it is. Built in a temporary file beside it and renamed, so an interrupted build leaves nothing."""
    if all(_rows(db, n) for n in (1, 2, 3)):
        print(f"reusing {db} ({'lower-cased' if is_lowercase(db) else 'case kept'})", file=sys.stderr)
        return db
    if shutil.which("text2ngram") is None:
        raise PresageError("text2ngram not found: install presage (benchmarks only)")
    db.parent.mkdir(parents=True, exist_ok=True)
    building = db.with_name(db.name + ".building")
    building.unlink(missing_ok=True)
    flag = ["-l"] if lowercase else []
    if sum(len(str(f)) + 1 for f in files) < _COMMAND_LINE:
        for n in (1, 2, 3):
            _text2ngram(["-n", str(n), *flag, "-f", "sqlite", "-o", str(building), *map(str, files)])
    else:  # thousands of files would not fit on text2ngram's command line: one joined input
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=db.parent, encoding="utf-8") as joined:
            for f in files:
                joined.write(f.read_text(encoding="utf-8"))
                joined.write("\n")
            joined.flush()
            for n in (1, 2, 3):
                _text2ngram(["-n", str(n), *flag, "-f", "sqlite", "-o", str(building), joined.name])
    if not all(_rows(building, n) for n in (1, 2, 3)):
        building.unlink(missing_ok=True)
        raise PresageError("text2ngram counted no words in the training files")
    building.rename(db)
    return db


def _text2ngram(arguments: list[str]) -> None:
    print("text2ngram " + " ".join(arguments[:8]) + (" ..." if len(arguments) > 8 else ""), file=sys.stderr)
    subprocess.run(["text2ngram", *arguments], check=True, stdout=subprocess.DEVNULL)


def _rows(db: Path, n: int) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        try:
            return int(connection.execute(f"SELECT COUNT(*) FROM _{n}_gram").fetchone()[0])
        except sqlite3.OperationalError:  # no such table
            return 0


def is_lowercase(db: Path) -> bool:
    """Whether the database was built lower-cased (``text2ngram -l``): none of its words has a capital."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT 1 FROM _1_gram WHERE word GLOB '*[A-Z]*' LIMIT 1").fetchone() is None


def configuration(db: Path, learn: bool, lowercase: bool, suggestions: int = SUGGESTIONS) -> str:
    """presage's XML configuration: its smoothed 3-gram predictor over ``db`` (deltas 0.01 0.1 0.89, as shipped);
    with ``learn``, it learns into ``db`` and its recency predictor is added. Online learning by the context tracker
    is off: :class:`PresageTypist` learns each committed line, and ``presage_simulator`` is run with it on."""
    predictors = "DefaultSmoothedNgramPredictor" + (" DefaultRecencyPredictor" if learn else "")
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<Presage>
  <PredictorRegistry><LOGGER>ERROR</LOGGER><PREDICTORS>{predictors}</PREDICTORS></PredictorRegistry>
  <ContextTracker><LOGGER>ERROR</LOGGER><SLIDING_WINDOW_SIZE>80</SLIDING_WINDOW_SIZE>
    <LOWERCASE_MODE>{"yes" if lowercase else "no"}</LOWERCASE_MODE><ONLINE_LEARNING>no</ONLINE_LEARNING></ContextTracker>
  <Selector><LOGGER>ERROR</LOGGER><SUGGESTIONS>{suggestions}</SUGGESTIONS><REPEAT_SUGGESTIONS>no</REPEAT_SUGGESTIONS>
    <GREEDY_SUGGESTION_THRESHOLD>0</GREEDY_SUGGESTION_THRESHOLD></Selector>
  <PredictorActivator><LOGGER>ERROR</LOGGER><PREDICT_TIME>1000</PREDICT_TIME>
    <MAX_PARTIAL_PREDICTION_SIZE>60</MAX_PARTIAL_PREDICTION_SIZE><COMBINATION_POLICY>Meritocracy</COMBINATION_POLICY>
  </PredictorActivator>
  <ProfileManager><LOGGER>ERROR</LOGGER><AUTOPERSIST>false</AUTOPERSIST></ProfileManager>
  <Predictors>
    <DefaultSmoothedNgramPredictor><PREDICTOR>SmoothedNgramPredictor</PREDICTOR><LOGGER>ERROR</LOGGER>
      <DBFILENAME>{db.resolve()}</DBFILENAME><DELTAS>0.01 0.1 0.89</DELTAS><LEARN>{"true" if learn else "false"}</LEARN>
      <DatabaseConnector><LOGGER>ERROR</LOGGER></DatabaseConnector></DefaultSmoothedNgramPredictor>
    <DefaultRecencyPredictor><PREDICTOR>RecencyPredictor</PREDICTOR><LOGGER>ERROR</LOGGER>
      <LAMBDA>1</LAMBDA><N_0>1</N_0><CUTOFF_THRESHOLD>20</CUTOFF_THRESHOLD></DefaultRecencyPredictor>
  </Predictors>
</Presage>
"""


# ---- measuring ----------------------------------------------------------------------------------------------------


def surface_tokens(text: Path, breaks: data.Breaks = "auto", tokenizer: Tokenizer | None = None) -> list[str]:
    """The tokens ``autocomplete eval`` types from ``text`` (:data:`EOS` at line ends), without needing a model."""
    tokens: list[str] = []
    sources = data.resolve_sources([text])
    for line, ends in data.iter_token_lines(sources, tokenizer or Tokenizer(), breaks, data.CorpusStats()):
        tokens.extend(line)
        if ends:
            tokens.append(EOS)
    return tokens


def keystrokes(db: Path, tokens: Sequence[str], learn: bool, words: int | None, k: int = SUGGESTIONS) -> KeystrokeResult:
    """presage's keystroke savings on ``tokens`` under our simulator. Learning works on a fresh copy of ``db``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if learn:
            db = Path(shutil.copyfile(db, folder / "learning.db"))
        lowercase = is_lowercase(db)
        config = folder / "presage.xml"
        config.write_text(configuration(db, learn, lowercase, k))
        with Presage(config) as presage:
            return keystroke_savings(PresageTypist(presage, learn, lowercase), tokens, k, words)  # type: ignore[arg-type]


def keystrokes_isolated(db: Path, tokens: Sequence[str], learn: bool, words: int | None,
                        k: int = SUGGESTIONS) -> KeystrokeResult | None:
    """:func:`keystrokes` in a child process: presage aborts the process on some failed assertions. None if it did."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        try:
            return pool.submit(keystrokes, db, list(tokens), learn, words, k).result()
        except BrokenProcessPool:
            return None


def first_tokens(text: Path, tokens: int, tokenizer: Tokenizer | None = None) -> str:
    """The start of ``text`` that holds its first ``tokens`` tokens (as ``autocomplete eval`` counts them), whole
    whitespace-separated words, one line per line: what ``presage_simulator`` types."""
    tokenizer = tokenizer or Tokenizer()
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


def simulator_savings(db: Path, text: Path, learn: bool, words: int, k: int = SUGGESTIONS) -> float | None:
    """presage's own keystroke savings (0–1) by ``presage_simulator -i`` on the lines holding ``text``'s first
    ``words`` tokens, its online learning on with ``learn`` (into a fresh copy of ``db``); None if it failed."""
    if shutil.which("presage_simulator") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if learn:
            db = Path(shutil.copyfile(db, folder / "learning.db"))
        xml = configuration(db, learn, is_lowercase(db), k)
        if learn:
            xml = xml.replace("<ONLINE_LEARNING>no</ONLINE_LEARNING>", "<ONLINE_LEARNING>yes</ONLINE_LEARNING>")
        config = folder / "presage.xml"
        config.write_text(xml)
        sample = folder / "sample.txt"
        sample.write_text(first_tokens(text, words), encoding="utf-8")
        run = subprocess.run(["presage_simulator", "-q", "-i", "-c", str(config), str(sample)],
                             capture_output=True, text=True)
        match = re.search(r"KSR:\s*(-?[\d.]+)", run.stdout)
        return float(match.group(1)) / 100 if match else None


# ---- the command line ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the n-gram database (built when missing)")
    parser.add_argument("--train", nargs="+", required=True, help="training files or folders (*.txt below them)")
    parser.add_argument("--eval", nargs="+", type=Path, required=True, help="held-out texts")
    parser.add_argument("--words", type=int, default=2000, help="tokens typed from each text (default 2000)")
    parser.add_argument("--breaks", choices=("auto", "line", "paragraph"), default="line",
                        help="where the texts' lines end, as for autocomplete eval (default line, as "
                             "models/evaluate-default.sh reads the held-out texts)")
    parser.add_argument("--learn", choices=("off", "on", "both"), default="off",
                        help="presage's learning (default off: adaptation off, as in autocomplete eval)")
    parser.add_argument("--lowercase", action="store_true", help="build the database lower-cased (text2ngram -l)")
    parser.add_argument("--reference", action="store_true",
                        help="also presage_simulator's own figure, by its own rules")
    args = parser.parse_args(argv)
    why = missing()
    if why is not None:
        print(f"presage: error: {why} (benchmarks only)", file=sys.stderr)
        return 1
    try:
        texts = {text: surface_tokens(text, args.breaks) for text in args.eval}  # bad paths fail before the build
        db = build_database(args.db, training_files(args.train), args.lowercase)
    except (AutocompleteError, PresageError, subprocess.CalledProcessError, OSError) as error:
        print(f"presage: error: {error}", file=sys.stderr)
        return 1
    case = "lower-cased database" if is_lowercase(db) else "case-kept database"
    for text, tokens in texts.items():
        for learn in (False, True) if args.learn == "both" else (args.learn == "on",):
            result = keystrokes_isolated(db, tokens, learn, args.words)
            mode = f"learning {'on' if learn else 'off'}"
            shown = "failed (presage aborted)" if result is None else f"{result.savings * 100:.1f} %"
            line = (f"{text}: presage keystroke savings {shown} with {SUGGESTIONS} suggestions "
                    f"({args.words} tokens, autocomplete's simulator, {case}, {mode})")
            if args.reference:
                own = simulator_savings(db, text, learn, args.words)
                line += f"; presage_simulator's own: {'failed' if own is None else f'{own * 100:.1f} %'}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
