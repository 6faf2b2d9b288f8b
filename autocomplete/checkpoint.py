"""Self-describing model files: save atomically, load safely.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and dicts::

    {"format": "autocomplete-lstm", "format_version": 1,
     "model_config": {...}, "tokenizer": {...}, "vocab": {...},
     "weights": {name: tensor}, "metadata": {...}}

A file may store its weight matrices as int8 (``save(..., int8=True)``, ``autocomplete convert --to int8``, ``train
--int8``): each 2-D floating-point weight is kept as one int8 row per matrix row plus that row's scale (symmetric,
``w ≈ q · scale``, ``scale = max |row| / 127``), listed under ``"int8_scales"`` ``{name: (rows,) float32}``, and
dequantized to float32 at load. Such a file says ``format_version`` 2, so an older autocomplete refuses it with an
"upgrade" message instead of loading int8 numbers as weights; float files keep version 1.

It is read with ``weights_only=True``, so a file that smuggles code is refused instead of run. Every way a file can
be wrong (missing, unreadable, truncated, foreign, newer, inconsistent, weights that are not dense floating-point
or int8 numbers) becomes a :class:`CheckpointError` naming the file. Saving writes a temporary file next to the
target, fsyncs it and renames it over the target, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import pickletools
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autocomplete.atomic import atomic_write
from autocomplete.errors import CheckpointError, ConfigError, NewerFormatError
from autocomplete.model import LSTMLanguageModel, ModelConfig, parameter_shapes
from autocomplete.tokenizer import Tokenizer, TokenizerConfig
from autocomplete.vocab import Vocab

# a weight beyond this is damage: the shipped model's largest is 12.5, and the products of such weights with the
# model's inputs leave float32's range (a crafted int8 file loaded as a model whose every output was NaN)
MAX_WEIGHT = 1e6
FORMAT = "autocomplete-lstm"
FORMAT_VERSION = 1  # float weights (float32 or float16)
INT8_FORMAT_VERSION = 2  # weight matrices stored as int8 rows with per-row scales
READABLE_VERSION = INT8_FORMAT_VERSION  # the newest format this version reads


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


def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 (R, C), float32 scales (R,)) with ``weight ≈ q · scales[:, None]``; a row's error is at most half its
    scale (its largest magnitude / 254)."""
    weight = weight.detach().float()
    scales = weight.abs().amax(dim=1) / 127
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # an all-zero row stays zero
    q = torch.round(weight / scales.unsqueeze(1)).clamp_(-127, 127).to(torch.int8)
    return q, scales


def dequantize_rows(q: Tensor, scales: Tensor) -> Tensor:
    return q.float() * scales.float().unsqueeze(1)


def to_payload(lm: LanguageModel, dtype: torch.dtype | None = None, int8: bool = False) -> dict[str, Any]:
    """The checkpoint dictionary for ``lm``; ``dtype`` (e.g. float16) shrinks floating-point weights for shipping,
    ``int8`` stores every weight matrix as int8 rows with per-row scales (``dtype`` then applies to the rest)."""
    weights: dict[str, Tensor] = {}
    scales: dict[str, Tensor] = {}
    for name, tensor in lm.model.state_dict().items():
        tensor = tensor.detach().cpu()
        if int8 and tensor.is_floating_point() and tensor.dim() == 2:
            weights[name], scales[name] = quantize_rows(tensor)
            continue
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        weights[name] = tensor.clone()
    payload = {
        "format": FORMAT,
        "format_version": INT8_FORMAT_VERSION if scales else FORMAT_VERSION,
        "model_config": lm.model.config.to_dict(),
        "tokenizer": lm.tokenizer.config.to_dict(),
        "vocab": lm.vocab.to_dict(),
        "weights": weights,
        "metadata": json.loads(json.dumps(lm.metadata, default=str)),  # plain types only: loadable safely
    }
    if scales:
        payload["int8_scales"] = scales
    return payload


def save(lm: LanguageModel, path: Path | str, dtype: torch.dtype | None = None, int8: bool = False) -> None:
    save_payload(to_payload(lm, dtype, int8), Path(path))


def storage_of(payload: dict[str, Any]) -> str:
    """How a payload stores its weights, in words: ``int8 matrices (per-row scales), float16 rest``, ``float32``."""
    weights = payload.get("weights") or {}
    scaled = set(payload.get("int8_scales") or {})
    rest = sorted({str(t.dtype).removeprefix("torch.") for n, t in weights.items() if n not in scaled
                   and isinstance(t, Tensor) and t.is_floating_point()})
    if not scaled:
        return "/".join(rest) or "none"
    return "int8 matrices (per-row scales)" + (f", {'/'.join(rest)} rest" if rest else "")


