"""The ``autocomplete`` command: runs what :mod:`autocomplete.arguments` parses, and is the only place where errors
become messages and exit codes.

    autocomplete [--model PATH] [--mode type|chat]     the interactive session
    autocomplete train CORPUS... -o MODEL              train a model
    autocomplete eval MODEL TEXT...                    perplexity, accuracy, keystroke savings
    autocomplete predict "TEXT" [-k 5]                 the most likely next words
    autocomplete generate "PROMPT" [--words 30]        sample continuations
    autocomplete info [MODEL]                          what a model file holds (and what it learned from you)
    autocomplete convert MODEL -o OUT [--to int8]      store a model's weights as int8, float16 or float32
    autocomplete learn FILE...                         teach the model your words from existing text
    autocomplete forget                                erase what the model learned from you
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypedDict, final

from autocomplete.arguments import build_parser, check_train, command_parser, resolve, typed_options
from autocomplete.decoding import WINDOWS_1252
from autocomplete.errors import AutocompleteError, ConfigError, OutputError, UsageError
from autocomplete.settings import SamplingConfig
from autocomplete.signals import EXIT_INTERRUPTED, end_anyway, handling, interrupt_deferred, named
from autocomplete.tokenizer import EOS, printable, printable_word

EXIT_ERROR = 1
STDOUT_CLOSED = "autocomplete: error: standard output is closed; there is nowhere to print to"  # started with `>&-`


# ---- commands -------------------------------------------------------------------------------------------------


def _err(message: str) -> None:
    if sys.stderr is not None:  # started with it closed (`2>&-`): print(file=None) would write to standard output
        print(printable(message), file=sys.stderr, flush=True)


UNKNOWN_NOTE = 0.2  # eval says how little perplexity and top-k mean when this share of the tokens is unknown


def _warn(message: str) -> None:
    _err(f"autocomplete: warning: {message}")


def _out(text: str) -> None:
    """A line for standard output; what a model file supplied (words, names, metadata) cannot drive the terminal, nor
    break the line (its newlines and tabs are shown escaped)."""
    print(printable_word(text))


def _load_predictor(  # type: ignore[no-untyped-def]
    args: argparse.Namespace, path: Path | None = None, mode: str = "type", learn: bool = True
):
    from autocomplete.predictor import load

    # what was learned is used, but these commands learn nothing: they never save, nor hold the state a session
    # (or `learn`) may be saving into
    predictor = load(path or args.model, quantize=not args.no_quantize, threads=args.threads,
                     learn=learn and not getattr(args, "no_learn", False), save=False)
    if predictor.personal is not None and predictor.personal.warning:
        _err(f"autocomplete: warning: {predictor.personal.warning}")
    _apply_style(predictor, getattr(args, "style", None), mode)
    return predictor


def _apply_style(predictor, requested: str | None, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Set the style asked for (or the mode's); say so once when the model has no styles to choose from."""
    from autocomplete.styles import pick_style

    if requested is not None and not predictor.styles:
        _err(f"autocomplete: note: {printable_word(predictor.lm.name)} was trained without styles; --style {requested}"
             " is ignored")
    predictor.set_style(pick_style(requested, mode, predictor.styles))


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model. Under torchrun every rank runs this; only rank 0 talks to the terminal and writes files."""
    from autocomplete import atomic, data
    from autocomplete.devices import resolve_device
    from autocomplete.distributed import environment_rank
    from autocomplete.resume import resume_path, unfinished

    main_rank = environment_rank() == 0
    log = _log_until_unread() if main_rank else (lambda message: None)
    args.resume = args.resume or args.resume_anyway
    if main_rank:  # only rank 0 writes the model (on a multi-node run the folder may exist on its node only)
        atomic.check_writable(args.output)
        atomic.check_replaceable(resume_path(args.output))
        if not args.resume and (stopped := unfinished(resume_path(args.output))):  # hours of training, maybe
            raise ConfigError(f"{resume_path(args.output)}: holds a run that did not finish (stopped in {stopped}): "
                              "add --resume to continue it, or remove the file to start a new run")
    if args.resume and not resume_path(args.output).exists():
        raise ConfigError(f"{resume_path(args.output)}: nothing to resume (no such file)")
    resolve_device(args.device)  # a GPU that is not there is said now, not once the corpus is counted
    _check_vocab_room(args)

    def warn(message: str) -> None:
        log(f"warning: {message}")

    with ExitStack() as run:  # copies of pipes are removed however it ends
        valid_sources = run.enter_context(data.opened_sources(args.valid, warn=warn)) if args.valid else []
        if valid_sources and not any(map(data.holds_text, valid_sources)):  # before the corpus is read, let alone counted
            raise UsageError(_no_valid_text(valid_sources))
        sources = run.enter_context(data.opened_sources(args.corpus, interleave=args.interleave, warn=warn))
        _refuse_outputs_that_are_inputs(args.output, [*sources, *valid_sources])
        if main_rank:
            _refuse_replacing_what_is_not_a_model(args.output, "training")
            _refuse_replacing_what_is_not_a_model(resume_path(args.output), "training")
            run.enter_context(atomic.exclusive_lock(args.output))
            _remove_leftovers(args.output, log)
        return _train(args, sources, valid_sources, log, main_rank)


def _remove_leftovers(output: Path, log: Callable[[str], None]) -> None:
    """Remove what saves of ``output`` and its resume file left when a kill cut them short (hidden ``.tmp`` files,
    as large as the model or three times it), saying so. Called under ``output``'s lock: no other write owns them."""
    from autocomplete.atomic import remove_leftovers
    from autocomplete.resume import resume_path

    removed = [*remove_leftovers(output), *remove_leftovers(resume_path(output))]
    if removed:
        log(f"removed {_count(len(removed), 'temporary file')} ({_bytes(sum(size for _, size in removed))}) left by an "
            "interrupted save")


def _refuse_replacing_what_is_not_a_model(path: Path, who: str) -> None:
    """An ``-o`` is a model file to replace (or a resume file), never a text or anything else that a mistyped ``-o``
    would destroy (``convert tiny.pt -o tiny.txt``)."""
    from autocomplete.checkpoint import replaceable_by_a_model

    if replaceable_by_a_model(path):
        return
    raise ConfigError(f"{path}: exists and is not an autocomplete model; {who} would replace it. Remove it or "
                      "choose another -o")


def _no_valid_text(sources: Sequence[Any]) -> str:
    """The one line for a ``--valid`` text with nothing to validate on (found as it is opened, or once read)."""
    return f"{', '.join(source.name for source in sources)}: no text to validate on (--valid is empty or whitespace only)"


def _check_vocab_room(args: argparse.Namespace) -> None:
    """``--vocab-size`` counts the special tokens and one per style (``CORPUS=STYLE``): it must leave room for a
    word. (Without styles its range says so; a resumed run keeps its vocabulary.)"""
    from autocomplete.data import split_style
    from autocomplete.tokenizer import SPECIALS

    if args.vocab_size is None or args.resume:
        return
    styles = set()
    for item in args.corpus:
        try:
            styles.add(split_style(item)[1])
        except ConfigError:  # a style name that cannot be: said as the corpus is opened
            pass
    styles.discard(None)
    reserved = len(SPECIALS) + len(styles)
    if args.vocab_size <= reserved:
        raise UsageError(f"--vocab-size {args.vocab_size} leaves no room for a word next to the {len(SPECIALS)} "
                         f"special and {len(styles)} style tokens (must be > {reserved})")


