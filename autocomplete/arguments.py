"""The ``autocomplete`` command line: its subcommands and options, and argument types whose bad values are one-line
usage errors that state the valid range (exit status 2). :mod:`autocomplete.cli` runs what it parses."""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from autocomplete.errors import ConfigError
from autocomplete.settings import LIMITS, MODEL_SIZE_LIMITS, SamplingConfig
from autocomplete.tokenizer import SPECIALS

EXIT_USAGE = 2


# ---- argument types: a bad value is a one-line usage error with the valid range -----------------------------------


def _path(text: str) -> Path:
    """A file or folder named on the command line: an empty one (``-m ""``) is a usage error, not the folder ``.``."""
    return Path(_text_input(text))


def _text_input(text: str) -> str:
    """A text file, a folder of them or ``-``, named on the command line (a training corpus may add ``=STYLE``): an
    empty name (an unset shell variable, ``learn "$NOTES"``) is a usage error, not the current folder's every file."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _corpus_input(text: str) -> str:
    """:func:`_text_input`, where ``=STYLE`` alone (``"$BOOKS=prose"`` with the variable unset) is an empty path too."""
    if text.startswith("=") and not os.path.lexists(text):
        raise argparse.ArgumentTypeError(f"an empty path before {text!r}")
    return _text_input(text)


class _OptionalModel(argparse.Action):
    """``--from`` alone: ``""``, the shipped model; ``--from MODEL``: that file, where an empty name (``--from ""``)
    is a usage error as for every other path. (A string ``const`` would go through a ``type`` that refuses "".)"""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        if values == "":
            raise argparse.ArgumentError(self, "an empty path")
        setattr(namespace, self.dest, "" if values is None else values)


def _number(kind: type, low: float | None, high: float | None, what: str, low_open: bool = False):  # type: ignore[no-untyped-def]
    def parse(text: str):  # type: ignore[no-untyped-def]
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        bad_low = low is not None and (value <= low if low_open else value < low)
        if bad_low or high is not None and value > high:
            lo = "" if low is None else (f"> {_bound(low)}" if low_open else f"≥ {_bound(low)}")
            hi = "" if high is None else f"≤ {_bound(high)}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {' and '.join(p for p in (lo, hi) if p)})")
        return value

    return parse


def _bound(value: float) -> str:
    """A range's end as typed: 18446744073709551615, not 1.84467e+19; 0.5, not 0.500000."""
    return str(value) if isinstance(value, int) else f"{value:g}"


positive_int = _number(int, 1, None, "positive integer")
non_negative_int = _number(int, 0, None, "integer ≥ 0")
MAX_SAMPLES = 10_000  # generate --num: more is a typo (99999999999999999999 ran until interrupted), not a request
samples = _number(int, 1, MAX_SAMPLES, "number of samples")
threads = _number(int, 1, os.cpu_count() or 1, "thread count")  # more than the CPUs present only slows it (or crashes)
seed = _number(int, 0, 2**64 - 1, "seed (an integer from 0 to 2^64 - 1)")  # what torch.manual_seed accepts
fraction = _number(float, 0, 0.5, "fraction")
dropout = _number(float, 0, 0.99, "dropout rate")
positive_float = _number(float, 0, None, "positive number", low_open=True)
# a vocabulary holds the special tokens and at least one word, a model at most MODEL_SIZE_LIMITS of each size
vocab_size = _number(int, len(SPECIALS) + 1, MODEL_SIZE_LIMITS["vocab_size"], "vocabulary size")
embedding_dim = _number(int, 1, MODEL_SIZE_LIMITS["embedding_dim"], "embedding size")
hidden_dim = _number(int, 1, MODEL_SIZE_LIMITS["hidden_dim"], "hidden size")
layers = _number(int, 1, MODEL_SIZE_LIMITS["num_layers"], "layer count")