def save_payload(payload: dict[str, Any], path: Path, private: bool = False) -> None:
    """Write ``payload`` atomically (``private``: readable by its user only); a full disk or a vanished folder is a
    :class:`CheckpointError` naming ``path`` (the previous file at ``path``, if any, is left as it was)."""
    kept = "; the previous file is unchanged" if os.path.exists(path) else ""
    try:
        atomic_write(path, lambda f: torch.save(payload, f), private=private)
    except OSError as e:
        raise CheckpointError(f"{path}: could not save ({e.strerror or e}){kept}") from None
    except RuntimeError as e:  # PyTorch's zip writer reports a failed write (a full disk) as its own error
        if not isinstance(e.__context__, OSError):
            raise
        why = e.__context__.strerror or e.__context__
        raise CheckpointError(f"{path}: could not save ({why}){kept}") from None


def replaceable_by_a_model(path: Path) -> bool:
    """Whether a model (or resume) file may be written over ``path``: nothing is there, it cannot be read (the write
    says what matters), it is empty, or it is what ``torch.save`` writes for one: a zip archive whose first entry is
    its pickle, naming this format in its first bytes (a model an old program left truncated is replaceable too)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return True
    return not head or head.startswith(b"PK\x03\x04") and b"/data.pkl" in head[:200] and FORMAT.encode() in head


def read_payload(
    path: Path | str, kind: str = "model", fmt: str = FORMAT, version: int | None = None
) -> dict[str, Any]:
    """Load a checkpoint-like file of format ``fmt`` safely (no code execution); errors name the file and the
    problem. ``version`` is the newest format version this program reads (default: the model files')."""
    newest = READABLE_VERSION if version is None else version
    path = as_path(path, kind)
    try:
        found = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {kind} file") from None
    except OSError as e:  # a name too long, a loop of symbolic links, a folder on the way that cannot be read
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(found.st_mode):
        raise CheckpointError(f"{path}: is a folder, not a {kind} file")
    if not stat.S_ISREG(found.st_mode):  # a pipe or a device: torch.load needs to seek, and a FIFO would block forever
        raise CheckpointError(f"{path}: is not a regular file; give the {kind} file itself")
    if found.st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:  # the system's refusals (permissions, an I/O error) apart from what the reader makes of the bytes
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    _refuse_compressed(path, kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols before refusing them
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _runs_code(e, path):
            raise CheckpointError(
                f"{path}: refused: the file tries to run code (pickled Python objects), not just weights"
            ) from None
        raise CheckpointError(f"{path}: not a valid {kind} file (corrupt pickle data)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a valid {kind} file (nested too deeply)") from None
    except OSError as e:  # the file could be opened: the reader's seek past a truncated end (EINVAL), for one
        reason = "truncated or corrupt" if e.errno is not None or _looks_truncated(e) else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path}: not a valid {kind} file ({reason})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as e:
        reason = "truncated or corrupt" if _looks_truncated(e) else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path}: not a valid {kind} file ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not an autocomplete {kind} (foreign PyTorch file)")
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: {kind} file has no valid format version ({version!r})")
    if version > newest:
        raise NewerFormatError(
            f"{path}: written by a newer autocomplete (format {version}, this version reads up to {newest});"
            " upgrade autocomplete"
        )
    return payload


def _refuse_compressed(path: Path, kind: str) -> None:
    """Refuse a zip archive with a compressed entry: ``torch.save`` stores every entry as it is, while
    ``torch.load`` would unpack a deflated one whole, to the size its header declares (a 5 KB file can unpack to
    gigabytes), before anything here could look at the tensor it holds. A file that is no zip archive, or a damaged
    one, is left to the reader, which says what is wrong with it."""
    try:
        with zipfile.ZipFile(path) as archive:
            packed = next((i for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED), None)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, RuntimeError):
        return
    if packed is not None:
        raise CheckpointError(
            f"{path}: refused: the {kind} file holds a compressed entry ({packed.filename!r}), which PyTorch never"
            " writes and which could unpack to any size"
        )


_CODE_OPS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def _runs_code(error: BaseException, path: Path) -> bool:
    """Whether ``weights_only`` refused the file because it names Python callables (to run while unpickling),
    rather than because it is damaged. A bare pickle stops the safe reader at its first unusual opcode, so it is
    walked here (``pickletools`` only reads opcodes; it runs nothing)."""
    text = str(error).lower()
    if any(s in text for s in ("global", "reduce", "blocked", "allowlist")):
        return True
    if zipfile.is_zipfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return any(op.name in _CODE_OPS for op, _, _ in pickletools.genops(f))
    except Exception:  # not a pickle after all: damaged  # noqa: BLE001
        return False


