"""Tokenise a corpus once: a cache of vocabularies and token-id files, keyed by everything that produced them.

A corpus larger than memory is trained on from disk (:class:`~autocomplete.data.TokenFile`), and tokenising it is the
slowest part of a restart, so both products of a pass over the text are kept in a cache folder (``--cache-dir``;
by default ``token-cache`` in the user's data directory)::

    <key>.tokens       native int32 ids: the training stream, then the validation stream
    <key>.json         what the ids file holds: counts, corpus statistics, and the inputs of the key
    <key>.vocab.json   a vocabulary built from the corpus

A key is a hash of everything that decides the result: each source's absolute path, size and modification time
(standard input by its content) and style, the tokenizer settings, the utterance-break mode, the cache format and the package
version; for ids also the validation split and the vocabulary (tokens, counts, case folding); for a vocabulary its
size limits. Change any of them and the key changes, so a stale entry is never read. Old entries are not deleted
behind the user's back: ``autocomplete cache`` lists them (size, corpus, last use) and ``autocomplete cache --clear
[--older-than DAYS]`` removes them, skipping the entries a running training is reading (it holds a shared lock on
each entry it uses until it exits).

Writes are atomic. Ids stream into a temporary file in the cache folder that is renamed into place only when
complete, and the small header is written (atomically) after it: the header is the commit mark, so a killed run
leaves no entry or a whole one. A lock file per key serialises builders of the same entry (the ranks of a ``torchrun``
group, two runs on one corpus): the first tokenises, the others wait and then read its result. On a platform without
``fcntl`` there is no lock; atomic renames still keep every entry whole, at the cost of duplicated work.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from autocomplete import data, paths
from autocomplete.atomic import atomic_write
from autocomplete.data import Breaks, Corpus, CorpusStats, Source, TokenFile
from autocomplete.errors import ConfigError
from autocomplete.tokenizer import Tokenizer
from autocomplete.vocab import Vocab

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = "autocomplete-tokens"
FORMAT_VERSION = 6  # bump when the ids of a text could change (tokenizer, encoding, file layout); 5: accents composed;
# 6: Windows-1252 and UTF-16 files read as such
_SCAN_CHUNK = 1 << 24  # bytes checked at a time when an ids file is verified
_COPY_CHUNK = 1 << 22  # bytes moved at a time when splitting off validation tails


def default_cache_dir() -> Path:
    return paths.data_dir() / "token-cache"


def _package_version() -> str:
    try:
        return metadata.version("autocomplete")
    except metadata.PackageNotFoundError:
        return "unknown"


def _identity(source: Source) -> dict[str, object]:
    """The source's fingerprint, plus the style its utterances are marked with (absent when none: unstyled keys are
    unchanged)."""
    found = data.fingerprint(source)
    return found if source.style is None else {**found, "style": source.style}


def _digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def vocab_digest(vocab: Vocab) -> str:
    """A hash of everything in ``vocab`` that decides the ids of a text."""
    return _digest(vocab.to_dict())


class TokenCache:
    """Cached vocabularies and token-id files in one folder; ``log`` hears what is built and what is reused."""

    def __init__(self, folder: Path | None = None, log: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.log = log or (lambda message: None)
        self._in_use: list[BinaryIO] = []  # lock files held shared while this process trains from their entries

    def release(self) -> None:
        """Let ``remove`` delete the entries this object is reading (closing their shared locks)."""
        for handle in self._in_use:
            handle.close()
        self._in_use.clear()

    def entries(self) -> list[CacheEntry]:
        """Every entry in the folder, most recently used first; unfinished files left by killed runs included."""
        groups: dict[tuple[str, str], list[Path]] = {}
        try:
            names = list(self.folder.iterdir())
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ConfigError(f"{self.folder}: cannot read the token cache folder ({e.strerror or e})") from None
        for path in names:
            key, kind = _entry_of(path.name)
            if key:
                groups.setdefault((key, kind), []).append(path)
        found = []
        for (key, kind), files in groups.items():
            stats = [(f, st) for f in files if (st := _stat(f)) is not None]
            if all(f.name.endswith((".lock", ".use")) for f, _ in stats):  # empty lock files: no entry (yet)
                continue
            header = self._read_json(self.folder / (f"{key}.json" if kind == "token ids" else f"{key}.vocab.json"))
            found.append(CacheEntry(
                key=key,
                kind=kind,
                files=tuple(sorted(f for f, _ in stats)),
                size=sum(st.st_size for _, st in stats),
                last_used=max(st.st_mtime for _, st in stats),
                corpus=_describe_corpus(header),
            ))
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def remove(self, entries: Sequence[CacheEntry]) -> tuple[list[CacheEntry], list[CacheEntry]]:
        """Delete ``entries`` (removed, skipped): an entry a running training holds is skipped, never broken."""
        removed, skipped = [], []
        for entry in entries:
            locks = [f for f in entry.files if f.name.endswith((".lock", ".use"))]
            # a temporary file may be one a build is writing right now: its entry's build lock says so
            guards = sorted(self.folder.glob(f"{entry.key}.*.lock")) if entry.kind == "unfinished" else locks
            with _try_exclusive(guards) as free:
                if not free:
                    skipped.append(entry)
                    continue
                for f in entry.files:
                    if f not in locks:
                        f.unlink(missing_ok=True)
                for f in locks:
                    f.unlink(missing_ok=True)
            removed.append(entry)
        return removed, skipped

    # ---- public API -------------------------------------------------------------------------------------------

    def vocab(
        self,
        sources: Sequence[Source],
        tokenizer: Tokenizer,
        breaks: Breaks = "auto",
        max_size: int | None = None,
        min_count: int = 1,
    ) -> Vocab:
        """:func:`~autocomplete.data.build_vocab`, read from the cache when this corpus was counted before."""
        inputs = self._inputs(sources, tokenizer, breaks) | {"max_size": max_size, "min_count": min_count}
        path = self._path(_digest(inputs), ".vocab.json")
        with self._locked(path):
            cached, problem = self._load_json(path)
            if cached is not None and cached.get("inputs") != inputs:
                problem = "its inputs do not match its name"
            elif cached is not None:
                try:
                    vocab = Vocab.from_dict(cached["vocab"])
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    problem = f"a bad vocabulary: {e}"
                else:
                    self.log(f"vocabulary from the cache ({path})")
                    _touch(path)
                    return vocab
            if problem:
                self.log(f"{path}: damaged token cache entry ({problem}); building it again")
            self.log(f"building the vocabulary from {len(sources)} file(s)…")
            vocab = data.build_vocab(sources, tokenizer, breaks, max_size, min_count)
            self._write_json(path, {"format": FORMAT, "inputs": inputs, "vocab": vocab.to_dict()})
        return vocab

    def corpus(
        self,
        sources: Sequence[Source],
        tokenizer: Tokenizer,
        vocab: Vocab,
        breaks: Breaks = "auto",
        valid_sources: Sequence[Source] = (),
        valid_fraction: float = 0.0,
    ) -> Corpus:
        """:func:`~autocomplete.data.load_corpus` with the ids on disk: the same streams, as :class:`TokenFile`\\ s."""
        inputs = self._inputs(sources, tokenizer, breaks) | {
            "valid_sources": [_identity(s) for s in valid_sources],
            "valid_fraction": 0.0 if valid_sources else valid_fraction,
            "vocab": vocab_digest(vocab),
        }
        key = _digest(inputs)
        tokens, header_path = self._path(key, ".tokens"), self._path(key, ".json")
        with self._locked(tokens, keep_shared=True):  # shared until this process exits: its ids are read from disk
            header, problem = self._read_header(header_path, tokens, inputs, len(vocab))
            if header is not None:
                self.log(f"token ids from the cache ({tokens})")
                _touch(header_path)
            else:
                if problem:
                    self.log(f"{tokens}: damaged token cache entry ({problem}); tokenising again")
                self.log(f"tokenising {len(sources) + len(valid_sources)} file(s) into {tokens}…")
                try:
                    header = self._build(
                        tokens, inputs, sources, tokenizer, vocab, breaks, valid_sources, valid_fraction
                    )
                except OSError as e:
                    raise ConfigError(f"{tokens}: cannot write the token cache ({e.strerror or e})") from None
                self._write_json(header_path, header)
        n_train, n_valid = header["train_tokens"], header["valid_tokens"]
        train = TokenFile(tokens, 0, n_train)
        valid = TokenFile(tokens, n_train, n_train + n_valid) if n_valid else None
        return Corpus(train, valid, CorpusStats(**header["stats"]))

    # ---- building -------------------------------------------------------------------------------------------

    def _build(
        self,
        target: Path,
        inputs: dict[str, Any],
        sources: Sequence[Source],
        tokenizer: Tokenizer,
        vocab: Vocab,
        breaks: Breaks,
        valid_sources: Sequence[Source],
        valid_fraction: float,
    ) -> dict[str, Any]:
        """Encode into a temporary file, laid out like load_corpus's streams, and rename it to ``target``.

        Memory stays bounded: ids are written as they come, and a validation tail (known only once a file is done:
        :class:`~autocomplete.data.ValidationSplit`) is moved from the training file to a side file in chunks, the
        training file truncated behind it.
        """
        stats = CorpusStats()
        split = valid_fraction > 0 and not valid_sources
        n_train = n_valid = 0

        def encode(train: BinaryIO, split: bool = split) -> None:
            nonlocal n_train, n_valid, stats
            tails = data.ValidationSplit(valid_fraction if split else 0.0)
            with tempfile.TemporaryFile(dir=self.folder) as valid:
                for i, source in enumerate(sources):
                    n = 0
                    for part in data.iter_source_ids(source, tokenizer, vocab, breaks, stats):
                        part.tofile(train)
                        n += len(part)
                    n_train += n
                    held = tails.after(n, last=i == len(sources) - 1)
                    if held:
                        _copy(train, (n_train - held) * TokenFile.ITEMSIZE, held * TokenFile.ITEMSIZE, valid)
                        train.truncate((n_train - held) * TokenFile.ITEMSIZE)
                        train.seek(0, os.SEEK_END)
                        n_train, n_valid = n_train - held, n_valid + held
                if split and n_valid < data.MIN_VALID_TOKENS:
                    # too little to validate on: load_corpus trains on every token then; so do these ids. Only a
                    # tiny text gets here, so encoding it once more costs nothing.
                    train.seek(0)
                    train.truncate()
                    n_train = n_valid = 0
                    stats = CorpusStats()
                    encode(train, split=False)
                    return
                for source in valid_sources:
                    for part in data.iter_source_ids(source, tokenizer, vocab, breaks, CorpusStats()):
                        part.tofile(valid)
                        n_valid += len(part)
                data.check_trainable(n_train, sources)
                if n_valid < data.MIN_VALID_TOKENS:
                    n_valid = 0
                else:
                    _copy(valid, 0, n_valid * TokenFile.ITEMSIZE, train)

        atomic_write(target, encode, mode="w+b")  # read back while written: validation tails move to a side file
        checksum, _, _ = _scan(target)  # just written: read back from the page cache
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "dtype": "int32",
            "byteorder": sys.byteorder,
            "train_tokens": n_train,
            "valid_tokens": n_valid,
            "crc32": checksum,
            "stats": asdict(stats),
            "inputs": inputs,
        }

    # ---- files ----------------------------------------------------------------------------------------------

    def _inputs(self, sources: Sequence[Source], tokenizer: Tokenizer, breaks: Breaks) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "package_version": _package_version(),
            "max_segment": data.MAX_SEGMENT,
            "sources": [_identity(s) for s in sources],
            "tokenizer": tokenizer.config.to_dict(),
            "breaks": breaks,
        }

    def _path(self, key: str, suffix: str) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{self.folder}: cannot create the token cache folder ({e.strerror or e})") from None
        return self.folder / f"{key}{suffix}"

    def _read_header(
        self, path: Path, tokens: Path, inputs: dict[str, Any], vocab_size: int
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(the header, None) when it commits a whole, intact ids file for ``inputs``; (None, None) when there is
        no entry yet; (None, what is wrong) for a damaged one. The ids are verified in one pass (their CRC-32 and
        every id inside the vocabulary; a few hundred ms per GB, once per run) so that a flipped bit is rebuilt
        now instead of ending a training hours later."""
        header, problem = self._load_json(path)
        if header is None:
            return None, problem
        if header.get("inputs") != inputs or header.get("version") != FORMAT_VERSION:
            return None, "its header does not match its name"
        if header.get("byteorder") != sys.byteorder or header.get("dtype") != "int32":
            return None, None  # written on another kind of machine: not damaged, just not ours
        counts = [header.get(k) for k in ("train_tokens", "valid_tokens")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            return None, "bad token counts in its header"
        total = sum(cast(list[int], counts))  # ints, as just checked
        try:
            CorpusStats(**header["stats"])
        except (KeyError, TypeError):
            return None, "bad statistics in its header"
        try:
            size = tokens.stat().st_size
        except OSError:
            return None, "its ids file is missing"
        if size != total * TokenFile.ITEMSIZE:
            return None, "its ids file does not have the size its header says"
        checksum, low, high = _scan(tokens)
        if checksum != header.get("crc32"):
            return None, "its ids do not match their checksum"
        if total and (low < 0 or high >= vocab_size):
            return None, f"ids outside the vocabulary of {vocab_size:,} words"
        return header, None

    @staticmethod
    def _load_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(the value, None); (None, None) when there is no file; (None, what is wrong) when it cannot be used."""
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError) as e:
            return None, f"unreadable: {getattr(e, 'strerror', None) or e}"
        try:
            value = json.loads(text)
        except ValueError:
            return None, "not valid JSON"
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            return None, "not a token cache file"
        return value, None

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and value.get("format") == FORMAT else None

    def _write_json(self, path: Path, value: dict[str, Any]) -> None:
        try:
            atomic_write(path, lambda f: f.write(json.dumps(value).encode("utf-8")))
        except OSError as e:
            raise ConfigError(f"{path}: cannot write the token cache ({e.strerror or e})") from None

    @contextmanager
    def _locked(self, path: Path, keep_shared: bool = False) -> Iterator[None]:
        """Hold an exclusive lock on ``path``'s entry (a ``.lock`` file beside it) while building or reading it;
        ``keep_shared`` then keeps a shared lock on a second file (``.use``) until :meth:`release` or the end of the
        process: builders only ever wait on the first, :meth:`remove` also needs the second."""
        if fcntl is None:
            yield
            return
        try:
            handle = open(str(path) + ".lock", "a+b")
            in_use = open(str(path) + ".use", "a+b") if keep_shared else None
        except OSError as e:
            raise ConfigError(f"{self.folder}: cannot write the token cache here ({e.strerror or e})") from None
        with handle:
            if in_use is not None:
                fcntl.flock(in_use.fileno(), fcntl.LOCK_SH)
                self._in_use.append(in_use)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            except BaseException:
                if in_use is not None:  # nothing to read after all
                    self._in_use.remove(in_use)
                    in_use.close()
                raise
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class CacheEntry:
    """One cached product: a token-ids file with its header, or a vocabulary (``kind``), with its files."""

    key: str
    kind: str  # "token ids", "vocabulary" or "unfinished" (temporary files of a run that was killed)
    files: tuple[Path, ...]
    size: int  # bytes, all files
    last_used: float  # seconds since the epoch: built or last read
    corpus: str  # what it was made from, for people

    def age_days(self, now: float | None = None) -> float:
        return ((now if now is not None else time.time()) - self.last_used) / 86400


def _entry_of(name: str) -> tuple[str, str]:
    """(key, kind) of a cache file name; ("", "") for a file that is not the cache's."""
    if name.startswith(".") and name.endswith(".tmp"):  # .<key>.tokens.XXXX.tmp from atomic writes
        key = name[1:].split(".", 1)[0]
        return (key, "unfinished") if _is_key(key) else ("", "")
    key, _, rest = name.partition(".")
    if not _is_key(key):
        return "", ""
    if rest in ("tokens", "json", "tokens.lock", "tokens.use"):
        return key, "token ids"
    if rest in ("vocab.json", "vocab.json.lock"):
        return key, "vocabulary"
    return "", ""


def _is_key(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _describe_corpus(header: dict[str, Any] | None) -> str:
    sources = (header or {}).get("inputs", {}).get("sources")
    if not isinstance(sources, list) or not sources:
        return "?"
    names = [Path(str(s.get("path", "<stdin>"))).name if isinstance(s, dict) else "?" for s in sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} file(s): {shown}"


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:  # removed meanwhile (a build renaming its temporary file, another clear)
        return None


def _touch(path: Path) -> None:
    """Mark an entry as used now (its age decides what ``cache --clear --older-than`` removes)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache still works; it just ages
        pass


@contextmanager
def _try_exclusive(locks: Sequence[Path]) -> Iterator[bool]:
    """Whether nobody holds any of ``locks`` (then we hold them all until the block ends)."""
    with ExitStack() as stack:
        for lock in locks if fcntl is not None else ():
            try:
                handle = stack.enter_context(open(lock, "a+b"))
            except OSError:
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
        yield True


def _scan(path: Path) -> tuple[int, int, int]:
    """(CRC-32, smallest id, largest id) of an ids file, read a chunk at a time; (crc, 0, -1) for an empty one."""
    checksum, low, high = 0, None, None
    with open(path, "rb") as f:
        while block := f.read(_SCAN_CHUNK):
            checksum = zlib.crc32(block, checksum)
            ids = np.frombuffer(block, dtype=np.int32)
            if ids.size:
                low = int(ids.min()) if low is None else min(low, int(ids.min()))
                high = int(ids.max()) if high is None else max(high, int(ids.max()))
    return checksum, 0 if low is None else low, -1 if high is None else high


def _copy(src: BinaryIO, offset: int, size: int, dst: BinaryIO) -> None:
    """Append ``size`` bytes of ``src`` from ``offset`` to ``dst``, a chunk at a time."""
    src.seek(offset)
    while size > 0:
        block = src.read(min(size, _COPY_CHUNK))
        if not block:
            raise OSError("unexpected end of a temporary token file")
        dst.write(block)
        size -= len(block)


__all__ = ["FORMAT", "TokenCache", "default_cache_dir", "vocab_digest"]