def setting(name: str):  # type: ignore[no-untyped-def]
    """The argument type of the sampling field ``name``: its range comes from :data:`autocomplete.settings.LIMITS`."""

    def parse(text: str):  # type: ignore[no-untyped-def]
        try:
            return SamplingConfig.parse(name, text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def cutoffs(text: str) -> tuple[int, ...]:
    """Adaptive softmax cutoffs: positive and increasing (those past the vocabulary's end are dropped at training)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if values and (values[0] < 1 or list(values) != sorted(set(values))):
        raise argparse.ArgumentTypeError(f"{text!r}: cutoffs must be ≥ 1 and increase strictly (e.g. 2000,10000)")
    return values


def device(text: str) -> str:
    """A training device by name; whether that GPU is there is checked as training starts."""
    if text in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:[0-9]+", text):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; expected auto, cpu, cuda or cuda:N")


# ---- parser ---------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the valid range included), exit status 2; ``--help`` has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def print_help(self, file=None):  # type: ignore[no-untyped-def]
        """The help on standard output, where a failed write raises (argparse drops it, and with standard output
        closed prints the help on standard error): ``--help > /dev/full`` is an error, as for every command."""
        if file is None and sys.stdout is None:  # started with standard output closed (`>&-`)
            raise OSError(errno.EBADF, "standard output is closed")
        (file or sys.stdout).write(self.format_help())

    def parse_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def,override]
        """What argparse does, except that an option the command does not take is that command's usage error
        (``autocomplete predict hi -t 1`` points at ``autocomplete predict --help``, not the top level's)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            (command_parser(self, command) if command else self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed



def _add_model_option(p: argparse.ArgumentParser, model: bool = True, chat: bool = False) -> None:
    if model:
        p.add_argument("--model", "-m", type=_path, help="model file (default: the shipped model)")
    p.add_argument("--no-quantize", action="store_true",
                   help="run the model with its float weights instead of int8 (slower, the same quality)")
    p.add_argument("--threads", type=threads, default=None,
                   help="PyTorch threads (default 1: one word at a time is fastest on one thread, and does not slow "
                        "down when other programs keep the other cores busy)")
    p.add_argument("--style", default=None, metavar="STYLE",
                   help="the style to read and write text in, for a model trained with styles (e.g. prose, dialogue, "
                        f"tech; default: {'dialogue in chat mode, prose otherwise' if chat else 'prose'}); ignored by"
                        " models without styles")


def _add_learn_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-learn", action="store_true",
                   help="the model exactly as shipped: nothing learned from you is used, nothing new is learned")


def _temperature_option(p: argparse.ArgumentParser, help: str) -> None:
    default = SamplingConfig.temperature
    p.add_argument("--temperature", "-t", type=setting("temperature"), default=default,
                   help=f"{help} (0 = greedy, 1 = the model's own distribution; default {default:g})")


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    c = SamplingConfig
    p.add_argument("--words", "-n", type=setting("max_words"), default=c.max_words,
                   help=f"words to generate (default {c.max_words})")
    _temperature_option(p, "sampling temperature")
    p.add_argument("--top-k", type=setting("top_k"), default=c.top_k,
                   help=f"sample among the k best (0 = all; default {c.top_k})")
    p.add_argument("--top-p", type=setting("top_p"), default=c.top_p,
                   help=f"nucleus probability (default {c.top_p:g})")
    p.add_argument("--seed", type=seed, default=None, help="random seed: the same seed gives the same text")


def build_parser(train_defaults: bool = True) -> argparse.ArgumentParser:
    """The command line; ``train_defaults=False`` leaves out the train options' defaults, so that parsing tells
    which options were typed (see :func:`typed_options`)."""
    parser = _Parser(
        prog="autocomplete",
        description="Next-word suggestions and text generation in the terminal, from a local LSTM language model.",
        epilog="Without a COMMAND: the interactive session on the model (type `:help` in it for keys and commands). "
        "`autocomplete COMMAND --help` describes each command.",
    )
    _add_model_option(parser, chat=True)
    parser.add_argument("--mode", choices=["type", "chat"], default="type", help="session mode (default: type)")
    _temperature_option(parser, "temperature of sampled continuations and chat replies")
    parser.add_argument("--plain", action="store_true",
                        help="line mode without the full-screen prompt: each line typed gets its next words (a last "
                             "word without a space after it is completed)")
    parser.add_argument("--no-history", action="store_true",
                        help="write nothing of this session to disk: neither the lines typed (the history file) nor "
                             "what was learned from them (kept in memory until the session ends; what was learned "
                             "before still helps). A line that starts with a space is never saved nor learned")
    _add_learn_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model on your text", description="Train a word-level LSTM model.")
    p.add_argument("corpus", nargs="+", type=_corpus_input, metavar="CORPUS[=STYLE]",
                   help="text files, folders of .txt files, or - for standard input; PATH=STYLE (e.g. books/=prose "
                        "chats/=dialogue) starts each of its utterances with a style token the session can ask for "
                        "(--style, :style)")
    p.add_argument("-o", "--output", type=_path, required=True, help="model file to write")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT.resume after an interruption")
    p.add_argument("--resume-anyway", action="store_true",
                   help="--resume even though the corpus, validation text or settings differ from the saved run's "
                        "(the saved model settings and vocabulary are kept)")
    p.add_argument("--from", dest="base", action=_OptionalModel, nargs="?", default=None, metavar="MODEL",
                   help="fine-tune MODEL (alone: the shipped model) on your text instead of training from scratch: its "
                        "sizes, tokenizer and words are kept, your text's new words added (put it after the files)")
    p.add_argument("--new-words", type=non_negative_int, default=10000, metavar="N",
                   help="with --from: add at most N words of your text that the model lacks (default 10000)")
    p.add_argument("--patience", type=non_negative_int, default=None, metavar="N",
                   help="stop after N validations without improvement (default: 2 with --from, else 0 = never)")
    g = p.add_argument_group("data")
    g.add_argument("--valid", nargs="+", type=_text_input, default=[], help="validation text (default: the tail of each file)")
    g.add_argument("--valid-fraction", type=fraction, default=None,
                   help="tail of each file held out, short files pooled (default: about 1,000 tokens, 2-10%% of the "
                        "text, none below 1,000 tokens; with --from 0.02-0.1 by text size)")
    g.add_argument("--tokenizer", choices=["words", "whitespace"], default=None,
                   help="words (default): running text; whitespace: pre-tokenized corpora such as PTB")
    g.add_argument("--interleave", action="store_true",
                   help="take the inputs' files in turn (first file of each input, then the second...): folders of "
                        "several domains or styles alternate along the training text instead of coming one after another")
    g.add_argument("--lowercase", action="store_true", help="fold all text to lower case")
    g.add_argument("--breaks", choices=["auto", "line", "paragraph"], default="auto",
                   help="where utterances end: each line, or blank-line paragraphs of wrapped prose (default auto)")
    g.add_argument("--vocab-size", type=vocab_size, default=None, help="max vocabulary size (default 20000)")
    g.add_argument("--min-count", type=positive_int, default=None,
                   help="drop rarer words (default: 1 below 1,000 tokens, else 2; with --from, new words' minimum: "
                        "1 below 20,000 tokens, else 2)")
    g.add_argument("--cache-dir", type=_path, default=None,
                   help="where the tokenised corpus is kept and reused (default: token-cache in the data folder)")
    g.add_argument("--no-cache", action="store_true",
                   help="tokenise into memory instead of the cache (small corpora; nothing written)")
    g = p.add_argument_group("model")
    g.add_argument("--embedding-dim", type=embedding_dim, default=None,
                   help="word vector size (default: derived from the corpus size, 32 to 256)")
    g.add_argument("--hidden-dim", type=hidden_dim, default=None,
                   help="LSTM cell size (default: derived from the corpus size, 32 to 512)")
    g.add_argument("--layers", type=layers, default=None,
                   help="stacked LSTM layers (default: 1 below 500,000 tokens, else 2)")
    # dropout defaults: 0.2 and 0s from scratch; with --from, the base model's
    g.add_argument("--dropout", type=dropout, default=None, help="dropout on LSTM outputs (default 0.2)")
    g.add_argument("--input-dropout", type=dropout, default=None, help="dropout on the input embeddings")
    g.add_argument("--embedding-dropout", type=dropout, default=None, help="drop whole words (AWD-LSTM dropoute)")
    g.add_argument("--weight-dropout", type=dropout, default=None, help="DropConnect on recurrent weights")
    g.add_argument("--no-locked-dropout", action="store_true", help="fresh dropout mask at every time step")
    g.add_argument("--no-tie", action="store_true", help="separate input and output embeddings")
    g.add_argument("--adaptive", type=cutoffs, default=None, metavar="CUTOFFS",
                   help="adaptive softmax cluster cutoffs, e.g. 2000,10000: several times faster to train on a large "
                        "vocabulary (tied: a two-level softmax over the embeddings; with --no-tie: PyTorch's)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=10, help="passes over the text (default 10)")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="parallel streams (default: derived from the corpus size, up to 32: about 200 steps a pass; "
                        "with --from 32 × 35 tokens once the text fills 20 such windows)")
    g.add_argument("--bptt", type=positive_int, default=None,
                   help="tokens per back-propagation window (default: derived from the corpus size, 4 to 35)")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw", help="(default adamw)")
    g.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default: adamw 1e-2 below 50,000 tokens, 5e-3 below 500,000, else 2e-3; "
                        "sgd 20; with --from 2e-3, 1e-3 from 200,000 tokens)")
    g.add_argument("--weight-decay", type=_number(float, 0, None, "weight decay"), default=0.0, help="(default 0)")
    g.add_argument("--schedule", choices=["cosine", "plateau", "constant"], default="cosine", help="(default cosine)")
    g.add_argument("--warmup", type=non_negative_int, default=None,
                   help="warm-up steps (default: a tenth of the run, at most 100; with --from a tenth of an epoch, "
                        "at most 50)")
    g.add_argument("--clip", type=_number(float, 0, None, "clip norm"), default=0.25,
                   help="max gradient norm, 0 = off (default 0.25)")
    g.add_argument("--seed", type=seed, default=1, help="(default 1)")
    g.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    g.add_argument("--threads", type=threads, default=None,
                   help="CPU threads, at most the CPUs present (default: 1 below 50,000 tokens, else PyTorch's choice)")
    g.add_argument("--compile", action="store_true", help="torch.compile the training step")
    g = p.add_argument_group("checkpoints and limits")
    g.add_argument("--save-every", type=positive_float, default=300, help="seconds between resume saves (300)")
    g.add_argument("--eval-every", type=non_negative_int, default=None,
                   help="validate every N steps (0: per epoch; default 0, with --from 4 times an epoch on a long text)")
    g.add_argument("--max-time", type=positive_float, default=None, help="stop after this many seconds")
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps")
    storage = g.add_mutually_exclusive_group()
    storage.add_argument("--half", action="store_true",
                         help="store the model's weights as float16 (half the size; with --from: as the base model is)")
    storage.add_argument("--int8", action="store_true",
                         help="store the weight matrices as int8 with per-row scales (a quarter of float32), the rest "
                              "float16")
    g.add_argument("--name", default=None, help="model name shown in the session")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="no progress: neither the bar (on a terminal) nor the occasional progress lines (in a log)")
    g.add_argument("--verbose", "-v", action="store_true", help="a summary line after every epoch")
    if not train_defaults:
        for action in p._actions:
            if action.option_strings:
                action.default = argparse.SUPPRESS

    p = sub.add_parser(
        "eval", help="perplexity, accuracy and keystroke savings on a text",
        description="How well a model predicts a text: perplexity, top-1/3/5 next-word accuracy, and the keystrokes "
                    "its suggestions save when the text is typed with them. A progress bar on standard error.",
    )
    p.add_argument("text", nargs="+", type=_text_input, help="text files or folders of .txt files")
    _add_model_option(p)
    p.add_argument("-k", type=setting("suggestions"), action="append",
                   help="suggestions shown while typing, for keystroke savings (repeatable; "
                        f"1 to {LIMITS['suggestions'].high}, as predict's; "
                        "default 5)")
    p.add_argument("--ksr-words", type=non_negative_int, default=None,
                   help="simulate typing only the first N words (default all; 0 skips it)")
    p.add_argument("--breaks", choices=["auto", "line", "paragraph"], default="auto",
                   help="where utterances end: each line, or blank-line paragraphs of wrapped prose (default auto: "
                        "told apart by line lengths)")
    p.add_argument("--learn", action="store_true",
                   help="also replay the text as its user would type it, learning after each line, and report both "
                        "(starts from nothing learned; your own saved state is neither used nor changed)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "predict", help="the most likely next words",
        description="The most likely next words after a text, with their probabilities. A last word without a space "
                    "after it is completed, as in the session (\"how are yo\" → you); when it is already a whole "
                    "word and its own likeliest completion, the words after it are predicted (\"how are\" → you).",
    )
    p.add_argument("text", help='the text so far, e.g. "how are", or - for standard input')
    p.add_argument("-k", type=setting("suggestions"), default=SamplingConfig.suggestions,
                   help=f"how many words (1 to {LIMITS['suggestions'].high}; default {SamplingConfig.suggestions})")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--complete", "-c", action="store_true",
                       help="always complete the last word, even a whole one (\"how are\" → are, area, …)")
    which.add_argument("--next", action="store_true",
                       help="always predict the next word, taking the last one as finished (as after a space)")
    _add_model_option(p)
    _add_learn_option(p)
    p.add_argument("--json", action="store_true", help='print [{"word": …, "probability": …}, …] as JSON')

    p = sub.add_parser(
        "generate", help="sample continuations of a prompt",
        description="Sample continuations of a prompt, a word at a time, printed as they come: --temperature 0 is "
                    "greedy (always the same text), higher is more varied; --top-k and --top-p keep only the likeliest "
                    "words; the same --seed gives the same text.",
    )
    p.add_argument("prompt", nargs="?", default="", help="the prompt, or - to read it from standard input")
    _add_model_option(p)
    _add_sampling_options(p)
    _add_learn_option(p)
    p.add_argument("--num", type=samples, default=1, help=f"how many samples (default 1, at most {MAX_SAMPLES:,})")

    p = sub.add_parser(
        "learn", help="teach the model your words from existing text",
        description="Feed existing text (notes, mail, `git log` output) into what the model learned from you: your "
        "words, the recent text its cache points at, its adapted output layer. Takes seconds to minutes, no training "
        "run; the session and every program using the model pick it up at their next start.",
    )
    p.add_argument("text", nargs="+", type=_text_input, help="text files, folders of .txt files, or - for standard input")
    p.add_argument("--model", "-m", type=_path, help="model file (default: the shipped model)")
    p.add_argument("--style", default=None, metavar="STYLE",
                   help="the style to read the text in, for a model trained with styles (e.g. prose, dialogue, tech; "
                        "default prose, as the session's type mode reads what you write); ignored by models without "
                        "styles")
    p.add_argument("--threads", type=threads, default=None,
                   help="PyTorch threads (default 1: the fastest while other programs keep the other cores busy; "
                        "more help on an idle machine)")
    p.add_argument("--breaks", choices=["auto", "line", "paragraph"], default="auto",
                   help="where lines end: each line, or blank-line paragraphs of wrapped prose (default auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "forget", help="erase what the model learned from you",
        description="Remove the personal state (your words, recent text, adapted weights) saved for a model.",
    )
    p.add_argument("--model", "-m", type=_path, help="model file (default: the shipped model)")
    p.add_argument("--all", action="store_true", help="for every model, not only this one")

    p = sub.add_parser(
        "info", help="what a model file holds, and what it learned from you",
        description="What a model file holds: its network and vocabulary, the text it was trained on, how long, and "
                    "its validation curve (to see whether training converged), and what it learned from you.",
    )
    p.add_argument("model_file", nargs="?", type=_path, default=None, metavar="MODEL",
                   help="model file (default: the shipped model)")
    p.add_argument("--model", "-m", type=_path, default=None, metavar="MODEL",
                   help="the same, as predict, generate and eval take it")
    p.add_argument("--json", action="store_true",
                   help="everything the file records (settings, vocabulary size, training metadata) as JSON")

    p = sub.add_parser(
        "convert", help="store a model's weights as int8, float16 or float32",
        description="Rewrite a model file with its weights stored another way. int8 keeps each weight matrix as int8 "
        "rows with one scale per row (about a quarter of float32; loaded back as float32) and the rest as float16.",
    )
    p.add_argument("source", type=_path, metavar="MODEL")
    p.add_argument("-o", "--output", type=_path, required=True, help="file to write (may be MODEL itself)")
    p.add_argument("--to", choices=["int8", "float16", "float32"], default="int8", help="storage (default int8)")

    p = sub.add_parser(
        "cache", help="list or clear the token cache that training keeps",
        description="List the tokenised corpora that `autocomplete train` cached, or remove them.",
    )
    p.add_argument("--cache-dir", type=_path, default=None, help="the cache folder (default: token-cache in the data folder)")
    p.add_argument("--clear", action="store_true", help="remove the entries (those a running training reads are kept)")
    p.add_argument("--older-than", type=_number(float, 0, None, "number of days"), default=None, metavar="DAYS",
                   help="with --clear: only entries not used for this many days")
    _share_global_options(parser, sub)
    if not train_defaults:  # what was typed before the command counts too (--threads)
        for action in parser._actions:
            if action.option_strings:
                action.default = argparse.SUPPRESS
    return parser