def _log_until_unread() -> Callable[[str], None]:
    """The training log on standard error, until it cannot be written: its reader went away (``train … 2>&1 |
    head -2``), or it is a file on a full disk (``2>/dev/full``). From then on the lines are dropped and standard error
    points at /dev/null (for the progress bar too), and training goes on, since the model is what was asked for, not
    the log."""
    unread = False

    def log(message: str) -> None:
        nonlocal unread
        if unread:
            return
        try:
            _err(message)
        except OSError:  # a broken pipe, a full disk, an I/O error: the same, nobody can read the log
            unread = True
            _silence(sys.stderr)

    return log


def _refuse_outputs_that_are_inputs(output: Path, inputs: Sequence[Any]) -> None:
    """Training must never write over its own text: ``-o``, its resume and lock files against every input."""
    from autocomplete.atomic import lock_path, same_file
    from autocomplete.resume import resume_path

    outputs = {
        output: "the output (-o)",
        resume_path(output): "the resume file of -o",
        lock_path(output): "the lock file of -o",
    }
    for source in inputs:
        if source.temporary or source.path is None:
            continue
        for path, role in outputs.items():
            if same_file(path, source.path):
                raise ConfigError(
                    f"{path}: is {role} and also an input ({source.name}); training would overwrite it."
                    " Choose another -o"
                )


def _train(args: argparse.Namespace, sources: list[Any], valid_sources: list[Any], log: Any, main_rank: bool) -> int:
    import torch

    from autocomplete import checkpoint, data, resume
    from autocomplete.distributed import environment_world, shutdown_distributed
    from autocomplete.evaluate import shown_perplexity
    from autocomplete.model import LSTMLanguageModel, ModelConfig
    from autocomplete.progress import choose_mode
    from autocomplete.token_cache import TokenCache
    from autocomplete.tokenizer import Tokenizer, TokenizerConfig
    from autocomplete.train import Trainer, TrainConfig, fit_to_corpus

    cache = None if args.no_cache else TokenCache(args.cache_dir, log=log)
    started = time.time()
    inputs = _run_inputs(args, sources, valid_sources)
    grown = tuned = None  # with --from: the base model grown with the text's words; the fine-tuning defaults
    if args.resume:
        path = resume.resume_path(args.output)
        payload = checkpoint.read_payload(path, kind="resume")
        saved = checkpoint.from_payload(payload, path)
        _check_resumable(path, resume.check_training(payload, path).get("inputs", {}), inputs, args, log)
        tokenizer, vocab, model_config = saved.tokenizer, saved.vocab, saved.model.config
        _check_resumed_base(args, saved.metadata.get("fine_tuned_from"))
        log(f"vocabulary and model settings from {path}")
        tokens = sum(vocab.counts)
        if saved.metadata.get("fine_tuned_from"):  # a fine-tuning run keeps its defaults
            _, tuned, tokens = _finetune_defaults(args, sources, tokenizer, cache)
    elif args.base is not None:
        grown, tuned, tokens = _grow_base(args, sources, cache, log)
        tokenizer, vocab, model_config = grown.tokenizer, grown.vocab, grown.model.config
    else:
        tokenizer = Tokenizer(TokenizerConfig(kind=args.tokenizer or "words", lowercase=args.lowercase))
        # counted with every word kept: the corpus size decides the default min-count, and pruning is cheap
        vocab_size, counted = _given(args.vocab_size, 20000), _given(args.min_count, 1)
        if cache is not None:
            vocab = cache.vocab(sources, tokenizer, args.breaks, vocab_size, counted)
        else:
            log(f"building the vocabulary from {len(sources)} file(s)…")
            vocab = data.build_vocab(sources, tokenizer, args.breaks, vocab_size, counted)
        tokens, model_config = sum(vocab.counts), None
    if not args.resume:  # an empty text is said before the settings fitted to it (a resumed run counts its own)
        data.check_trainable(tokens, sources)
    sized = model_config is not None  # resumed or fine-tuned: the model's sizes are fixed
    fit = fit_to_corpus(
        tokens, epochs=args.epochs, optimizer=args.optimizer,
        min_count=_given(args.min_count, tuned.min_count if tuned else 1) if sized else args.min_count,
        embedding_dim=model_config.embedding_dim if model_config is not None else args.embedding_dim,
        hidden_dim=model_config.hidden_dim if model_config is not None else args.hidden_dim,
        num_layers=model_config.num_layers if model_config is not None else args.layers,
        batch_size=_given(args.batch_size, tuned.batch_size if tuned else None),
        bptt=_given(args.bptt, tuned.bptt if tuned else None),
        warmup_steps=_given(args.warmup, tuned.warmup_steps if tuned else None),
        lr=_given(args.lr, tuned.lr if tuned and args.optimizer == "adamw" else None),
        valid_fraction=_given(args.valid_fraction, tuned.valid_fraction if tuned else None),
        valid_text=bool(valid_sources), max_steps=args.max_steps, processes=environment_world(), threads=args.threads,
        tied=not args.no_tie,
    )
    if fit.threads:
        torch.set_num_threads(fit.threads)
    if model_config is None:
        if fit.min_count > counted:
            vocab = vocab.pruned(fit.min_count)
        model_config = ModelConfig(
            vocab_size=len(vocab), embedding_dim=fit.embedding_dim, hidden_dim=fit.hidden_dim,
            num_layers=fit.num_layers, dropout=_given(args.dropout, 0.2),
            input_dropout=_given(args.input_dropout, 0.0), embedding_dropout=_given(args.embedding_dropout, 0.0),
            weight_dropout=_given(args.weight_dropout, 0.0),
            locked_dropout=not args.no_locked_dropout, tie_weights=not args.no_tie,
            adaptive_cutoffs=tuple(c for c in args.adaptive or () if c < len(vocab)),
        )
    if fit.derived:
        log(f"fitted to {fit.tokens:,} tokens: {fit.describe()} (set any of them to override)")
    config = TrainConfig(
        epochs=args.epochs, batch_size=fit.batch_size, bptt=fit.bptt, optimizer=args.optimizer, lr=fit.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, clip=args.clip, warmup_steps=fit.warmup_steps,
        seed=args.seed, device=args.device, save_every=args.save_every,
        eval_every=_given(args.eval_every, tuned.eval_every if tuned else 0),
        patience=_given(args.patience, tuned.patience if tuned else 0), validate_first=tuned is not None,
        max_time=args.max_time, max_steps=args.max_steps, compile=args.compile,
        save_dtype="int8" if args.int8 else (
            "float16" if args.half or _stored_half(grown or (saved if args.resume else None)) else "float32"
        ),
    )
    if cache is not None:
        corpus = cache.corpus(sources, tokenizer, vocab, args.breaks, valid_sources, fit.valid_fraction)
    else:
        corpus = data.load_corpus(sources, tokenizer, vocab, args.breaks, valid_sources, fit.valid_fraction)
    if valid_sources and corpus.valid is None:  # asked for, and nothing there: never train without saying so
        raise ConfigError(_no_valid_text(valid_sources))
    s = corpus.stats
    log(
        f"corpus: {s.files} file(s), {_count(s.utterances, 'utterance')}, {s.tokens:,} tokens; vocabulary {len(vocab):,} "
        f"({s.unknown / max(1, s.tokens):.1%} unknown)"
        + (f"; validation {len(corpus.valid):,} tokens" if corpus.valid is not None else "; no validation text")
        + (f" ({len(corpus.valid) / max(1, s.tokens):.1%} of the text held out)"
           if corpus.valid is not None and not valid_sources else "")
    )
    for warning in _decoding_warnings(s):
        log(f"warning: {warning}")
    torch.manual_seed(args.seed)
    model = grown.model if grown is not None else LSTMLanguageModel(model_config)
    metadata = {
        "name": args.name or args.output.stem,
        "corpus": {"files": [src.name for src in sources][:200], "tokens": s.tokens, "utterances": s.utterances,
                   "layouts": sorted(set(s.layouts.values()))},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "autocomplete " + " ".join(sys.argv[1:]),
    }
    if grown is not None:
        metadata.update(grown.metadata)  # what it was fine-tuned from, and the words added
    if args.resume:  # the run's identity is its first command; record the resumptions after it
        metadata = resume.merge_metadata(saved.metadata, metadata)
    lm = checkpoint.LanguageModel(model, vocab, tokenizer, metadata)
    with Trainer(lm, corpus, config, args.output, log=log, progress=choose_mode(args.quiet),
                 verbose=args.verbose, inputs=inputs) as trainer:
        if args.resume:
            trainer.load_resume(resume.resume_path(args.output))
            held_out = payload["training"].get("inputs", {}).get("validation text", inputs["validation text"])
            if held_out != inputs["validation text"]:
                trainer.forget_best()
                log("the validation text differs from the saved run's: the best loss starts afresh")
        result = trainer.run()
        first = trainer.history[0] if trainer.history and trainer.history[0]["step"] == 0 else None
        baseline = None
        if main_rank and not result.interrupted and tuned is None:  # a fine-tuned model's counts are its base's
            baseline = _against_unigram(trainer, corpus, result.best_valid_loss, held_out=not valid_sources)
        if cache is not None:
            cache.release()  # the ids are no longer read: `autocomplete cache --clear` may remove them
    if result.interrupted:  # the other ranks are being stopped too: exiting is enough, the group goes with us
        # as a shell reports the signal that stopped it: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP
        return 128 + trainer.stop_signal if trainer.stop_signal else EXIT_INTERRUPTED
    shutdown_distributed()  # after a clean finish only: leaving waits for the other ranks
    elapsed = f"{time.time() - started:.0f} s"
    if not result.written and result.kept_loss is not None:
        loss = result.best_valid_loss if result.best_valid_loss is not None else math.inf
        log(f"{args.output} kept: this run's best validation loss, {loss:.3f}, does not beat its"
            f" {result.kept_loss:.3f} ({elapsed})")
        return 0
    if result.last_weights:  # resumed without writing, and the model it had written was gone
        log(f"{args.output} was missing: the run's last weights written to it ({elapsed})"
            + (f"; their validation perplexity {shown_perplexity(result.last_loss)}" if result.last_loss is not None else "")
            + (f" (the run's best, {shown_perplexity(result.best_valid_loss)}, was in the file that is gone)"
               if result.best_valid_loss is not None and (result.last_loss or math.inf) > result.best_valid_loss + 1e-6
               else ""))
        return 0
    if not result.written:  # resumed: the run had finished, or its best (written before) was not beaten
        said = ("the run had finished already (its resume file says so)" if trainer.step == trainer.resumed_at
                else "the resumed run found no better model than its best before"
                + (f" (validation loss {result.best_valid_loss:.3f})" if result.best_valid_loss is not None else ""))
        log(f"{said}: {args.output} left as it is ({elapsed})")
        return 0
    best = f"best validation perplexity {shown_perplexity(result.best_valid_loss)}; " if result.best_valid_loss else ""
    if best and tuned is not None and first is not None and first["valid_loss"] is not None:
        best = best[:-2] + f" (the model before fine-tuning: {shown_perplexity(first['valid_loss'])}); "
    if baseline is not None:
        log(baseline)
        best = ""
    log(f"{best}model written to {args.output} ({elapsed})")
    return 0