def _looks_truncated(error: BaseException) -> bool:
    text = str(error).lower()
    return any(s in text for s in ("central directory", "truncat", "eof", "failed finding", "invalid header", "zip"))


def from_payload(payload: dict[str, Any], path: Path | None = None) -> LanguageModel:
    """Build the model a payload describes. Every value is checked before it is trusted: the settings' types and
    ranges, the declared sizes against the stored tensors' shapes (before anything is allocated), how each tensor is
    stored (dense, in the file, floating-point or int8 with scales), finite weights and metadata of plain values;
    each problem is one :class:`CheckpointError` line."""
    where = f"{path}: " if path else ""
    try:
        config = ModelConfig.from_dict(_table(payload.get("model_config"), "model settings"))
        vocab = Vocab.from_dict(_table(payload.get("vocab"), "vocabulary", "is"))
        tokenizer = Tokenizer(TokenizerConfig.from_dict(_table(payload.get("tokenizer"), "tokenizer settings")))
        weights = _table(payload.get("weights"), "weights")
        metadata = check_metadata(payload.get("metadata"))
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{where}model file is incomplete or inconsistent ({_reason(e)})") from None
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{where}vocabulary has {len(vocab)} words but the weights expect {config.vocab_size}"
        )
    scales = payload.get("int8_scales")
    check_weights(config, weights, where, int8=set(scales) if isinstance(scales, dict) else set())
    if isinstance(scales, dict):
        for name, scale in scales.items():
            check_stored(f"the int8 scale tensor of {name!r}", scale, where)
    try:
        weights = _dequantized(weights, payload.get("int8_scales"))
    except ValueError as e:
        raise CheckpointError(f"{where}int8 weights are inconsistent ({e})") from None
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    for name, tensor in weights.items():  # finite as stored, but beyond float32 once scaled or read as float32
        if not tensor.is_floating_point() or not tensor.numel():
            continue
        scaled = isinstance(scales, dict) and name in scales
        largest = float(torch.linalg.vector_norm(tensor, math.inf))  # one pass, no copy; NaN or inf if any is
        if not math.isfinite(largest):
            how = "its int8 scales are applied" if scaled else "read as float32"
            raise CheckpointError(f"{where}refused: {name!r} holds numbers beyond float32's range once {how}")
        if largest > MAX_WEIGHT:  # finite, but its products with the inputs are not
            raise CheckpointError(f"{where}refused: {name!r} holds weights up to {largest:.3g}"
                                  f"{' once its int8 scales are applied' if scaled else ''}; a trained model's are a "
                                  f"few units (at most {MAX_WEIGHT:g} is read)")
    model = LSTMLanguageModel(config)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}weights do not match the model settings ({first})") from None
    model.eval()
    return LanguageModel(model, vocab, tokenizer, metadata, path)


def _table(value: Any, what: str, verb: str = "are") -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"the {what} {verb} missing" if value is None else f"the {what} {verb} not a table")
    return value


def _reason(error: BaseException) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


_FLOAT_TYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})  # weights PyTorch computes with
_FLOAT_NAMES = "float16, bfloat16, float32 or float64"


def check_stored(what: str, tensor: Any, where: str = "", int8: bool = False) -> None:
    """Refuse a stored tensor that is not what :func:`to_payload` writes: a dense tensor held in the file (not
    sparse, not on the ``meta`` device, which holds no numbers) of a floating-point type PyTorch computes with (or
    int8, for a matrix stored with per-row scales: ``int8``), every value of it in the file. Anything else (complex,
    integer, true/false, float8 values) is not a weight: it would be cast silently, warn, or fail deep inside PyTorch;
    a view stretched over fewer stored values (``expand``) would make loading allocate what the file never held."""
    if not isinstance(tensor, Tensor):
        raise CheckpointError(f"{where}weights do not match the model settings ({what} is not a tensor)")
    if tensor.layout != torch.strided:
        layout = str(tensor.layout).removeprefix("torch.")
        raise CheckpointError(f"{where}refused: {what} is stored as a {layout} tensor, not a dense one")
    if tensor.device.type != "cpu":
        raise CheckpointError(f"{where}refused: {what} is a {tensor.device.type} tensor, not numbers held in the file")
    if not (tensor.dtype in _FLOAT_TYPES or int8 and tensor.dtype == torch.int8):
        dtype = str(tensor.dtype).removeprefix("torch.")
        kinds = "float16, bfloat16, float32, float64 or int8 (with per-row scales)" if int8 else _FLOAT_NAMES
        raise CheckpointError(f"{where}refused: {what} holds {dtype} values, not {kinds} numbers")
    stored = tensor.untyped_storage().nbytes() // tensor.element_size()
    if stored < tensor.numel():  # a view stretched over a few numbers (``expand``, stride 0): not in the file
        raise CheckpointError(
            f"{where}refused: {what} has {tensor.numel():,} values but the file stores {stored:,} of them"
        )


