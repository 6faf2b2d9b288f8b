"""Self-describing model files: save atomically, load safely.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and dicts::

    {"format": "autocomplete-lstm", "format_version": 1,
     "model_config": {...}, "tokenizer": {...}, "vocab": {...},
     "weights": {name: tensor}, "metadata": {...}}

It is read with ``weights_only=True``, so a file that smuggles code is refused instead of run. Every way a file can
be wrong (missing, truncated, foreign, newer, inconsistent) becomes a :class:`CheckpointError` naming the file.
Saving writes a temporary file next to the target, fsyncs it and renames it over the target, so an interrupted save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autocomplete.errors import CheckpointError, ConfigError
from autocomplete.model import LSTMLanguageModel, ModelConfig
from autocomplete.tokenizer import Tokenizer, TokenizerConfig
from autocomplete.vocab import Vocab

FORMAT = "autocomplete-lstm"
FORMAT_VERSION = 1


@dataclass
class LanguageModel:
    """Everything needed to turn text into predictions: network, vocabulary, tokenizer and where they came from."""

    model: LSTMLanguageModel
    vocab: Vocab
    tokenizer: Tokenizer
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or (self.path.stem if self.path else "model"))


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(file_object)`` on a temp file in ``path``'s folder (opened with ``mode``), then rename it over
    ``path``: readers see the old file or the whole new one, and a failure or a kill leaves the old one."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600; a model file should read like any other file
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_writable(path: Path) -> None:
    """Fail now, not after hours of training, if ``path`` cannot be written."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a file name for the model")
    if not directory.is_dir():
        raise CheckpointError(f"{path}: folder {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write here ({e.strerror or e})") from None


def to_payload(lm: LanguageModel, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The checkpoint dictionary for ``lm``; ``dtype`` (e.g. float16) shrinks floating-point weights for shipping."""
    weights = {}
    for name, tensor in lm.model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        weights[name] = tensor.clone()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": lm.model.config.to_dict(),
        "tokenizer": lm.tokenizer.config.to_dict(),
        "vocab": lm.vocab.to_dict(),
        "weights": weights,
        "metadata": json.loads(json.dumps(lm.metadata, default=str)),  # plain types only: loadable safely
    }


def save(lm: LanguageModel, path: Path | str, dtype: torch.dtype | None = None) -> None:
    save_payload(to_payload(lm, dtype), Path(path))


def save_payload(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` atomically; a full disk or a vanished folder is a :class:`CheckpointError` naming ``path``
    (the previous file at ``path``, if any, is left as it was)."""
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except OSError as e:
        raise CheckpointError(f"{path}: could not save ({e.strerror or e}); the previous file is unchanged") from None


def read_payload(
    path: Path | str, kind: str = "model", fmt: str = FORMAT, version: int = FORMAT_VERSION
) -> dict[str, Any]:
    """Load a checkpoint-like file of format ``fmt`` safely (no code execution); errors name the file and the
    problem. ``version`` is the newest format version this program reads."""
    newest = version
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such {kind} file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a {kind} file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols before refusing them
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: refusing to load: the file contains Python objects or code, not just weights"
            ) from None
        raise CheckpointError(f"{path}: not a valid {kind} file (corrupt pickle data)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as e:
        reason = "truncated or corrupt" if _looks_truncated(e) else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path}: not a valid {kind} file ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not an autocomplete {kind} (foreign PyTorch file)")
    version = payload.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: {kind} file has no format version")
    if version > newest:
        raise CheckpointError(
            f"{path}: written by a newer autocomplete (format {version}, this version reads up to {newest});"
            " upgrade autocomplete"
        )
    return payload


def _looks_truncated(error: BaseException) -> bool:
    text = str(error).lower()
    return any(s in text for s in ("central directory", "truncat", "eof", "failed finding", "invalid header", "zip"))


def from_payload(payload: dict[str, Any], path: Path | None = None) -> LanguageModel:
    where = f"{path}: " if path else ""
    try:
        config = ModelConfig.from_dict(payload["model_config"])
        vocab = Vocab.from_dict(payload["vocab"])
        tokenizer = Tokenizer(TokenizerConfig(**payload["tokenizer"]))
        weights = payload["weights"]
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{where}model file is incomplete or inconsistent ({e})") from None
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{where}vocabulary has {len(vocab)} words but the weights expect {config.vocab_size}"
        )
    model = LSTMLanguageModel(config)
    try:
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
        model.load_state_dict(weights)
    except (RuntimeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}weights do not match the model settings ({first})") from None
    model.eval()
    return LanguageModel(model, vocab, tokenizer, dict(payload.get("metadata") or {}), path)


def load(path: Path | str) -> LanguageModel:
    """Load a model file written by :func:`save`; raises :class:`CheckpointError` with one clear line."""
    path = Path(path)
    return from_payload(read_payload(path), path)