BASELINE_TOKENS = 100_000  # without validation text, the model and the baseline are compared on this much training text


def _against_unigram(  # type: ignore[no-untyped-def]
    trainer, corpus, best_valid_loss: float | None, held_out: bool
) -> str:
    """The run's perplexity next to word frequencies alone, with a warning when it is no better (it learnt nothing
    about which word comes next: too few steps, too little text, or a learning rate that went wrong).

    The frequencies are those of the training text: the vocabulary's counts, less the held-out tails' (``held_out``)."""
    import torch

    from autocomplete.evaluate import evaluate_loss, shown_perplexity, unigram_loss

    counts = torch.tensor(trainer.lm.vocab.counts, dtype=torch.float64)
    if best_valid_loss is not None and corpus.valid is not None:
        where, ids, loss = "validation", corpus.valid, best_valid_loss
        if held_out:
            valid = corpus.valid if isinstance(corpus.valid, torch.Tensor) else corpus.valid.read()
            counts = (counts - torch.bincount(valid.long(), minlength=len(counts))).clamp(min=0)
    else:
        where, ids = "training", corpus.train[:BASELINE_TOKENS]
        loss, _ = evaluate_loss(trainer.model, ids)
    base = unigram_loss(counts.tolist(), ids)
    if not (math.isfinite(loss) and math.isfinite(base)):
        return f"{where} perplexity {shown_perplexity(loss)}"
    line = (f"{where} perplexity {shown_perplexity(loss)}; word frequencies alone (a unigram model) give "
            f"{shown_perplexity(base)}")
    if loss > base + math.log(0.95):  # not even 5% lower perplexity
        line += ("\nwarning: the model is no better than word frequencies alone: train longer (--epochs), "
                 "on more text, or with another --lr")
    return line


def _given(value, default):  # type: ignore[no-untyped-def]
    """An option's value when the user gave one, else ``default`` (options whose default depends on the run)."""
    return default if value is None else value


def _finetune_defaults(args: argparse.Namespace, sources, tokenizer, cache):  # type: ignore[no-untyped-def]
    """(every word of the user's text counted, the fine-tuning defaults for its size, its tokens)."""
    from autocomplete import data, finetune
    from autocomplete.train import fit_to_corpus

    if cache is not None:
        counted = cache.vocab(sources, tokenizer, args.breaks, None, 1)
    else:
        counted = data.build_vocab(sources, tokenizer, args.breaks, None, 1)
    tokens = sum(counted.counts)
    batch_size, bptt = finetune.finetune_windows(tokens, args.batch_size, args.bptt)
    shape = fit_to_corpus(tokens, epochs=args.epochs, batch_size=batch_size, bptt=bptt)  # the windows
    return counted, finetune.finetune_defaults(tokens, shape.batch_size, shape.bptt), tokens


