"""The training loop: truncated BPTT with carried state, clipping, LR schedule, validation, checkpoints, resume, DDP.

The token stream is laid out in ``batch_size`` contiguous columns and read ``bptt`` tokens at a time; the LSTM state
is carried from one window to the next (detached), so the model sees long contexts, unlike fixed n-word windows.
The stream is a tensor or, for corpora of any size, a :class:`~autocomplete.data.TokenFile` from the token cache,
read one window at a time (:class:`~autocomplete.data.BatchedStream`); both give the same batches.

Two files come out of a run on ``MODEL``:

* ``MODEL`` — the best model on validation (or the latest, without validation text): small, loadable, shippable;
* ``MODEL.resume`` — the full training state (fp32 weights, optimiser, schedule, data position, LSTM state, RNG
  states), rewritten every ``save_every`` seconds, at the end of each epoch and on Ctrl-C / SIGTERM. ``--resume``
  continues from it, so a crash or a kill loses at most one save interval.

Under ``torchrun`` the same code runs one process per device: each rank trains on its own contiguous shard of the
token stream, DistributedDataParallel all-reduces the gradients, validation losses are all-reduced, and only rank 0
writes files, logs and draws the progress bar (its tokens/s count all ranks). A rank whose peer dies stops with a
one-line :class:`~autocomplete.errors.DistributedError` instead of a collective's traceback.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from autocomplete import checkpoint
from autocomplete.checkpoint import LanguageModel
from autocomplete.data import BatchedStream, Corpus, TokenIds, ids_digest
from autocomplete.devices import resolve_device
from autocomplete.distributed import (
    all_reduce_sum,
    any_rank,
    first_line,
    gather_objects,
    init_distributed,
    lost_contact,
)
from autocomplete.errors import CheckpointError, ConfigError, DistributedError, TrainingError
from autocomplete.evaluate import evaluate_loss, perplexity, shown_perplexity
from autocomplete.model import LSTMLanguageModel, State, detach_state
from autocomplete.signals import handling, named
from autocomplete.resume import check_optimizer, check_state, check_training, restore_rng, resume_path
from autocomplete.progress import Mode, Progress, count

Log = Callable[[str], None]
DEFAULT_LR = {"adamw": 2e-3, "sgd": 20.0}  # AdamW's usual rate; 20 for SGD is the classic word-level LSTM recipe


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training text
    batch_size: int = 32  # parallel streams per process (the effective batch is this × processes)
    bptt: int = 35  # tokens per truncated back-propagation window
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float | None = None  # peak learning rate; None: the optimizer's usual one (DEFAULT_LR)
    weight_decay: float = 0.0
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"  # plateau: divide by 4 when validation stalls
    warmup_steps: int = 100  # linear warm-up (cosine and constant schedules)
    clip: float = 0.25  # max gradient norm; 0 disables clipping
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    save_every: float = 300.0  # seconds between resume-state saves
    eval_every: int = 0  # steps between validations inside an epoch (0 = only at epoch ends)
    patience: int = 0  # stop once this many validations in a row did not improve (0 = never stop early)
    validate_first: bool = False  # validate before the first step, so the starting weights can be the best model
    max_time: float | None = None  # stop after this many seconds of training (time budget)
    max_steps: int | None = None  # stop after this many optimiser steps
    compile: bool = False  # torch.compile the training step
    save_dtype: Literal["float32", "float16", "int8"] = "float32"  # storage of the best-model file's weights (int8:
    # matrices as int8 rows with per-row scales, the rest float16)

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise ConfigError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        object.__setattr__(self, "lr", lr)
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.bptt >= 1, f"bptt must be at least 1, got {self.bptt}"),
            (lr > 0 and math.isfinite(lr), f"learning rate must be a positive number, got {lr}"),
            (self.weight_decay >= 0, f"weight decay must be ≥ 0, got {self.weight_decay}"),
            (self.clip >= 0, f"clip must be ≥ 0 (0 disables), got {self.clip}"),
            (self.warmup_steps >= 0, f"warm-up steps must be ≥ 0, got {self.warmup_steps}"),
            (self.patience >= 0, f"patience must be ≥ 0 (0 disables early stopping), got {self.patience}"),
            (self.save_every > 0, f"save interval must be positive, got {self.save_every}"),
            (
                self.save_dtype in ("float32", "float16", "int8"),
                f"save dtype must be float32, float16 or int8, got {self.save_dtype!r}",
            ),
            (self.optimizer in ("adamw", "sgd"), f"optimizer must be adamw or sgd, got {self.optimizer!r}"),
            (
                self.schedule in ("cosine", "plateau", "constant"),
                f"schedule must be cosine, plateau or constant, got {self.schedule!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        resolve_device(self.device)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# ---- the loop ---------------------------------------------------------------------------------------------------


class _LossModule(nn.Module):
    """model + loss in one forward, so DistributedDataParallel sees the whole computation.

    ``use_all``: DDP expects a gradient for every parameter at every step, but the adaptive softmax skips a tail
    cluster when no target of the batch falls in it; adding those parameters × 0 gives them the zero gradient they
    have anyway (cheaper than DDP's ``find_unused_parameters`` search, and silent).
    """

    def __init__(self, model: LSTMLanguageModel, use_all: bool = False) -> None:
        super().__init__()
        self.model = model
        self.unused_candidates = list(model.decoder.parameters()) if use_all and model.config.adaptive_cutoffs else []

    def forward(self, x: Tensor, y: Tensor, state: State) -> tuple[Tensor, State]:
        features, state = self.model.features(x, state)
        loss = self.model.loss(features, y)
        if self.unused_candidates:
            loss = loss + 0.0 * sum(p.sum() for p in self.unused_candidates)
        return loss, state


@dataclass
class TrainResult:
    best_valid_loss: float | None
    steps: int
    tokens_seen: int
    wall_time: float
    interrupted: bool
    stopped_early: bool  # hit max_time / max_steps, or stopped improving (patience), before the last epoch ended
    written: bool = True  # False when a better model already at the output was kept
    kept_loss: float | None = None  # that model's validation loss
    # a resumed run that wrote no model and found its output gone (moved, removed): its last weights were written
    # there (``written`` is True), with this validation loss (None without validation text)
    last_weights: bool = False
    last_loss: float | None = None


class _StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived; every rank has reached the same step boundary, so the state can be saved."""


@contextmanager
def _stop_at_step_boundary(trainer: Trainer) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed, an SSH connection lost) ask the loop to stop after the current
    step (a consistent state to save and resume).

    A second signal stops at once; the last saved state is then what ``--resume`` continues from.
    """

    def handler(signum: int, frame: object) -> None:
        if trainer.stop_signal is not None:
            raise KeyboardInterrupt
        trainer.stop_signal = signum

    with handling(named("SIGINT", "SIGTERM", "SIGHUP"), handler):
        yield


class Trainer:
    """One training run of ``lm`` on ``corpus``, writing ``output`` and its resume file; :meth:`close` (or a
    ``with`` block) when done. ``inputs`` describe what the run was started on (corpus, settings); they are kept in
    the resume file so that a resumption can say what differs."""

    def __init__(
        self,
        lm: LanguageModel,
        corpus: Corpus,
        config: TrainConfig,
        output: Path,
        log: Log = lambda s: None,
        inputs: dict[str, Any] | None = None,
        progress: Mode | bool = True,
        verbose: bool = False,
    ) -> None:
        """``progress``: ``bar`` (or True) draws one bar for the whole run, ``lines`` writes a plain line now and then
        (for logs), ``off`` (or False) neither; ``verbose`` adds a summary line per epoch."""
        self.lm = lm
        self.inputs = dict(inputs or {})
        self.config = config
        self.output = Path(output)
        self.log = log
        self.dist, self.device = init_distributed(config.device)
        mode: Mode = "bar" if progress is True else "off" if progress is False else progress
        self.progress_mode: Mode = mode if self.dist.main else "off"
        self.verbose = verbose
        self._progress: Progress | None = None  # while the epochs run
        torch.manual_seed(config.seed + self.dist.rank)
        self.model = lm.model.to(self.device)
        self.net: nn.Module = _LossModule(self.model, use_all=self.dist.active)
        if self.dist.active:
            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.step_fn = torch.compile(self.net) if config.compile else self.net
        self.optimizer = self._make_optimizer()
        self.train_data = self._shard(corpus.train)
        self.valid_ids = corpus.valid
        self.batches_per_epoch = self.train_data.num_batches(config.bptt)
        self.total_steps = self.batches_per_epoch * config.epochs
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.lr_scale = 1.0  # plateau schedule's factor
        # progress through training, saved in the resume state
        self.step = 0
        self.epoch = 0
        self.offset = 0  # position inside the current epoch's columns
        self.tokens_seen = 0
        self.elapsed = 0.0
        self.best_loss: float | None = None
        self.stale = 0  # validations in a row without improvement (early stopping)
        self._said_converged = False
        self.state: State | None = None
        self.history: list[dict[str, float | int | None]] = []  # one entry per validation at an epoch end
        self._last_save = time.monotonic()
        self.stop_signal: int | None = None  # set by Ctrl-C / SIGTERM; the loop stops at the next step boundary
        self.to_beat: float | None = None  # validation loss of a comparable model already at ``output``
        self.resumed = False  # whether the state came from a resume file (load_resume)
        self.resumed_at = 0  # the step it continued from
        self.written = False  # whether this run wrote ``output``
        self._written_history = 0  # validations the model written last holds in its history
        self._valid_digest: str | None = None
        self._bad_loss = torch.zeros((), dtype=torch.bool, device=self.device)  # a non-finite loss was seen

    def close(self) -> None:
        """Drop the DistributedDataParallel wrapper: it holds the process group, and left to interpreter exit, gloo's
        threads can be torn down in the wrong order and abort the process ("terminate called without an active
        exception"). The trainer cannot run after this."""
        for name in ("net", "step_fn", "optimizer"):
            self.__dict__.pop(name, None)
        gc.collect()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        assert c.lr is not None  # TrainConfig puts in the optimizer's usual rate for None
        params = list(self.model.parameters())
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, weight_decay=c.weight_decay)
        try:  # the fused kernel is several times faster than the per-tensor loop, on CPUs too (torch ≥ 2.4)
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, betas=(0.9, 0.99), fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, betas=(0.9, 0.99))

    def _shard(self, ids: TokenIds) -> BatchedStream:
        """This rank's contiguous share of the stream, laid out in batch columns (read from disk for a TokenFile)."""
        c = self.config
        per_rank = len(ids) // self.dist.world
        shard = ids[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank]
        batch = c.batch_size
        if len(shard) // batch < 2:
            batch = max(1, len(shard) // 2)
            if self.dist.main:
                self.log(f"corpus is smaller than one batch: training with batch size {batch} instead of {c.batch_size}")
        self.batch_size = batch
        return BatchedStream(shard, batch, self.device)

    def lr_at(self, step: int) -> float:
        c = self.config
        assert c.lr is not None  # TrainConfig puts in the optimizer's usual rate for None
        warm = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps and c.schedule != "plateau" else 1.0
        if c.schedule == "cosine":  # over the steps, or over the time budget when that ends training first
            progress = step / max(1, self.total_steps)
            if c.max_time:
                progress = max(progress, self.elapsed / c.max_time)
            progress = min(1.0, progress)
            return c.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        return c.lr * warm * self.lr_scale

    # ---- resume state ---------------------------------------------------------------------------------------

    def save_resume(self, finished: bool = False) -> None:
        """Write the full training state to the resume file; ``finished``: the run is over (a new run may replace
        it without ``--resume``)."""
        self._check_weights()
        states = gather_objects([(h.cpu(), c.cpu()) for h, c in self.state] if self.state else None, self.dist)
        rngs = gather_objects(self._rng_state(), self.dist)
        if not self.dist.main:
            return
        payload = checkpoint.to_payload(self.lm)
        payload["training"] = {
            "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "offset": self.offset,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "best_loss": self.best_loss,
            "stale": self.stale,
            "lr_scale": self.lr_scale,
            "history": self.history,
            "world": self.dist.world,
            "batch_size": self.batch_size,
            "states": states,
            "rng": rngs,
            "to_beat": self.to_beat,
            "inputs": self.inputs,
            "finished": finished,
        }
        checkpoint.save_payload(payload, resume_path(self.output))
        self._last_save = time.monotonic()

    def _rng_state(self) -> dict[str, Tensor]:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def load_resume(self, path: Path) -> None:
        """Continue from the resume file at ``path``; every way it can be damaged is one :class:`CheckpointError`."""
        payload = checkpoint.read_payload(path, kind="resume")
        training = check_training(payload, path)
        vocab, settings = payload.get("vocab"), payload.get("model_config")
        same_vocab = isinstance(vocab, dict) and vocab.get("itos") == self.lm.vocab.itos
        if not same_vocab or settings != self.model.config.to_dict():
            raise CheckpointError(f"{path}: was written for a different vocabulary or model size")
        if training["world"] != self.dist.world or training["batch_size"] != self.batch_size:
            raise CheckpointError(
                f"{path}: was written by {training['world']} process(es) with batch size {training['batch_size']};"
                f" resume with the same settings"
            )
        shapes = [(tuple(h.shape), tuple(c.shape)) for h, c in self.model.init_state(self.batch_size, "cpu")]
        states = check_state(training["states"][self.dist.rank], shapes, path)
        check_optimizer(training["optimizer"], list(self.model.parameters()), path,
                        self.optimizer.state_dict()["param_groups"])
        try:
            self.model.load_state_dict(checkpoint.from_payload(payload, path).model.state_dict())
            self.optimizer.load_state_dict(training["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: resume file is damaged ({first_line(e)})") from None
        restore_rng(training["rng"][self.dist.rank], self.device, path)
        self.history = list(training["history"])
        for key in ("step", "epoch", "offset", "tokens_seen", "elapsed", "best_loss", "lr_scale"):
            setattr(self, key, training[key])
        stale = training.get("stale", 0)
        self.stale = stale if isinstance(stale, int) and not isinstance(stale, bool) and stale >= 0 else 0
        to_beat = training.get("to_beat")
        self.to_beat = float(to_beat) if isinstance(to_beat, (int, float)) and math.isfinite(to_beat) else None
        self.state = [(h.to(self.device), c.to(self.device)) for h, c in states] if states else None
        self.resumed, self.resumed_at = True, self.step

    def forget_best(self) -> None:
        """Validation losses from here on are not comparable with the saved ones (another validation text)."""
        self.best_loss = self.to_beat = None

    # ---- validation and the best model ----------------------------------------------------------------------

    def validate(self) -> float | None:
        if self.valid_ids is None:
            return None
        per_rank = len(self.valid_ids) // self.dist.world
        shard = self.valid_ids[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank]
        loss, count = evaluate_loss(self.model, shard, batch_size=min(10, max(1, len(shard) // 2)))
        total, n = all_reduce_sum([loss * count, float(count)], self.dist, self.device)
        return total / n if n else None

    def _after_validation(self, loss: float | None, save_latest: bool = False) -> None:
        """Keep the best model on validation; without validation text, the latest when ``save_latest``.

        A non-finite validation loss stops the run (:class:`TrainingError`); a model that does not beat a
        comparable one already at ``output`` (:attr:`to_beat`) is not written."""
        if loss is not None and not math.isfinite(loss):
            raise self._diverged("the validation loss", loss)
        improved = loss is not None and (self.best_loss is None or loss < self.best_loss)
        if loss is not None and not improved and self.config.schedule == "plateau":
            self.lr_scale /= 4
        if improved:
            self.best_loss = loss
        if loss is not None:
            self.stale = 0 if improved else self.stale + 1
        better = loss is not None and improved and (self.to_beat is None or loss < self.to_beat)
        if (better or loss is None and save_latest) and self.dist.main:
            self._save_model(loss)

    def _save_model(self, loss: float | None) -> None:
        self._check_weights()
        metadata = dict(self.lm.metadata)
        metadata.update(
            tokens_seen=self.tokens_seen,
            steps=self.step,
            epochs=round(self.step / max(1, self.batches_per_epoch), 3),
            wall_time=round(self.elapsed, 1),
            valid_loss=loss,
            valid_perplexity=perplexity(loss) if loss is not None else None,
            valid_digest=self._validation_digest(),
            history=self.history,
            device=str(self.device) + (f" ×{self.dist.world}" if self.dist.active else ""),
            train_config=self.config.to_dict(),
            torch_version=torch.__version__,
        )
        dtype = torch.float16 if self.config.save_dtype in ("float16", "int8") else None
        lm = LanguageModel(self.model, self.lm.vocab, self.lm.tokenizer, metadata)
        checkpoint.save(lm, self.output, dtype, int8=self.config.save_dtype == "int8")
        self.written = True
        self._written_history = len(self.history)

    def _record_the_rest_of_the_run(self) -> None:
        """The model written is the run's best: when validations followed it that did not beat it, its file's history
        gets them too (and ``run_epochs``, how far the run went), so ``info`` draws the whole curve and shows a run
        that went on and got worse, not one cut off while it improved. Its weights stay as they are."""
        if not (self.dist.main and self.written and len(self.history) > self._written_history):
            return
        payload = checkpoint.read_payload(self.output)
        metadata = payload.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("valid_loss") != self.best_loss:
            return  # not the file this run wrote last
        metadata.update(history=self.history, run_epochs=round(self.step / max(1, self.batches_per_epoch), 3))
        checkpoint.save_payload(payload, self.output)
        self._written_history = len(self.history)

    def _validation_digest(self) -> str | None:
        """A hash of the validation ids: two runs' losses are comparable only on the same ids."""
        if self._valid_digest is None and self.valid_ids is not None:
            self._valid_digest = ids_digest(self.valid_ids)
        return self._valid_digest

    def respect_existing_model(self) -> None:
        """Set :attr:`to_beat` from a model already at ``output`` that was validated on the same ids with the same
        vocabulary: this run replaces it only with a better one."""
        if not self.dist.main or self.valid_ids is None or not self.output.is_file():
            return
        try:
            payload = checkpoint.read_payload(self.output)
        except CheckpointError:
            return  # not a model: check_writable already accepted replacing it
        metadata = payload.get("metadata")
        if not isinstance(metadata, dict) or payload.get("vocab", {}).get("itos") != self.lm.vocab.itos:
            return
        loss = metadata.get("valid_loss")
        if metadata.get("valid_digest") != self._validation_digest() or not isinstance(loss, (int, float)):
            return
        if isinstance(loss, bool) or not math.isfinite(loss):
            return
        self.to_beat = float(loss)
        self.log(
            f"{self.output} already holds a model with validation perplexity {shown_perplexity(loss)} on this "
            "validation text: it is replaced only by a better one"
        )

    def _check_weights(self) -> None:
        """Before a model is written: weights no command would load (not finite, or past checkpoint.MAX_WEIGHT,
        where a run with a huge --lr ends with a finite loss) end the run as diverged, and nothing is written."""
        for name, p in self.model.named_parameters():
            largest = float(torch.linalg.vector_norm(p.detach(), math.inf))  # NaN or inf if any is
            if not math.isfinite(largest):
                raise self._diverged(f"the weights ({name})")
            if largest > checkpoint.MAX_WEIGHT:
                raise self._diverged(f"the weights ({name})", largest)

    def _diverged(self, what: str, value: float = math.nan) -> TrainingError:
        c = self.config
        hint = f"a lower --lr (this run: {c.lr:g})" + (
            f" or a smaller --clip (this run: {c.clip:g})" if c.clip else " or gradient clipping (--clip 0.25)"
        )
        if math.isfinite(value):  # weights that grew past what a model file may hold
            became, saved = f"as large as {value:.3g} (a model's are a few units)", "so large"
        else:
            became, saved = "infinite" if math.isinf(value) else "NaN", "non-finite"
        if self.written:
            kept = f"{self.output} holds this run's best model before that"
        elif self.output.exists():
            kept = f"{self.output} is unchanged"
        else:
            kept = "no model was written"
        return TrainingError(
            f"training diverged at step {self.step}: {what} became {became}; nothing {saved} was saved ({kept})."
            f" Try {hint}"
        )

    # ---- the loop -------------------------------------------------------------------------------------------

    def run(self, resume: bool = False) -> TrainResult:
        c = self.config
        if resume and not self.resumed:
            self.load_resume(resume_path(self.output))
        if self.resumed and self.dist.main:
            self.log(f"resuming at epoch {self.epoch + 1}, step {self.step} ({self.tokens_seen:,} tokens seen)")
        elif not self.resumed:
            self.respect_existing_model()
        if self.dist.main:
            eff = self.batch_size * self.dist.world
            self.log(
                f"training {self.model.num_parameters():,} parameters on {self.device}"
                + (f" × {self.dist.world} processes" if self.dist.active else "")
                + f": {count(self.batches_per_epoch, 'step')}/epoch, effective batch {eff} × {c.bptt} tokens, "
                f"{c.optimizer} lr {c.lr:g} ({c.schedule})"
            )
        interrupted = stopped = False
        if c.validate_first and not self.resumed:  # the starting weights are the model to beat, and the first one saved
            loss = self.validate()
            if self.dist.main and loss is not None:
                self.log(f"before training: valid loss {loss:.3f}, perplexity {shown_perplexity(loss)}")
            self.history.append({"epoch": 0.0, "step": 0, "tokens": 0, "elapsed": 0.0, "valid_loss": loss})
            self._after_validation(loss)
        with _stop_at_step_boundary(self):
            try:
                stopped = self._epochs()
            except RuntimeError as e:
                if not (self.dist.active and lost_contact(e)):
                    raise
                # another rank died or the network failed: that rank's own message, or torchrun's, says why
                raise DistributedError(f"lost contact with the other processes ({first_line(e)})") from None
            except _StopRequested:
                interrupted = True
                self.save_resume()
                if self.dist.main:
                    self.log(f"interrupted: training state saved to {resume_path(self.output)}; continue with --resume")
            except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-step; the last save stays the resume point
                interrupted = True
                if self.dist.main and resume_path(self.output).exists():
                    self.log(f"stopped at once: continue from the last save in {resume_path(self.output)} with --resume")
                elif self.dist.main:
                    self.log("stopped before the first save of the training state: nothing to resume")
        last_weights, last_loss = (False, None) if interrupted else self._write_if_gone()
        self._record_the_rest_of_the_run()
        return TrainResult(
            self.best_loss, self.step, self.tokens_seen, self.elapsed, interrupted, stopped, self.written, self.to_beat,
            last_weights, last_loss,
        )

    def _write_if_gone(self) -> tuple[bool, float | None]:
        """A resumed run that wrote no model (it had finished already, or no validation beat its best) and whose
        output is no longer there (moved or removed since): its last weights are written there, so that the run ends
        with a model at its output. (Whether they were, their validation loss.)"""
        if not self.resumed:
            return False, None
        # decided on the main rank, which alone writes (and knows whether it wrote); every rank validates
        [gone] = any_rank([self.dist.main and not self.written and not self.output.exists()], self.dist, self.device)
        if not gone:
            return False, None
        loss = self.validate()
        if loss is not None and not math.isfinite(loss):
            raise self._diverged("the validation loss", loss)
        if self.dist.main:
            self._save_model(loss)
        return True, loss

    def _say(self, message: str) -> None:
        """Log on rank 0, above the progress bar when there is one."""
        if not self.dist.main:
            return
        if self._progress is not None:
            self._progress.write(message)
        else:
            self.log(message)

    def _epochs(self) -> bool:
        self._progress = Progress(
            self.total_steps, self.progress_mode, self.log, "training", initial=min(self.step, self.total_steps)
        )
        try:
            return self._run_epochs()
        finally:
            self._progress.close()
            self._progress = None

    def _run_epochs(self) -> bool:
        c = self.config
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        )
        self._last_save = time.monotonic()
        self.model.train()
        assert self._progress is not None
        progress = self._progress
        window_tokens, window_start = 0, time.perf_counter()
        while self.epoch < c.epochs:
            for offset, x, y in self.train_data.windows(c.bptt, self.offset):
                started = time.perf_counter()
                if self.state is None:
                    self.state = self.model.init_state(self.batch_size, self.device)
                lr = self.lr_at(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with amp:
                    loss, state = self.step_fn(x, y, self.state)
                self._bad_loss |= ~torch.isfinite(loss.detach())  # no sync: read at the next agreement below
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c.clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
                self.optimizer.step()
                self.state = detach_state(state)
                self.step += 1
                self.offset = offset + x.size(1)
                tokens = x.numel() * self.dist.world
                self.tokens_seen += tokens
                self.elapsed += time.perf_counter() - started
                window_tokens += tokens
                if progress.mode != "off":
                    now = time.perf_counter()
                    loss_value = float(loss.detach())
                    fields = {"epoch": f"{self.epoch + 1}/{c.epochs}", "loss": f"{loss_value:.3f}"}
                    if self.history and self.history[-1]["valid_loss"] is not None:
                        last_valid = float(self.history[-1]["valid_loss"])  # type: ignore[arg-type]
                        fields["valid_ppl"] = f"{perplexity(last_valid):.1f}"
                    fields["tokens/s"] = f"{window_tokens / max(1e-9, now - window_start):,.0f}"
                    fields["lr"] = f"{lr:.2g}"
                    progress.update(1, **fields)
                    if now - window_start > 10:
                        window_tokens, window_start = 0, now
                if c.eval_every and self.step % c.eval_every == 0:
                    self._after_validation(self.validate())
                    self.model.train()
                # the same step on every rank (validation losses are all-reduced, so all ranks agree on converging)
                stop = c.max_steps is not None and self.step >= c.max_steps or self._converged()
                if not self.dist.active or self.step % 20 == 0:  # under DDP, agree every 20 steps
                    out_of_time = c.max_time is not None and self.elapsed >= c.max_time
                    diverged, signalled, save, out_of_time = any_rank(
                        [bool(self._bad_loss), self.stop_signal is not None, self._save_due(), out_of_time],
                        self.dist, self.device,
                    )
                    if diverged:
                        raise self._diverged("the training loss")
                    if signalled:
                        raise _StopRequested
                    if save:
                        self.save_resume()
                    stop = stop or out_of_time
                if stop:
                    self._finish_epoch(partial=True)
                    return True
            self.epoch += 1
            self.offset = 0
            self.state = None
            self._finish_epoch(partial=False)
            if self._converged():
                return True
        return False

    def _converged(self) -> bool:
        """Early stopping: the last ``patience`` validations did not improve on the best."""
        done = bool(self.config.patience) and self.stale >= self.config.patience
        if done and self.dist.main and not self._said_converged:
            self._said_converged = True
            self._say(f"validation did not improve {self.stale} times in a row: stopping early (best kept)")
        return done

    def _finish_epoch(self, partial: bool) -> None:
        last = partial or self.epoch == self.config.epochs
        diverged, due = any_rank([bool(self._bad_loss), last or self._save_due()], self.dist, self.device)
        if diverged:
            raise self._diverged("the training loss")
        loss = self.validate()
        if loss is not None and not math.isfinite(loss):
            raise self._diverged("the validation loss", loss)
        self.model.train()
        if self._epoch_line_due(last):
            where = "stopped" if partial else f"epoch {self.epoch}/{self.config.epochs}"
            rate = self.tokens_seen / max(1e-9, self.elapsed)
            valid = f"valid loss {loss:.3f}, perplexity {shown_perplexity(loss)}" if loss is not None else "no validation"
            self._say(f"{where}: {valid}; {count(self.tokens_seen, 'token')} in {self.elapsed:.0f} s ({rate:,.0f} tokens/s)")
        # (due: tiny epochs would otherwise rewrite both files many times a second)
        self.history.append(
            {"epoch": round(self.step / max(1, self.batches_per_epoch), 3), "step": self.step,
             "tokens": self.tokens_seen, "elapsed": round(self.elapsed, 1), "valid_loss": loss}
        )
        self._after_validation(loss, save_latest=due)
        finished = last or self._converged()
        if due or finished:
            self.save_resume(finished=finished)

    def _epoch_line_due(self, last: bool) -> bool:
        """Whether an epoch's summary line is written: each with ``verbose``; without, in a log (``lines``) about ten
        over the run, the last one included; never next to a bar, which shows the same numbers."""
        if not self.dist.main:
            return False
        if self.verbose:
            return True
        if self.progress_mode != "lines":
            return False
        return last or self.epoch % max(1, math.ceil(self.config.epochs / 10)) == 0

    def _save_due(self) -> bool:
        return time.monotonic() - self._last_save >= self.config.save_every


# ---- settings fitted to the corpus --------------------------------------------------------------------------------

# (fewer tokens than this: embedding size, hidden size, layers, peak AdamW learning rate). A small text fills one
# tied layer without a projection (embedding = hidden) and learns fast at a high rate; two stacked layers or a wider
# cell only slow it down (measured on 300 and 2,250 lines of Shakespeare). Above the last row: the shipped recipe.
_MODEL_SIZES = ((1_000, 32, 32, 1, 1e-2), (50_000, 128, 128, 1, 1e-2), (500_000, 256, 256, 1, 5e-3))
_LARGE_MODEL = (256, 512, 2, 2e-3)
_STEPS_PER_EPOCH = 200  # small corpora get batches small enough for about this many optimiser steps per pass
_SMALL_VOCAB_TOKENS = 1_000  # below this, every word is kept (min-count 1): a tiny text has few words twice
_VALID_MIN_TOKENS = 1_000  # below this, no text is held out: every token is needed for training
_VALID_TARGET = 1_000  # tokens held out when the default fraction would give fewer (up to 10% of the text)
_SINGLE_THREAD_TOKENS = 50_000  # below this (a small model), one CPU thread: more only wait on each other


@dataclass(frozen=True)
class CorpusFit:
    """Training settings for a corpus of ``tokens`` tokens; ``derived`` names those chosen here, not by the user."""

    tokens: int  # tokens of the training text, end-of-line tokens included
    min_count: int  # rarer words become <unk>
    embedding_dim: int
    hidden_dim: int
    num_layers: int
    batch_size: int
    bptt: int
    warmup_steps: int
    lr: float
    valid_fraction: float  # tail of each file held out for validation (0: none)
    steps: int  # optimiser steps the run will take
    threads: int | None  # CPU threads (None: PyTorch's choice)
    derived: frozenset[str]

    def describe(self) -> str:
        """The derived choices in a few words, for the start-up line (empty when the user set them all)."""
        d = self.derived
        parts = []
        if "min_count" in d:
            parts.append(f"min-count {self.min_count}")
        if d & {"embedding_dim", "hidden_dim", "num_layers"}:
            parts.append(
                f"{self.num_layers} layer{'s' if self.num_layers > 1 else ''}, embedding {self.embedding_dim}, "
                f"hidden {self.hidden_dim}"
            )
        if d & {"batch_size", "bptt"}:
            parts.append(f"batch {self.batch_size} × bptt {self.bptt} ({count(self.steps, 'step')})")
        if "warmup_steps" in d:
            parts.append(f"warm-up {count(self.warmup_steps, 'step')}")
        if "lr" in d:
            parts.append(f"lr {self.lr:g}")
        if "threads" in d and self.threads:
            parts.append(f"{self.threads} CPU thread" + ("s" if self.threads > 1 else ""))
        if "valid_fraction" in d:
            parts.append(
                f"validation on {self.valid_fraction:.0%} of the text" if self.valid_fraction
                else "no validation (too little text: all of it is trained on)"
            )
        return "; ".join(parts)


def fit_to_corpus(
    tokens: int,
    *,
    epochs: int,
    optimizer: Literal["adamw", "sgd"] = "adamw",
    min_count: int | None = None,
    embedding_dim: int | None = None,
    hidden_dim: int | None = None,
    num_layers: int | None = None,
    batch_size: int | None = None,
    bptt: int | None = None,
    warmup_steps: int | None = None,
    lr: float | None = None,
    valid_fraction: float | None = None,
    valid_text: bool = False,
    max_steps: int | None = None,
    processes: int = 1,
    threads: int | None = None,
    tied: bool = True,
) -> CorpusFit:
    """Fill in the settings left as ``None`` from the corpus size, so that any text trains well on defaults.

    The defaults of the shipped recipe (batch 32 × 35 tokens, 100 warm-up steps, a 256/512 model, words seen once
    dropped) suit millions of words; a small text would get a handful of steps, all inside the warm-up, through a model
    it cannot fill. Here the batch shrinks until a pass takes about 100 steps, the warm-up stays under a tenth of the
    run, the model is sized to the text, rare words are kept when the text is small, and validation text is held
    out only when there is enough to spare. A value given (not ``None``) is kept as it is, so a fine-tuning run passes
    the base model's sizes and gets the rest fitted to its own text. ``valid_text``: validation comes from separate
    files (nothing is held out); ``processes``: torchrun ranks, each of which gets its share of the text. With
    ``tied`` weights (the hidden size at least the embedding size), a derived size never contradicts a given one:
    ``--embedding-dim 512`` alone on a small text gets a hidden size of 512, not a refusal once the text is counted.
    """
    derived: set[str] = set()

    def pick(name: str, given: Any, value: Any) -> Any:
        if given is not None:
            return given
        derived.add(name)
        return value

    if valid_text:
        valid_fraction = 0.0
    elif valid_fraction is None and tokens < _VALID_MIN_TOKENS:
        valid_fraction = pick("valid_fraction", None, 0.0)
    else:
        valid_fraction = pick("valid_fraction", valid_fraction, min(0.1, max(0.02, _VALID_TARGET / max(1, tokens))))
    train_tokens = max(1, int(tokens * (1 - valid_fraction)) // processes)
    min_count = pick("min_count", min_count, 1 if tokens < _SMALL_VOCAB_TOKENS else 2)
    size = next((row[1:] for row in _MODEL_SIZES if tokens < row[0]), _LARGE_MODEL)
    embedding_dim = pick("embedding_dim", embedding_dim, min(size[0], hidden_dim or size[0]) if tied else size[0])
    hidden_dim = pick("hidden_dim", hidden_dim, max(size[1], embedding_dim) if tied else size[1])
    num_layers = pick("num_layers", num_layers, size[2])
    per_step = max(1, train_tokens // _STEPS_PER_EPOCH)  # tokens per step for about 200 steps per pass
    bptt = pick("bptt", bptt, min(35, max(4, per_step // 2)))
    batch_size = pick("batch_size", batch_size, min(32, max(1, per_step // bptt)))
    columns = max(1, min(batch_size, train_tokens // 2))  # the trainer's own cap on a text shorter than a batch
    steps = max(1, math.ceil((train_tokens // columns - 1) / bptt)) * epochs
    if max_steps:
        steps = min(steps, max_steps)
    warmup_steps = pick("warmup_steps", warmup_steps, min(100, steps // 10))
    lr = pick("lr", lr, 20.0 if optimizer == "sgd" else size[3])
    if threads is None and tokens < _SINGLE_THREAD_TOKENS:  # a small model's products are too small to share out:
        threads = pick("threads", None, 1)  # more threads only wait on each other (20× slower on a busy machine)
    return CorpusFit(
        tokens, min_count, embedding_dim, hidden_dim, num_layers, batch_size, bptt, warmup_steps, lr, valid_fraction, steps,
        threads, frozenset(derived),
    )
