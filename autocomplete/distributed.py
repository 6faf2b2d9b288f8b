"""Processes of a ``torchrun`` group: which device each uses, joining and leaving the group, collectives.

``autocomplete train`` runs unchanged under ``torchrun``: every rank calls :func:`init_distributed`, trains on its
own shard, and the helpers here let all ranks take the same decision at the same step (:func:`any_rank`), add up
losses (:func:`all_reduce_sum`) and gather the per-rank state a resume file needs (:func:`gather_objects`). Outside
``torchrun`` they are no-ops over a single process. A collective that fails because a peer died is recognised by
:func:`lost_contact`, so the trainer can stop with one line instead of a traceback.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from autocomplete.devices import resolve_device
from autocomplete.errors import ConfigError, DistributedError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when launched under torchrun; otherwise a single process."""
    world = _environment_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist(), resolve_device(device_name)
    rank, local_rank = _environment_int("RANK", 0), _environment_int("LOCAL_RANK", 0)
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible);"
                " start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"cannot join the process group ({first_line(e)})") from None
    return Dist(rank, world, local_rank), device


def shutdown_distributed() -> None:
    """Leave the process group, so that torchrun sees every rank finish cleanly. Call once training is over."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # drop what still holds the group (a DistributedDataParallel reducer) before destroying it
        dist.destroy_process_group()


def environment_rank() -> int:
    """This process's rank in a torchrun group (0 outside one): known before the group is joined."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def environment_world() -> int:
    """Processes in this torchrun group (1 outside one): known before the group is joined."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not a number (set by torchrun; is the launch broken?)") from None


def lost_contact(error: RuntimeError) -> bool:
    """Whether ``error`` is a failed collective (gloo raises plain RuntimeErrors from inside backward)."""
    text = str(error).lower()
    return isinstance(error, dist.DistError) or any(
        s in text for s in ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "timed out")
    )


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def all_reduce_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj: Any, d: Dist) -> list[Any]:
    if not d.active:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def any_rank(flags: list[bool], d: Dist, device: torch.device) -> list[bool]:
    """Element-wise OR of ``flags`` over all ranks, so every rank takes the same decision at the same step."""
    if not d.active:
        return flags
    t = torch.tensor([int(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