def _share_global_options(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """An option that both ``autocomplete`` and a command take (``--model``, ``--threads``, ``--style``, …) counts
    wherever it is typed: ``autocomplete --model mine.pt predict …`` is ``autocomplete predict --model mine.pt …``.
    argparse lets a command's defaults overwrite what was typed before the command, so the commands get no default
    for them; the defaults are the top level's (``--threads``: none, each command picks its own, see
    :func:`resolve`)."""
    shared = {action.dest for action in parser._actions if action.option_strings and action.dest != "help"}
    for command in sub.choices.values():
        for action in command._actions:
            if action.option_strings and action.dest in shared:
                action.default = argparse.SUPPRESS


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Defaults that depend on the command: one PyTorch thread for everything but ``train``, which picks its own.

    With ``parser``, an option typed before a command that the command does not take (``autocomplete --plain
    predict …``, ``--mode chat generate …``) is a usage error instead of being silently ignored."""
    if parser is not None and args.command:
        subcommands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
        takes = {a.dest for a in subcommands.choices[args.command]._actions}  # type: ignore[index]
        for action in parser._actions:
            if action.option_strings and action.dest not in takes | {"help"}:
                if getattr(args, action.dest) != action.default:
                    option = max(action.option_strings, key=len)
                    if option in ("--mode", "--plain", "--no-history"):
                        parser.error(f"{option} is for the interactive session (no COMMAND), not `{args.command}`")
                    parser.error(f"`{args.command}` takes no {option}")
    if parser is not None and args.command == "cache" and args.older_than is not None and not args.clear:
        command_parser(parser, "cache").error("--older-than goes with --clear")
    if args.threads is None and args.command != "train":
        args.threads = 1
    return args


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command``: its ``error`` says a usage error as a bad value of that command's options does."""
    subcommands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    return subcommands.choices[command]  # type: ignore[index,no-any-return]


def check_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse, as usage errors, ``train`` options that contradict each other or cannot apply, before any work is done
    (the vocabulary of a large corpus takes minutes to count). ``args.typed`` holds the options typed
    (:func:`typed_options`); what needs the inputs themselves is checked as they are opened
    (:class:`~autocomplete.errors.UsageError`)."""

    def refuse(message: str) -> NoReturn:
        command_parser(parser, "train").error(message)

    fine_tuning, resuming = args.base is not None, args.resume or args.resume_anyway
    if args.vocab_size is not None and fine_tuning:
        refuse("--vocab-size does not apply with --from: the model's vocabulary is kept and your text's new words are "
               "added (at most --new-words of them)")
    if "--new-words" in getattr(args, "typed", ()) and not fine_tuning:
        refuse("--new-words goes with --from (the words of your text added to the model fine-tuned)")
    if args.cache_dir is not None and args.no_cache:
        refuse("--cache-dir goes with the token cache, which --no-cache turns off: choose one")
    if args.valid and args.valid_fraction:
        refuse("--valid-fraction holds out the tail of each file, --valid gives the validation text instead: "
               "choose one")
    # a run resumed or fine-tuned keeps its model's sizes (and whether its weights are tied): those are checked there
    tied = not (args.no_tie or fine_tuning or resuming)
    if tied and args.embedding_dim is not None and args.hidden_dim is not None and args.hidden_dim < args.embedding_dim:
        refuse(f"with tied weights the hidden size ({args.hidden_dim}) must be at least the embedding size "
               f"({args.embedding_dim}); raise it, or untie the weights (--no-tie)")


def typed_options(argv: Sequence[str] | None) -> set[str]:
    """The train options given on the command line, by their long name (``--hidden-dim``): a resumed run is
    compared with the saved one on those only, so that ``train … --resume`` alone never differs."""
    args = build_parser(train_defaults=False).parse_args(argv)
    subcommands = build_parser(train_defaults=False)._subparsers._group_actions[0]  # type: ignore[union-attr]
    train = subcommands.choices["train"]  # type: ignore[index]
    return {max(a.option_strings, key=len) for a in train._actions if a.option_strings and hasattr(args, a.dest)}