def _grow_base(args: argparse.Namespace, sources, cache, log):  # type: ignore[no-untyped-def]
    """Load the base model of ``--from``, refuse options that contradict it, and grow it with the text's new words.

    Returns (the grown model, with its provenance and the words added in its metadata; the fine-tuning defaults;
    the tokens of the text)."""
    import torch

    from autocomplete import checkpoint, finetune
    from autocomplete.paths import default_model_path

    path = Path(args.base) if args.base else default_model_path()
    payload = checkpoint.read_payload(path)
    base = checkpoint.from_payload(payload, path)
    half = any(t.dtype == torch.float16 for t in payload["weights"].values())
    finetune.check_settings(
        base, embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, layers=args.layers,
        adaptive=args.adaptive, tie=False if args.no_tie else None, tokenizer=args.tokenizer,
        lowercase=True if args.lowercase else None,
    )
    counted, tuned, tokens = _finetune_defaults(args, sources, base.tokenizer, cache)
    min_count = _given(args.min_count, tuned.min_count)
    words = finetune.new_words(base.vocab, counted, min_count, args.new_words)
    changes = {
        name: value for name, value in (
            ("dropout", args.dropout), ("input_dropout", args.input_dropout),
            ("embedding_dropout", args.embedding_dropout), ("weight_dropout", args.weight_dropout),
            ("locked_dropout", False if args.no_locked_dropout else None),
        ) if value is not None
    }
    grown = finetune.grow(base, words, **changes)
    grown.metadata = {
        "fine_tuned_from": {"name": base.name, "file": str(path), "sha256": finetune.file_digest(path),
                            "vocabulary": len(base.vocab), "weights": "float16" if half else "float32"},
        "added_words": {"count": len(words), "min_count": min_count, "first": [w for w, _ in words[:50]]},
    }
    shown = ", ".join(w for w, _ in words[:8]) + (", …" if len(words) > 8 else "")
    log(f"fine-tuning {printable_word(base.name)} ({path}): its {len(base.vocab):,} words kept, {len(words):,} new "
        f"word(s) seen at least {min_count}× in your text added" + (f" ({shown})" if words else ""))
    return grown, tuned, tokens


