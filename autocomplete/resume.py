"""The resume file (``MODEL.resume``): checking what it holds before trusting it, and what a resumed run keeps.

A resume file is a model file plus a ``training`` table (optimiser, schedule, data position, LSTM states, RNG
states, and the inputs the run was started on). It is read back hours or weeks later, maybe after a crash mid-write
of some other tool or a hand edit, so everything in it is checked, and every problem is one
:class:`~autocomplete.errors.CheckpointError` line naming the file, never a ``KeyError`` deep in the trainer.

:func:`differences` says how a ``--resume`` command differs from the run it continues (corpus, validation text,
model settings, tokenizer), so that the command line can refuse to mix them silently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autocomplete.errors import CheckpointError


def resume_path(output: Path | str) -> Path:
    return Path(str(output) + ".resume")


def unfinished(path: Path) -> str | None:
    """Where the run whose resume file is ``path`` stopped ("epoch 2 of 5, step 1,234") if it did not finish; None
    if there is no such file, its run finished, or it cannot be continued anyway (a new run may replace it)."""
    from autocomplete import checkpoint

    if not path.is_file():
        return None
    try:
        training = check_training(checkpoint.read_payload(path, kind="resume"), path)
    except CheckpointError:
        return None
    epochs = training["config"].get("epochs")
    counted = isinstance(epochs, int) and not isinstance(epochs, bool)
    # finished: said so, or (a file from before that flag) every epoch was run
    if training.get("finished") is True or counted and training["epoch"] >= epochs:
        return None
    of = f" of {epochs}" if counted else ""
    return f"epoch {training['epoch'] + 1}{of}, step {training['step']:,}"


_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "optimizer": (dict,),
    "step": (int,),
    "epoch": (int,),
    "offset": (int,),
    "tokens_seen": (int,),
    "elapsed": (int, float),
    "best_loss": (int, float, type(None)),
    "lr_scale": (int, float),
    "history": (list,),
    "world": (int,),
    "batch_size": (int,),
    "states": (list,),
    "rng": (list,),
}


def check_training(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``training`` table of a resume payload, with the type and range of every entry checked."""
    training = payload.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(f"{path}: not a resume file (it holds no training state)")
    for key, kinds in _FIELDS.items():
        if key not in training:
            raise CheckpointError(f"{path}: resume file is incomplete (no {key!r}); it cannot be continued")
        value = training[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise CheckpointError(f"{path}: resume file is damaged ({key!r} is a {type(value).__name__})")
        if isinstance(value, (int, float)) and (not math.isfinite(value) or value < 0):
            raise CheckpointError(f"{path}: resume file is damaged ({key!r} is {value})")
    if training["world"] < 1 or training["batch_size"] < 1:
        raise CheckpointError(f"{path}: resume file is damaged (world {training['world']}, "
                              f"batch size {training['batch_size']})")
    for key in ("states", "rng"):
        if len(training[key]) != training["world"]:
            raise CheckpointError(f"{path}: resume file is damaged ({len(training[key])} {key} entries for "
                                  f"{training['world']} process(es))")
    for n, entry in enumerate(training["history"], 1):
        if not _validation_record(entry):
            raise CheckpointError(f"{path}: resume file is damaged (history entry {n} of {len(training['history'])}"
                                  " is not a validation record)")
    if not isinstance(training.get("inputs", {}), dict):
        raise CheckpointError(f"{path}: resume file is damaged ('inputs' is a {type(training['inputs']).__name__})")
    return training


def _validation_record(entry: Any) -> bool:
    """Whether ``entry`` of a resume file's ``history`` is what the trainer records at each validation: a table with
    its step (a whole number), its loss (a finite number ≥ 0, or None without validation text) and, if there, its
    epoch, tokens and seconds (finite numbers ≥ 0). The trainer and ``info`` read them back."""
    if not isinstance(entry, dict) or "step" not in entry or "valid_loss" not in entry:
        return False
    step, loss = entry["step"], entry["valid_loss"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or loss is not None and not _sensible(loss):
        return False
    return all(_sensible(entry[key]) for key in ("epoch", "tokens", "elapsed") if key in entry)


def _sensible(value: Any) -> bool:
    """A finite number ≥ 0 (not True or False)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


Shape = tuple[int, ...]


def check_state(states: Any, shapes: list[tuple[Shape, Shape]], path: Path) -> list[tuple[Tensor, Tensor]] | None:
    """One rank's saved LSTM state: None, or one (h, c) pair per layer with the ``shapes`` the model uses."""
    if states is None:
        return None
    if not isinstance(states, (list, tuple)) or len(states) != len(shapes):
        raise CheckpointError(f"{path}: resume file is damaged (the LSTM state has the wrong number of layers)")
    out = []
    for pair, (h_shape, c_shape) in zip(states, shapes):
        if (
            not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(isinstance(t, Tensor) and t.is_floating_point() for t in pair)
            or tuple(pair[0].shape) != h_shape or tuple(pair[1].shape) != c_shape
        ):
            raise CheckpointError(f"{path}: resume file is damaged (an LSTM state does not fit the model)")
        out.append((pair[0], pair[1]))
    return out


def check_optimizer(
    state: dict[str, Any], params: list[Tensor], path: Path, made: list[dict[str, Any]] | None = None
) -> None:
    """Refuse an optimiser state whose per-parameter tensors do not fit the parameters (a late RuntimeError else), or
    whose settings or statistics no optimiser could have reached (betas outside [0, 1), a negative second moment, an
    infinite weight decay): training from them would diverge, and be blamed on the learning rate. ``made``: the
    parameter groups of the optimiser the trainer made; the saved groups must have the same settings, and the same
    switches (``amsgrad``, ``fused``, ``differentiable``...), which loading them would turn on (a KeyError or
    PyTorch's own RuntimeError mid-run)."""
    groups, per_param = state.get("param_groups"), state.get("state")
    if not isinstance(groups, list) or not isinstance(per_param, dict):
        raise CheckpointError(f"{path}: resume file is damaged (the optimiser state is incomplete)")
    if made is not None and len(groups) != len(made):
        raise CheckpointError(f"{path}: resume file is damaged (the optimiser state is incomplete)")
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            raise CheckpointError(f"{path}: resume file is damaged (the optimiser state is incomplete)")
        if (wrong := _wrong_setting(group)) is not None:
            raise CheckpointError(f"{path}: resume file is damaged (optimiser {wrong!r} out of range)")
        if made is not None and (wrong := _other_setting(group, made[i])) is not None:
            raise CheckpointError(f"{path}: resume file is damaged (optimiser setting {wrong!r} is not this trainer's)")
    for index, values in per_param.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(values, dict):
            raise CheckpointError(f"{path}: resume file is damaged (optimiser state for an unknown parameter)")
        for name, value in values.items():
            if value is None:  # (SGD's momentum buffer before its first step)
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # a step count, in older versions
                if not _sensible(value):
                    raise CheckpointError(f"{path}: resume file is damaged (optimiser {name!r} out of range)")
                continue
            if not isinstance(value, Tensor) or not value.is_floating_point() or value.layout != torch.strided:
                raise CheckpointError(f"{path}: resume file is damaged (optimiser {name!r} is not a tensor of real"
                                      " numbers)")
            if value.dim() > 0 and value.shape != params[index].shape:
                raise CheckpointError(f"{path}: resume file is damaged (optimiser {name!r} does not fit its parameter)")
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{path}: resume file holds non-finite optimiser state; it cannot be continued")
            if name in _NEVER_NEGATIVE and bool((value < 0).any()):
                raise CheckpointError(f"{path}: resume file is damaged (optimiser {name!r} is negative)")


_NEVER_NEGATIVE = ("step", "exp_avg_sq", "max_exp_avg_sq")  # a count, and running means of squares


def _other_setting(group: dict[str, Any], made: dict[str, Any]) -> str | None:
    """A switch the saved ``group`` sets otherwise than the trainer's own optimiser (``made``), or a number setting it
    lacks (``eps``: a KeyError at the first step). A missing switch is PyTorch's default (files of older versions);
    a number is only checked for range (the learning rate is the schedule's)."""
    for key, value in made.items():
        switch = isinstance(value, bool) or value is None
        if key != "params" and (key not in group and not switch or key in group and switch and group[key] is not value):
            return key
    return None


def _wrong_setting(group: dict[str, Any]) -> str | None:
    """The setting of an optimiser parameter group that AdamW or SGD could not have been run with, if any."""
    for key in ("lr", "eps", "weight_decay", "momentum", "dampening"):
        if key in group and not _sensible(group[key]) or key == "eps" and group.get(key) == 0:
            return key
    betas = group.get("betas", (0.0, 0.0))
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(_sensible(b) and b < 1 for b in betas):
        return "betas"
    if group.get("maximize", False) is not False:  # this trainer only ever minimises its loss
        return "maximize"
    return None


def restore_rng(rng: Any, device: torch.device, path: Path) -> None:
    if not isinstance(rng, dict) or not isinstance(rng.get("cpu"), Tensor):
        raise CheckpointError(f"{path}: resume file is damaged (no random-number state)")
    try:
        torch.set_rng_state(rng["cpu"])
        if isinstance(rng.get("cuda"), Tensor) and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
    except (RuntimeError, TypeError, ValueError):
        raise CheckpointError(f"{path}: resume file is damaged (a bad random-number state)") from None


def differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between the inputs a run was started on (``saved``) and those of the command resuming it.

    Both map a name people recognise (``--hidden-dim``, ``corpus``) to a value; only names in ``wanted`` are
    compared (an option the user did not type is not a difference), and a name the saved run does not know is
    skipped (files from before it was recorded)."""
    found = []
    for name, value in wanted.items():
        if name not in saved:
            continue
        if saved[name] != value:
            if name in ("corpus", "validation text"):
                found.append(f"the {name} changed since the run began")
            else:
                found.append(f"{name} {_show(value)} (the saved run: {_show(saved[name])})")
    return found


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def merge_metadata(first: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a resumed run: the run's identity is its first command; the resumptions are listed after."""
    resumed = first.get("resumed")
    resumed = [*resumed] if isinstance(resumed, list) else []
    kept = ("name", "created", "command", "fine_tuned_from", "added_words")  # what the run began as
    merged = {**new, **{k: first[k] for k in kept if k in first}}
    merged["resumed"] = [*resumed, new.get("created")]
    return merged


__all__ = [
    "check_optimizer",
    "check_state",
    "check_training",
    "differences",
    "merge_metadata",
    "restore_rng",
    "resume_path",
]
