"""Which device a model runs on: the one checker behind ``train --device``, :class:`~autocomplete.train.TrainConfig`
and :func:`autocomplete.load`, so that a device that is not there is one clear line when it is asked for, never a
PyTorch assertion at the first tensor moved to it."""

from __future__ import annotations

import torch

from autocomplete.errors import ConfigError

CUDA_ONLY = "auto, cpu, cuda or cuda:N"  # the devices training runs on
WITH_MPS = "auto, cpu, cuda, cuda:N or mps"  # the devices a loaded model answers on


def resolve_device(device: object, *, mps: bool = False, instead: str = "--device cpu or auto") -> torch.device:
    """The device ``device`` (auto, cpu, cuda or cuda:N, and mps with ``mps``: a name or a :class:`torch.device`)
    stands for on this machine: auto is the GPU when CUDA has one, else the CPU. A name outside these, or a device
    this machine lacks, is a :class:`ConfigError` that says which ones there are (``instead``: what to ask for
    instead, in the caller's words); anything but text or a :class:`torch.device` is a :class:`TypeError`."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be str or torch.device, got {type(device).__name__}")
    index = device.removeprefix("cuda:") if device.startswith("cuda:") else None
    known = ("auto", "cpu", "cuda", "mps") if mps else ("auto", "cpu", "cuda")
    if device not in known and not (index and index.isascii() and index.isdigit()):
        raise ConfigError(f"unknown device {device!r}; expected {WITH_MPS if mps else CUDA_ONLY}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device 'mps' asked for, but no Apple GPU (MPS) is available (use {instead})")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available (use {instead})")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise ConfigError(
            f"device {device!r} asked for, but {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1})"
        )
    return torch.device(device)