def _stored_half(lm) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``lm`` is fine-tuned from a model stored in float16 (its output is then stored so too by default)."""
    origin = lm.metadata.get("fine_tuned_from") if lm is not None else None
    return isinstance(origin, dict) and origin.get("weights") == "float16"


def _check_resumed_base(args: argparse.Namespace, recorded) -> None:  # type: ignore[no-untyped-def]
    """``--resume --from MODEL`` must name the model the run started from."""
    from autocomplete import finetune
    from autocomplete.paths import default_model_path

    if args.base is None:
        return
    where = f"{args.output}.resume"
    if not recorded:
        raise ConfigError(f"{where} continues a training from scratch, not a fine-tuning: drop --from")
    path = Path(args.base) if args.base else default_model_path()
    if not path.is_file() or finetune.file_digest(path) != recorded.get("sha256"):
        raise ConfigError(
            f"{where} continues a fine-tuning of {recorded.get('name')} ({recorded.get('file')}), not of {path}"
        )


_RESUME_OPTIONS = {  # option → how the run being resumed recorded it (see _run_inputs)
    "embedding_dim": "--embedding-dim", "hidden_dim": "--hidden-dim", "layers": "--layers", "dropout": "--dropout",
    "input_dropout": "--input-dropout", "embedding_dropout": "--embedding-dropout",
    "weight_dropout": "--weight-dropout", "no_locked_dropout": "--no-locked-dropout", "no_tie": "--no-tie",
    "adaptive": "--adaptive", "tokenizer": "--tokenizer", "lowercase": "--lowercase", "breaks": "--breaks",
    "vocab_size": "--vocab-size", "min_count": "--min-count", "valid_fraction": "--valid-fraction",
}


def _run_inputs(args: argparse.Namespace, sources: list[Any], valid_sources: list[Any]) -> dict[str, Any]:
    """What a run is started on, as the resume file keeps it: the texts and every setting that shapes the model."""
    from autocomplete.data import fingerprint

    inputs: dict[str, Any] = {flag: getattr(args, dest) for dest, flag in _RESUME_OPTIONS.items()}
    inputs["--adaptive"] = list(args.adaptive or ())
    inputs["corpus"] = [fingerprint(s) for s in sources]
    held_out = valid_sources or sources  # without --valid, the validation text is the tail of each corpus file
    inputs["validation text"] = {"files": [fingerprint(s) for s in held_out], "fraction": args.valid_fraction}
    return inputs


def _check_resumable(path: Path, saved: dict[str, Any], inputs: dict[str, Any], args: argparse.Namespace,
                     log: Any) -> None:
    """Refuse to continue a run on other text or with other settings than it began with, unless told to."""
    from autocomplete.resume import differences

    typed = getattr(args, "typed", None)
    wanted = {k: v for k, v in inputs.items() if not k.startswith("--") or typed is None or k in typed}
    found = differences(saved, wanted)
    if not found:
        return
    if not args.resume_anyway:
        raise ConfigError(
            f"{path}: this command differs from the run it would continue: {'; '.join(found)}. Repeat the run's"
            " settings, or add --resume-anyway to go on (with the saved model settings and vocabulary)"
        )
    log(f"resuming anyway: {'; '.join(found)}; the saved model settings and vocabulary are kept")


def cmd_eval(args: argparse.Namespace) -> int:
    first = Path(args.text[0])
    if first.is_file() and _is_model_file(first):  # the old order, `eval MODEL TEXT...`
        rest = " ".join(args.text[1:]) or "TEXT..."
        raise ConfigError(f"{first} is a model file: give it with --model (autocomplete eval --model {first} {rest})")
    from autocomplete import data
    from autocomplete.evaluate import evaluate, read_eval_text
    from autocomplete.progress import Progress, choose_mode

    predictor = _load_predictor(args, args.model, learn=False)  # measurements never use the user's own state
    stats = data.CorpusStats()
    with data.opened_sources(args.text, warn=_warn) as sources:  # pipes are read once, into a copy
        ids, surface = read_eval_text(sources, predictor.tokenizer, predictor.vocab, args.breaks, stats)
    for warning in _decoding_warnings(stats):  # as train and learn say it
        _warn(warning)
    if all(token == EOS for token in surface):  # nothing, or only what reads as nothing (a byte-order mark)
        raise ConfigError("the evaluation text holds no words")
    ks = list(dict.fromkeys(args.k or [5]))  # -k 3 -k 3: one line
    mode = choose_mode(args.quiet)
    shown: list[Progress] = []

    def phase(name: str, total: int):  # type: ignore[no-untyped-def]
        for progress in shown:
            progress.close()
        shown[:] = [Progress(total, mode, _err, name, unit="token" if name == "scoring" else "word", interval=30)]
        return shown[0].update

    ksr_k = ks if args.ksr_words != 0 else ()
    top = tuple(k for k in (1, 3, 5) if k <= len(predictor.vocab))  # a model of a few words has no top-5
    learned = None
    try:
        report = evaluate(predictor, ids, surface, ks=top, ksr_k=ksr_k, ksr_words=args.ksr_words, phases=phase)
        if args.learn:
            from autocomplete.personal import Personal

            predictor.personal = Personal(predictor.lm)  # in memory only: the user's own state is not touched
            learned = evaluate(predictor, ids, surface, ks=top, ksr_k=ksr_k, ksr_words=args.ksr_words, phases=phase)
    finally:
        for progress in shown:
            progress.close()
    if report.unknown_rate >= UNKNOWN_NOTE:  # gibberish, or a language it never read, would look easy
        _err(f"autocomplete: note: {report.unknown_rate:.1%} of the tokens are outside the model's vocabulary: "
             "perplexity and top-k count each as one word, <unk>, which flatters them; keystroke savings count such "
             "words typed in full")
    if args.json:
        result = {"model": str(args.model or predictor.lm.path or "default"), "style": predictor.style,
                  **report.to_dict()}
        if learned is not None:
            result["learning"] = learned.to_dict()
        print(_json(result))
        return 0
    if predictor.style:
        _out(f"style           {predictor.style}")
    _out(f"tokens          {report.tokens:,} ({report.unknown_rate:.1%} unknown)")
    if learned is None:
        _out(f"perplexity      {report.perplexity:.2f}")
        _out("accuracy        " + "  ".join(f"top-{k} {v:.1%}" for k, v in report.accuracy.items()))
        for r in report.keystrokes:
            _out(f"keystrokes      {r.savings:.1%} saved with {r.k} suggestions "
                 f"({r.keys_with:,} of {_count(r.keys_without, 'key')}, {_count(r.words, 'word')})")
        return 0
    _out(f"{'':<28}{'without learning':>18}{'learning as it types':>24}")
    change = learned.perplexity / report.perplexity - 1
    _out(f"{'perplexity':<28}{report.perplexity:>18.2f}{learned.perplexity:>17.2f} ({change:+.1%})")
    for k, v in report.accuracy.items():
        _out(f"{f'top-{k} accuracy':<28}{v:>18.1%}{learned.accuracy[k]:>24.1%}")
    for r, on in zip(report.keystrokes, learned.keystrokes):
        gain = (on.savings - r.savings) * 100
        _out(f"{f'keystrokes saved, {r.k} shown':<28}{r.savings:>18.1%}{on.savings:>17.1%} ({gain:+.1f})")
    if report.keystrokes:
        _out(f"(keystrokes over the first {_count(report.keystrokes[0].words, 'word')})")
    return 0


def _is_model_file(path: Path) -> bool:
    """A checkpoint (PyTorch's zip format, or named like one), not a text: the old ``eval MODEL TEXT`` form."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04" or path.suffix in (".pt", ".resume")
    except OSError:
        return False


def cmd_predict(args: argparse.Namespace) -> int:
    if args.text == "-":  # as generate reads it: the end of line echo or a file adds is not part of the text
        args.text = _read_prompt().rstrip("\n")
    predictor = _load_predictor(args)
    if args.complete:
        suggestions = predictor.suggest(args.text, args.k)
    elif args.next:
        suggestions = predictor.suggest(args.text + " " if args.text else args.text, args.k)
    else:
        suggestions = predictor.complete_or_next(args.text, args.k)
    if args.json:
        print(json.dumps([{"word": s.word, "probability": s.probability} for s in suggestions], indent=2))
        return 0
    if not suggestions:
        _err("no word in the vocabulary starts like that")
        return EXIT_ERROR
    from autocomplete.display import percent

    shown = [printable_word(s.word) for s in suggestions]
    width = max(map(len, shown))
    for word, s in zip(shown, suggestions):
        _out(f"{word:<{width}}  {percent(s.probability):>6}")
    return 0


MAX_PROMPT = 1 << 20  # bytes of a prompt read from standard input: the model conditions on it word by word


def _read_prompt(limit: int = MAX_PROMPT) -> str:
    """The prompt from standard input: text in any encoding close to UTF-8 (bad bytes become U+FFFD), not binary.

    Read a chunk at a time, so that ``< /dev/zero`` is refused at its first chunk and an endless stream
    (``yes | tr -d '\\n'``) once it passes ``limit`` bytes, instead of filling the memory."""
    if sys.stdin is None:  # started with standard input closed (`<&-`)
        raise ConfigError("standard input is closed: there is no prompt to read")
    stdin = sys.stdin
    read: Callable[[int], bytes] = (
        stdin.buffer.read if hasattr(stdin, "buffer")
        else lambda n: stdin.read(n).encode("utf-8", "surrogatepass")  # a text stream alone (a test's StringIO)
    )
    chunks: list[bytes] = []
    size = 0
    while chunk := read(min(1 << 16, limit + 1 - size)):
        if b"\x00" in chunk:
            raise ConfigError("standard input looks like binary data, not text (a NUL byte in it)")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ConfigError(
                f"standard input holds more than {limit / (1 << 20):g} MiB, the most a prompt can be; "
                "give the end of the text only (tail -c 100000 FILE | autocomplete generate -)"
            )
    return b"".join(chunks).decode("utf-8", errors="replace")


def cmd_generate(args: argparse.Namespace) -> int:
    prompt = _read_prompt() if args.prompt == "-" else args.prompt
    prompt = prompt.rstrip("\n")
    predictor = _load_predictor(args)
    from autocomplete.sampling import make_generator

    generator = make_generator(args.seed)
    config = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, max_words=args.words)
    try:
        for i in range(args.num):
            if i:
                print()
            sys.stdout.write(printable(prompt))  # a prompt from a file may hold escape sequences: shown, not obeyed
            sys.stdout.flush()
            for token, piece in predictor.stream(prompt, config, generator=generator, stop_at="never", finished=True):
                # an end of line is a new line; a word holding one (a crafted vocabulary's) is shown as one word
                sys.stdout.write(printable(piece) if token == EOS else printable_word(piece))
                sys.stdout.flush()
            sys.stdout.write("\n")
    except KeyboardInterrupt:  # Ctrl-C: the text so far ends its line, so that "interrupted" gets one of its own
        with contextlib.suppress(OSError, ValueError):  # a reader the same Ctrl-C ended (| cat): still interrupted
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    sys.stdout.flush()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from autocomplete import checkpoint
    from autocomplete.paths import default_model_path

    if args.model is not None and args.model_file is not None:
        raise ConfigError("give the model once: as MODEL or with --model")
    chosen = args.model_file if args.model_file is not None else args.model
    path = chosen if chosen is not None else default_model_path()
    payload = checkpoint.read_payload(path)
    lm = checkpoint.from_payload(payload, path)
    storage = checkpoint.storage_of(payload)
    size = path.stat().st_size
    personal = _personal_info(lm, path)
    handed = _handed_over(lm, path)
    info = {
        "path": str(path),
        "size_bytes": size,
        "storage": storage,
        "parameters": lm.model.num_parameters(),
        "vocabulary": len(lm.vocab),
        "styles": list(lm.vocab.styles),
        "model_config": lm.model.config.to_dict(),
        "tokenizer": lm.tokenizer.config.to_dict(),
        "metadata": lm.metadata,
        "personal": personal,
        "handed_over_files": handed,
    }
    if args.json:
        print(_json(info))
        return 0
    c = lm.model.config
    _out(f"{lm.name}  ({path}, {size / 1e6:.1f} MB)")
    _out(f"  {'network':<18}{c.num_layers}-layer LSTM, embedding {c.embedding_dim}, hidden {c.hidden_dim}, "
          f"{'adaptive softmax ' + str(list(c.adaptive_cutoffs)) if c.adaptive_cutoffs else 'full softmax'}"
          f"{', tied' if c.tie_weights else ''}; {lm.model.num_parameters():,} parameters")
    _out(f"  {'vocabulary':<18}{len(lm.vocab):,} tokens ({lm.tokenizer.config.kind} tokenizer"
          f"{', lower case' if lm.tokenizer.config.lowercase else ''})")
    print(f"  {'styles':<18}{', '.join(lm.vocab.styles) if lm.vocab.styles else 'none'}")
    _out(f"  {'storage':<18}{storage}")
    m = lm.metadata
    for key in ("valid_perplexity", "tokens_seen", "epochs", "wall_time", "device", "created", "command"):
        if m.get(key) is not None:
            value = m[key]
            if key in _NUMBERS:
                low, high, whole, write = _NUMBERS[key]
                value = write(value) if _sensible(value, low, high, whole) else UNKNOWN
            ran: Any = m.get("run_epochs")
            if key == "epochs" and _sensible(ran, 0, _NUMBERS["epochs"][1]) and _sensible(m[key], 0, ran):
                if ran > m[key]:  # the file holds its run's best weights, and the run went on
                    value = f"{value} (its best validation; the run went on to epoch {ran:g})"
            _out(f"  {key.replace('_', ' '):<18}{value}")
        if key == "valid_perplexity" and (curve := _validation_curve(m.get("history"))):
            _out(f"  {'validation curve':<18}{curve}")  # did training converge?
    if isinstance(m.get("corpus"), dict):
        _out(f"  {'trained on':<18}{_corpus(m['corpus'])}")
    origin, added = m.get("fine_tuned_from"), m.get("added_words")
    if isinstance(origin, dict):  # written by `train --from`
        count = added.get("count", 0) if isinstance(added, dict) else None
        words = "" if count is None else (
            f"; {count:,} words added" if _sensible(count, 0, MAX_WORDS, whole=True) else "; words added: " + UNKNOWN
        )
        _out(f"  {'fine-tuned from':<18}{origin.get('name')} ({origin.get('file')}, "
              f"sha256 {str(origin.get('sha256'))[:12]}…){words}")
    p = personal
    if p is None:
        _out(f"  {'learned from you':<18}nothing yet")
    elif "error" in p:
        _out(f"  {'learned from you':<18}not used: {p['error']}")
    else:
        _out(f"  {'learned from you':<18}{_count(p['words'], 'word')} ({p['new_words']:,} new to the model) from "
             f"{_count(p['tokens'], 'token')}, {_count(p['lines'], 'line')}; last {p['updated'] or 'never'}")
        _out(f"  {'personal state':<18}{p['path']} ({_bytes(p['size_bytes'])}); `autocomplete forget` erases it")
    if handed:
        _out(f"  {'handed over':<18}{_count(handed, 'file')} of what other programs learned, waiting for the "
             "one that holds the state (it learns them in its next quiet minute, or at its start)")
    return 0


