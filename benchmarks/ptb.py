"""Training benchmarks on Penn Treebank: throughput against the classic recipe, perplexity per epoch, time-to-quality,
and the quality table of PTB-trained models beside the published reference points.

PTB is read with the whitespace tokenizer and PTB's own 10 K vocabulary (``<unk>`` is our unknown token, every line
ends with our end-of-line token), so perplexities compare with the published ones.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from autocomplete import checkpoint, data
from autocomplete.checkpoint import LanguageModel
from autocomplete.evaluate import evaluate, read_eval_text
from autocomplete.model import LSTMLanguageModel, ModelConfig
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import Tokenizer, TokenizerConfig
from autocomplete.train import TrainConfig, Trainer
from benchmarks import reference_lm
from benchmarks.common import Report

REFERENCE_POINTS = [
    ("Kneser-Ney 5-gram (KenLM)", "141.2", "23.7 %", "37.8 %", "42.6 %", "", ""),
    ("presage n-gram predictor, 6 suggestions", "", "", "", "", "", "62.2 %"),
    ("PyTorch example 2×200 tied, 6 epochs", "111.1", "", "", "", "", ""),
    ("PyTorch example 2×650 tied, 40 epochs", "≈ 76", "", "", "", "", ""),
    ("AWD-LSTM 3×1150 (24 M params)", "57.3", "", "", "", "", ""),
]


@dataclass
class Ptb:
    tokenizer: Tokenizer
    vocab: object
    train: torch.Tensor
    valid: torch.Tensor
    test_sources: list[data.Source]


def load_ptb(folder: Path) -> Ptb:
    tokenizer = Tokenizer(TokenizerConfig(kind="whitespace"))
    train_sources = data.resolve_sources([folder / "train.txt"])
    vocab = data.build_vocab(train_sources, tokenizer, "line")
    corpus = data.load_corpus(train_sources, tokenizer, vocab, "line", data.resolve_sources([folder / "valid.txt"]))
    if len(vocab) != 10000:
        print(f"note: {folder} gives {len(vocab)} tokens, not PTB's 10 K: numbers will not compare with PTB's")
    return Ptb(tokenizer, vocab, corpus.train, corpus.valid, data.resolve_sources([folder / "test.txt"]))


def our_trainer(
    ptb: Ptb, model: dict, config: TrainConfig, out: Path | None = None, valid: bool = True
) -> tuple[Trainer, LanguageModel]:
    torch.manual_seed(config.seed)
    cutoffs = tuple(c for c in model.get("adaptive_cutoffs", ()) if c < len(ptb.vocab))  # type: ignore[attr-defined]
    model = {**model, "adaptive_cutoffs": cutoffs}
    net = LSTMLanguageModel(ModelConfig(vocab_size=len(ptb.vocab), **model))  # type: ignore[arg-type]
    lm = LanguageModel(net, ptb.vocab, ptb.tokenizer, {"name": "ptb"})  # type: ignore[arg-type]
    corpus = data.Corpus(ptb.train, ptb.valid if valid else None, data.CorpusStats())
    out = out or Path(tempfile.mkdtemp()) / "ptb.pt"
    return Trainer(lm, corpus, config, out, progress=False), lm


SMALL = {"embedding_dim": 200, "hidden_dim": 200, "num_layers": 2, "dropout": 0.2, "locked_dropout": False}
# the same network and parameters (+2 cluster vectors) with the tied two-level softmax: clusters of 2,000 / 3,000 /
# 5,000 words by frequency, most targets scored in the 2,000-word head
SMALL_TIED_ADAPTIVE = {**SMALL, "adaptive_cutoffs": (2000, 5000)}
# PyTorch's adaptive softmax (untied, projected tails): the cheapest softmax, more parameters, worse per epoch on PTB
SMALL_ADAPTIVE = {**SMALL, "tie_weights": False, "adaptive_cutoffs": (1000, 4000)}
CLASSIC = {"batch_size": 20, "optimizer": "sgd", "lr": 20.0, "schedule": "plateau", "warmup_steps": 0}


def throughput(
    report: Report, ptb: Ptb, steps: int, command: str, variants: list[tuple[dict, dict]], rounds: int = 3
) -> list[float]:
    """Tokens/s of the classic loop, then of ``autocomplete train`` variants (settings, model) on the same data;
    returns each variant's ratio to the classic loop.

    The runs are interleaved (classic, variant 1, variant 2, ..., then again) and each row is the median of its
    ``rounds`` runs, so that a noisy neighbour on a shared machine slows every row alike instead of one of them.
    """
    rates: list[list[float]] = [[] for _ in range(len(variants) + 1)]
    classic_size = sum(p.numel() for p in reference_lm.RNNModel(len(ptb.vocab), 200, 200, 2).parameters())  # type: ignore[arg-type]
    params: list[float] = [classic_size / 1e6] * (len(variants) + 1)
    for _ in range(rounds):
        _, ref_rate = reference_lm.train(ptb.train, ptb.valid, len(ptb.vocab), max_steps=steps)  # type: ignore[arg-type]
        rates[0].append(ref_rate)
        for i, (ours, ours_model) in enumerate(variants, 1):
            config = TrainConfig(epochs=1, max_steps=steps, device="cpu", save_every=1e9, **ours)
            trainer, _ = our_trainer(ptb, ours_model, config, valid=False)
            trainer.run()
            rates[i].append(trainer.tokens_seen / trainer.elapsed)
            params[i] = trainer.model.num_parameters() / 1e6
    medians = [statistics.median(r) for r in rates]
    spread = [f"{min(r):,.0f}–{max(r):,.0f}" for r in rates]
    report.add("training throughput", "classic recipe: nn.LSTM 2×200 tied, batch 20, SGD lr 20", command,
               tokens_per_s=medians[0], runs=spread[0], ratio="1.00×", params_m=params[0])
    for i, (ours, ours_model) in enumerate(variants, 1):
        report.add("training throughput", f"autocomplete train 2×200, {model_name(ours_model)}, {describe(ours)}",
                   command, tokens_per_s=medians[i], runs=spread[i], ratio=f"{medians[i] / medians[0]:.2f}×",
                   params_m=params[i])
    return [m / medians[0] for m in medians[1:]]


def describe(ours: dict) -> str:
    return f"batch {ours.get('batch_size', 32)}, {ours.get('optimizer', 'adamw')} lr {ours.get('lr', 2e-3):g}"


def model_name(model: dict) -> str:
    if not model.get("adaptive_cutoffs"):
        return "tied full softmax"
    return "tied two-level softmax" if model.get("tie_weights", True) else "untied adaptive softmax"


def per_epoch(report: Report, ptb: Ptb, epochs: int, command: str, ours: dict, ours_model: dict) -> None:
    """Validation perplexity after each epoch, classic recipe vs ours (same model size)."""
    ref, ref_rate = reference_lm.train(ptb.train, ptb.valid, len(ptb.vocab), epochs=epochs)  # type: ignore[arg-type]
    config = TrainConfig(epochs=epochs, device="cpu", save_every=1e9, **ours)
    trainer, _ = our_trainer(ptb, ours_model, config)
    trainer.run()
    for r, mine in zip(ref, trainer.history):
        report.add(
            "perplexity per epoch", f"epoch {r.epoch} (ours: {model_name(ours_model)}, {describe(ours)})", command,
            classic_valid_ppl=r.valid_ppl, classic_s=r.seconds,
            ours_valid_ppl=math.exp(mine["valid_loss"]), ours_s=mine["elapsed"],
        )


def quality(report: Report, ptb_folder: Path, models: list[Path], ksr_words: int, command: str) -> None:
    """Perplexity, top-k accuracy and keystroke savings of PTB-trained models on the PTB test set."""
    for path in models:
        predictor = Predictor.load(path)
        ids, surface = read_eval_text(data.resolve_sources([ptb_folder / "test.txt"]), predictor.tokenizer,
                                      predictor.vocab, "line")
        r = evaluate(predictor, ids, surface, ksr_k=(3, 6), ksr_words=ksr_words)
        meta = predictor.lm.metadata
        c = predictor.model.config
        report.add(
            "PTB test quality", f"{path.name}: {c.num_layers}×{c.hidden_dim} (emb {c.embedding_dim}), "
            f"{predictor.model.num_parameters() / 1e6:.1f} M params, trained {meta.get('wall_time', '?')} s on "
            f"{meta.get('device', '?')}", f"autocomplete eval {path} ptb/test.txt -k 3 -k 6 --ksr-words {ksr_words}",
            perplexity=r.perplexity, top1=f"{r.accuracy[1]:.1%}", top3=f"{r.accuracy[3]:.1%}",
            top5=f"{r.accuracy[5]:.1%}", ksr3=f"{r.keystrokes[0].savings:.1%}", ksr6=f"{r.keystrokes[1].savings:.1%}",
        )


def save_small_model(path: Path, lm: LanguageModel) -> None:
    checkpoint.save(lm, path)