def check_weights(
    config: ModelConfig, weights: dict[str, Any], where: str = "", int8: set[str] | frozenset[str] = frozenset()
) -> None:
    """Refuse weights whose names or shapes differ from what ``config`` builds, that are not stored as weights are
    (:func:`check_stored`; ``int8`` names the matrices stored as int8 rows), or that hold NaN or infinity.

    The expected shapes are computed (:func:`~autocomplete.model.parameter_shapes`), nothing is allocated: a file
    that declares twenty layers or a huge embedding but holds small tensors is refused here, not by running out of
    memory. So is one whose tensors have the declared shapes but not the numbers: views stretched over a few stored
    values, or several weights viewing one stored matrix (what the model is given must all be in the file)."""
    expected = parameter_shapes(config)
    owners: dict[int, str] = {}  # the weight stored in each storage, by its address
    for name, tensor in weights.items():
        check_stored(repr(name), tensor, where, int8=name in int8)
        storage = tensor.untyped_storage()
        if storage.nbytes():  # two weights viewing one stored matrix would each be given memory of their own
            if (other := owners.setdefault(storage.data_ptr(), name)) != name:
                raise CheckpointError(f"{where}refused: {name!r} and {other!r} are views of the same stored numbers")
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CheckpointError(
            f"{where}weights do not match the model settings ({len(missing)} missing, {len(unexpected)} unexpected;"
            f" {detail})"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise CheckpointError(
                f"{where}weights do not match the model settings ({name!r} is {tuple(weights[name].shape)}, "
                f"the settings say {shape})"
            )
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{where}holds non-finite weights (NaN or infinity in {name!r}): the training that wrote it diverged"
            )


_MAX_DEPTH = 16


def check_metadata(value: Any) -> dict[str, Any]:
    """Metadata as a table of plain values (text, numbers, true/false, lists, tables; NaN and infinity allowed):
    anything else is a :class:`ValueError` naming the entry."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"the metadata are a {type(value).__name__}, not a table")

    def check(item: Any, name: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError(f"metadata {name!r} is nested too deeply")
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"metadata {name!r} has a key that is not text")
                check(inner, key, depth + 1)
        elif isinstance(item, list):
            for inner in item:
                check(inner, name, depth + 1)
        elif not isinstance(item, (str, int, float, type(None))):
            raise ValueError(f"metadata {name!r} is a {type(item).__name__}")

    check(value, "metadata", 0)
    return dict(value)


def _dequantized(weights: dict[str, Any], scales: Any) -> dict[str, Any]:
    """``weights`` with every int8 matrix listed in ``scales`` turned back into float32."""
    if scales is None:
        return weights
    if not isinstance(scales, dict):
        raise ValueError("int8_scales is not a table of tensors")
    out = dict(weights)
    for name, scale in scales.items():
        q = weights.get(name)
        if not isinstance(q, Tensor) or not isinstance(scale, Tensor):
            raise ValueError(f"{name}: int8 scales without int8 weights")
        if q.dtype != torch.int8 or q.dim() != 2 or scale.shape != (q.size(0),) or not scale.is_floating_point():
            raise ValueError(f"{name}: expected int8 rows and one scale per row")
        if not bool(torch.isfinite(scale).all()):
            raise ValueError(f"{name}: NaN or infinite scales")
        out[name] = dequantize_rows(q, scale)
    return out


def as_path(value: object, what: str = "model") -> Path:
    """``value`` (text or a path-like object) as a :class:`~pathlib.Path`; anything else (bytes, a number) is a
    :class:`TypeError` that says a path was expected, and empty text (``os.environ.get("MODEL", "")``, which
    :class:`~pathlib.Path` would read as the current folder) a :class:`CheckpointError` that says so."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text == "":
            raise CheckpointError(f"an empty path where a {what} file belongs")
        if isinstance(text, str):
            return Path(text)
    raise TypeError(f"{what} must be a path (str or pathlib.Path), got {type(value).__name__}")


def load(path: Path | str) -> LanguageModel:
    """Load a model file written by :func:`save`; raises :class:`CheckpointError` with one clear line."""
    path = as_path(path)
    return from_payload(read_payload(path), path)