UNKNOWN = "unknown (the file holds an impossible value)"
MAX_WORDS = 10_000_000  # the most words a model holds (autocomplete.model's limit on its vocabulary)


def _perplexity(value: float) -> str:
    """75.52; a diverged run's 3.2e+21 or inf (recorded as such) without a screenful of digits."""
    return f"{value:.2f}" if value < 1e9 else f"{value:.3g}"


# the numbers of the training metadata that info shows: (lowest and highest sensible values, whole numbers only,
# how it is written). A hand-edited or foreign file may hold anything (10**300 tokens, a negative time, NaN):
# outside these, info says the value is unknown instead of printing it
_NUMBERS: dict[str, tuple[float, float, bool, Callable[[Any], str]]] = {
    "valid_perplexity": (1.0, math.inf, False, _perplexity),  # infinite: the run diverged (train records so)
    "tokens_seen": (0, 1e15, True, lambda v: f"{v:,}"),
    "epochs": (0, 1e9, False, lambda v: f"{v:g}"),
    "wall_time": (0, 1e10, False, lambda v: _duration(v)),  # seconds: some three centuries
}


def _corpus(corpus: dict[str, Any]) -> str:
    """What a model was trained on, from its metadata's ``corpus`` (as train writes it; any entry may be missing or
    hostile): ``3 files (a.txt, b.txt, notes.md): 12,345 tokens in 678 utterances``."""
    files = corpus.get("files")
    names = list(dict.fromkeys(str(f) for f in files)) if isinstance(files, list) else []
    count = f"{len(names)}{'+' if len(names) >= 200 else ''} files"  # train keeps the first 200 names
    try:
        common = os.path.commonpath(names) if len(names) > 1 else ""
    except ValueError:  # absolute and relative paths mixed
        common = ""
    if len(names) == 1:
        parts = [names[0]]
    elif common and common not in names:
        parts = [f"{count} under {common}"]
    else:
        parts = [f"{count}: {', '.join(names[:3])}{', …' if len(names) > 3 else ''}" if names else ""]
    tokens, utterances = corpus.get("tokens"), corpus.get("utterances")
    if isinstance(tokens, int) and _sensible(tokens, 0, 1e15, whole=True):
        parts.append(_count(tokens, "token") + (f" in {_count(utterances, 'utterance')}" if isinstance(
            utterances, int) and _sensible(utterances, 0, 1e15, whole=True) else ""))
    return ": ".join(p for p in parts if p) or UNKNOWN


def _sensible(value: object, low: float, high: float, whole: bool = False) -> bool:
    """Whether ``value``, read from a model file, is a number (not true/false, not NaN) in [``low``, ``high``]."""
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    return low <= value <= high  # NaN is not


@final
class _PersonalInfo(TypedDict):
    """What ``info`` says of a readable personal state."""

    path: str
    size_bytes: int
    words: int  # in the learned lexicon
    new_words: int  # of them, those the model's vocabulary lacks
    tokens: int
    lines: int
    updated: str  # when it last learned ("" never)
    cached_positions: int
    adapted: bool
    adapted_top_layer: bool


@final
class _UnreadablePersonal(TypedDict):
    path: str
    error: str  # why it could not be read


def _handed_over(lm: Any, path: Path) -> int:
    """How many files of learned text other programs handed over for the personal state, not yet learned."""
    from autocomplete.personal import model_hash, state_path, waiting

    try:
        return waiting(state_path(lm, model_hash(path)))
    except OSError:
        return 0


def _personal_info(  # type: ignore[no-untyped-def]
    lm, path: Path
) -> _PersonalInfo | _UnreadablePersonal | None:
    """What the saved personal state of the model at ``path`` holds, or None if there is none."""
    from autocomplete.errors import CheckpointError
    from autocomplete.personal import Personal, model_hash, read_state, state_path

    digest = model_hash(path)
    where = state_path(lm, digest)
    try:
        if not where.exists():
            return None
        payload = read_state(where)
        personal = Personal(lm, None, where, digest)
        personal.load_payload(payload, str(where))  # every check a session makes before it uses the file
    except OSError as e:
        return {"path": str(where), "error": f"{where}: cannot read ({e.strerror or e})"}
    except CheckpointError as e:
        return {"path": str(where), "error": str(e)}
    stats = personal.stats
    return {
        "path": str(where), "size_bytes": where.stat().st_size, "words": personal.words,
        "new_words": personal.new_words, "tokens": stats.tokens, "lines": stats.lines, "updated": stats.updated,
        "cached_positions": int(payload["cache"]["ids"].numel()),
        "adapted": payload["adapter"] is not None,
        "adapted_top_layer": payload.get("top") is not None,
    }


LEARN_BATCH = 1024  # tokens learned at a time: a second or two on a slow CPU, so the progress bar moves


def cmd_learn(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from autocomplete import checkpoint, data
    from autocomplete.paths import default_model_path
    from autocomplete.personal import open_personal

    # one segment of batch 1 at a time: by default one thread, as several spin-wait on cores other programs use
    # (6x slower on a busy 2-core machine)
    torch.set_num_threads(args.threads)
    path = args.model if args.model is not None else default_model_path()
    lm = checkpoint.load(path)
    from autocomplete.styles import pick_style

    style = pick_style(args.style, "type", lm.vocab.styles)  # by default as the session's type mode reads what you write
    personal, warning = open_personal(lm)
    # while another program holds the state, the text is handed to it (it would save over what is learned here)
    handing = personal.hands_over
    if personal.path is None or not (personal.saving or handing):  # what would be lost at exit: refused at once
        raise OutputError(warning or "this model has no file to keep what is learned for")
    if warning and not handing:
        _err(f"autocomplete: warning: {warning}")
    waiting_tokens = personal.stats.tokens
    personal.absorb_inbox()  # what other programs handed over first (counted apart from this text)
    if personal.stats.tokens > waiting_tokens:
        _err(f"autocomplete: first learned the {personal.stats.tokens - waiting_tokens:,} tokens other programs had"
             " handed over")
    before_words, before_tokens, started = personal.words, personal.stats.tokens, time.time()
    handed = 0

    def feed(tokens: list[str]) -> None:  # the bar follows the bytes read, with the tokens taken so far beside
        nonlocal handed
        if handing:
            personal.hand_over(tokens, style)
            handed += len(tokens)
        else:
            personal.learn_tokens(tokens, style=style, bulk=True)
        bar.set_postfix_str(f"{personal.stats.tokens - before_tokens + handed:,} tokens", refresh=False)
        bar.update(stats.bytes_read - bar.n)
    stats = data.CorpusStats()
    batch: list[str] = []
    try:
        with data.opened_sources(args.text, warn=_warn) as sources, tqdm(
            total=sum(_size(source.path) for source in sources), unit="B", unit_scale=True, unit_divisor=1024,
            desc="learning", leave=False, dynamic_ncols=True,
            disable=args.quiet or sys.stderr is None or not sys.stderr.isatty(),  # None: `2>&-` (no bar, still learns)
        ) as bar:
            ended = True  # whether what was read so far ends an utterance
            for tokens, ends in data.iter_token_lines(sources, lm.tokenizer, args.breaks, stats):
                if not tokens and ended:
                    continue  # a line of nothing but what reads as nothing (a byte-order mark): not an utterance
                batch += tokens + ([EOS] if ends else [])
                ended = ends
                while len(batch) >= LEARN_BATCH:  # a line of a million characters too: the bar moves, Ctrl-C keeps the rest
                    feed(batch[:LEARN_BATCH])
                    batch = batch[LEARN_BATCH:]
            if batch:
                feed(batch)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or a kill: what was learned until then is kept, not thrown away
        learned = personal.stats.tokens - before_tokens
        if learned and personal.saving:  # saved now, or by the save of each minute just before (then nothing is new)
            personal.save()
            _err(f"autocomplete: stopped; the {learned:,} tokens learned until then are saved in {personal.path}")
        elif handed and personal.save():
            _err(f"autocomplete: stopped; the {handed:,} tokens read until then are handed over")
        raise
    finally:
        personal.close()  # saved (or handed over), and the state free for a session to learn into
    if personal.stats.tokens == before_tokens and not handed:
        raise ConfigError("the text holds no words to learn")
    for warning in _decoding_warnings(stats):
        _warn(warning)
    if handing:
        _out(f"handed {handed:,} tokens from {stats.files} file(s) to the autocomplete session or program"
              f"{personal.held_by} that is learning into {personal.path}: it learns them in its next quiet minute "
              "(or the next program to use this model learns them when it starts)")
        return 0
    _out(f"learned {personal.stats.tokens - before_tokens:,} tokens from {stats.files} file(s) in "
          f"{time.time() - started:.1f} s: {personal.words - before_words:,} new word(s), {personal.words:,} in all "
          f"({personal.new_words:,} outside the model's vocabulary)")
    _out(f"personal state: {personal.path} ({_bytes(personal.file_size())})" if personal.path else "personal state: not saved")
    return 0


def _size(path: Path | None) -> int:
    """Bytes in the file at ``path`` (0 where it cannot be read: reading it says why)."""
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _count(n: int, noun: str) -> str:
    """``1 line``, ``2 lines``, ``1,234 words``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _decoding_warnings(stats: Any) -> list[str]:
    """What reading the text of a data.CorpusStats did that its user should know: files read as legacy 8-bit text
    instead of UTF-8, and undecodable bytes replaced. One line each, at most three files named."""
    def listed(files: list[str]) -> str:
        return ", ".join(files[:3]) + (" …" if len(files) > 3 else "")

    warnings = []
    if stats.legacy_files:
        warnings.append(f"{listed(stats.legacy_files)}: not UTF-8; read as {WINDOWS_1252}")
    if stats.replaced_bytes:
        warnings.append(f"{stats.replaced_bytes:,} undecodable byte sequence(s) replaced in "
                        + listed(stats.files_with_replacements))
    return warnings


def cmd_forget(args: argparse.Namespace) -> int:
    from autocomplete import checkpoint
    from autocomplete.paths import data_dir, default_model_path
    from autocomplete.personal import erase_states, model_hash, state_path

    folder = data_dir() / "personal"
    if args.all:  # every state, the damaged copies of states no longer there, and those a running program holds
        # (a save a kill cut short left `.NAME.pt.XXXXXXXX.tmp`: it belongs to NAME.pt)
        wheres = sorted({f.with_name(f.name.removeprefix(".").split(".pt", 1)[0] + ".pt") for f in folder.glob("*.pt*")})
    else:
        path = args.model if args.model is not None else default_model_path()
        wheres = [state_path(checkpoint.load(path), model_hash(path))]
    files = erase_states(wheres)
    if not files:
        print("nothing to forget: no personal state saved" + ("" if args.all else " for this model"))
    else:
        _out(f"forgot what was learned: removed {', '.join(str(f) for f in files)}")
    return 0


def _json(value: Any) -> str:
    """Strict JSON: NaN and infinity (a diverged metric, a hand-edited file) become null, not bare ``Infinity``."""
    def finite(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(k): finite(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), indent=2, default=str)


def _validation_curve(history: object) -> str:
    """The validation perplexity over the run as a sparkline with its first, last and best values
    (``▇▄▃▂▁▁  perplexity 61.20 → 32.60 over 6 validations (best …)``).

    Drawn from the losses (log perplexity), so each step down is the same relative gain wherever it happens."""
    from autocomplete.display import sparkline

    if not isinstance(history, list):
        return ""
    from autocomplete.evaluate import perplexity

    points = [  # a cross-entropy is finite and ≥ 0: a file that says otherwise is not drawn from
        (h.get("epoch"), h["valid_loss"]) for h in history
        if isinstance(h, dict) and _sensible(h.get("valid_loss"), 0, sys.float_info.max)
    ]
    if len(points) < 2:
        return ""
    losses = [loss for _, loss in points]
    best = min(range(len(losses)), key=losses.__getitem__)
    epoch = points[best][0]
    at = f" at epoch {epoch:g}" if _sensible(epoch, 0, _NUMBERS["epochs"][1]) else ""
    return (f"{sparkline(losses)}  perplexity {_perplexity(perplexity(losses[0]))} → "
            f"{_perplexity(perplexity(losses[-1]))} over {len(losses)} validations "
            f"(best {_perplexity(perplexity(losses[best]))}{at})")


def cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from autocomplete import atomic, checkpoint

    lm = checkpoint.load(args.source)
    atomic.check_writable(args.output)
    _refuse_replacing_what_is_not_a_model(args.output, "convert")
    before = args.source.stat().st_size
    dtype = {"float32": None, "float16": torch.float16, "int8": torch.float16}[args.to]
    with atomic.exclusive_lock(args.output):  # a training writing -o would otherwise save over this (or this over it)
        atomic.remove_leftovers(args.output)
        checkpoint.save(lm, args.output, dtype, int8=args.to == "int8")
    after = args.output.stat().st_size
    _out(f"{args.output}: {_bytes(after)} ({args.to}; {args.source} was {_bytes(before)})")
    return 0


def _duration(seconds: float) -> str:
    """7627.8 -> '2 h 7 min (7,628 s)'; 42.0 -> '42 s'."""
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    text = f"{h} h {rest // 60} min" if h else f"{rest // 60} min {rest % 60} s"
    return f"{text} ({s:,} s)"


ERASE_LINE = "\r\x1b[K"  # back to the start of the line and clear it


def cmd_cache(args: argparse.Namespace) -> int:
    from autocomplete.token_cache import TokenCache

    if args.older_than is not None and not args.clear:
        raise ConfigError("--older-than goes with --clear")
    cache = TokenCache(args.cache_dir)
    entries = cache.entries()
    total = sum(e.size for e in entries)
    if args.clear:
        chosen = [e for e in entries if args.older_than is None or e.age_days() >= args.older_than]
        removed, skipped = cache.remove(chosen)
        _out(f"removed {len(removed)} of {len(entries)} entries ({_bytes(sum(e.size for e in removed))}) "
              f"from {cache.folder}")
        if skipped:
            _out(f"kept {len(skipped)} in use by a running training ({_bytes(sum(e.size for e in skipped))})")
        return 0
    _out(f"token cache: {cache.folder} ({len(entries)} entries, {_bytes(total)})")
    if entries:
        _out(f"  {'last used':<17} {'size':>9}  {'kind':<11} made from")
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
            _out(f"  {used:<17} {_bytes(e.size):>9}  {e.kind:<11} {e.corpus}")
        _out("`autocomplete cache --clear [--older-than DAYS]` removes them")
    return 0


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def cmd_session(args: argparse.Namespace) -> int:
    # PyTorch and the model take a couple of seconds to load: say so at once on a terminal (the session's first line
    # replaces this one; an error erases it first).
    loading = sys.stdout.isatty() and not args.plain and os.environ.get("TERM", "") != "dumb"

    def say(text: str) -> None:
        if loading:
            sys.stdout.write(text)
            sys.stdout.flush()

    say("autocomplete · loading the model…")
    try:
        from autocomplete.repl import run_session

        # A closed terminal window (SIGHUP) or a `kill` (SIGTERM) ends the session like Ctrl-D (main's
        # _exit_on_termination): what was learned is saved and the terminal restored, instead of the process dying
        # with the last minute of learning.
        return run_session(
            model=args.model, mode=args.mode, temperature=args.temperature, plain_mode=args.plain,
            quantize=not args.no_quantize, learn=not args.no_learn, on_ready=lambda: say(ERASE_LINE),
            threads=args.threads, save_history=not args.no_history, style=args.style,
        )
    except BaseException:
        say(ERASE_LINE)
        raise


COMMANDS = {
    "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "generate": cmd_generate, "info": cmd_info,
    "cache": cmd_cache, "convert": cmd_convert, "learn": cmd_learn, "forget": cmd_forget,
}


def _rank_prefix() -> str:
    """``rank R: `` inside a torchrun group, where several processes may each report an error."""
    world = os.environ.get("WORLD_SIZE", "1")
    return f"rank {os.environ.get('RANK', '?')}: " if world.isdigit() and int(world) > 1 else ""


@contextmanager
def _exit_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP end the program through ``finally`` blocks (temporary copies removed, locks released,
    what was learned saved) instead of killing it on the spot. Only the first one does: a closed terminal window
    often sends both, and a second signal must not cut short the clean-up the first one started (SIGKILL still
    ends it). The trainer installs its own, gentler handler while it runs."""
    ending, ended = False, threading.Event()

    def handler(signum: int, frame: object) -> None:
        nonlocal ending
        if not ending:
            ending = True
            end_anyway(128 + signum, ended)
            raise SystemExit(128 + signum)

    try:
        with handling(named("SIGTERM", "SIGHUP"), handler):
            yield
    finally:
        ended.set()


def _hold_closed_descriptors() -> None:
    """Standard input, output and error closed when the program started (``2>&-``) are held by /dev/null, so the
    files it opens (a lock, a model) never get those numbers, where a stray write to "standard error" from PyTorch's
    C code would land in them. ``sys.stdin``/``stdout``/``stderr`` stay None: the commands see what was closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != fd:  # a lower one was free too and got it: it is held in its turn
                os.close(held)


def _silence(stream: Any) -> None:
    """Point ``stream`` (standard output or error) at /dev/null, so that writing to it, and the interpreter's last
    flush of what is still buffered, cannot fail again (and print a traceback) once its reader is gone."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _escape_what_cannot_be_encoded() -> None:
    """Standard output and error write a character their encoding lacks as an escape (``\\u05e9``) instead of raising
    UnicodeEncodeError: a Hebrew prompt under ``PYTHONIOENCODING=ascii``, the sparkline of ``info`` under ``LC_ALL=C``
    or a latin-1 terminal. The encoding is kept; only what it cannot hold changes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):  # a closed or unusual stream: left as it is
                pass


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with the help flushed before ``--help`` exits: a write that fails raises here."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        if e.code in (0, None) and sys.stdout is not None:
            sys.stdout.flush()
        raise


def main(argv: Sequence[str] | None = None) -> int:
    _escape_what_cannot_be_encoded()
    _hold_closed_descriptors()
    parser = build_parser()
    try:
        parsed = _parse(parser, argv)
    except BrokenPipeError:  # `autocomplete --help | head -3`
        _silence(sys.stdout)
        return 0
    except OSError as e:  # `--help > /dev/full` or `>&-`
        if sys.stdout is None:
            _err(STDOUT_CLOSED)
            return EXIT_ERROR
        _silence(sys.stdout)
        _err(f"autocomplete: error: standard output: cannot write ({e.strerror or e})")
        return EXIT_ERROR
    args = resolve(parsed, parser)
    if args.command == "train":
        args.typed = typed_options(argv)
        check_train(args, parser)
    if sys.stdout is None and args.command != "train":  # started with standard output closed (`>&-`)
        _err(STDOUT_CLOSED)
        return EXIT_ERROR
    handler = COMMANDS.get(args.command, cmd_session) if args.command else cmd_session
    try:
        with interrupt_deferred():  # every command uses it; PyTorch's start-up would lose a Ctrl-C
            import torch  # noqa: F401
        with _exit_on_termination():  # every command: temporary files removed, what was learned saved, locks freed
            code = handler(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full disk shows here, inside the try, not in the interpreter's exit
        return code
    except UsageError as e:  # as argparse says a bad option: one line, exit status 2
        command_parser(parser, args.command).error(printable_word(str(e)))
    except AutocompleteError as e:  # one line, whatever it quotes (a path with a newline in it)
        _err(f"autocomplete: error: {_rank_prefix()}{printable_word(str(e))}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `autocomplete generate … | head`: the reader has all it wanted
        _silence(sys.stdout)
        if args.command == "train":  # its output is the model, which a broken stream left unwritten: not a success
            try:
                _err("autocomplete: error: an output stream was closed before the model was written")
            except OSError:
                _silence(sys.stderr)
            return EXIT_ERROR
        return 0
    except OSError as e:  # e.g. `generate > /dev/full`
        _silence(sys.stdout)
        reason = e.strerror or str(e)
        where = f"{e.filename}: {reason}" if e.filename else f"standard output: cannot write ({reason})"
        _err(f"autocomplete: error: {where}")
        return EXIT_ERROR
