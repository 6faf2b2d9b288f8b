"""Corpora → token-id streams → batches for truncated back-propagation through time.

A corpus is a list of sources: text files, folders (every ``*.txt`` below them, sorted), or ``-`` for standard input.
Text is read in binary chunks as UTF-8, as UTF-16 after its byte-order mark, or, when a file's bytes are mostly not
UTF-8, as Windows-1252 (see :mod:`autocomplete.decoding`); undecodable bytes are replaced and counted, binary files
are refused, and an enormous line is split at whitespace so memory stays bounded.

Utterance boundaries (:data:`~autocomplete.tokenizer.EOS`) come from line breaks. Two layouts exist in the wild:
one utterance per line (dialogue corpora, PTB) and prose hard-wrapped at ~70 columns with blank lines between
paragraphs (Project Gutenberg books). ``breaks="auto"`` looks at each file's line lengths and picks ``line`` or
``paragraph``; either can be forced.

Styles: an input written ``PATH=STYLE`` (``books/=prose``, ``chats.txt=dialogue``) gives every utterance of its
files that style; the vocabulary reserves one token per style and each utterance begins with its style's token
(:meth:`~autocomplete.vocab.Vocab.start_ids`). Inputs without ``=STYLE`` add no token, as before.

An encoded stream lives in memory (a tensor, :func:`load_corpus`) or on disk (a :class:`TokenFile`, written once by
:mod:`autocomplete.token_cache`); :class:`BatchedStream` cuts either into the same training windows.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import io
import os
import stat
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import torch
from torch import Tensor

from autocomplete import decoding
from autocomplete.errors import ConfigError, CorpusError
from autocomplete.tokenizer import EOS, Tokenizer
from autocomplete.vocab import EOS_ID, UNK_ID, Vocab, check_style_name

Breaks = Literal["auto", "line", "paragraph"]
MAX_SEGMENT = 1 << 20  # characters; longer lines are cut at whitespace into pieces of about this size
SPOOL_CHUNK = 1 << 20  # bytes of a stream copied (and checked for NUL) at a time
_SNIFF_LINES = 2000
MIN_VALID_TOKENS = 2  # a held-out tail shorter than this is trained on instead (one token predicts nothing)
MIN_TAIL = 50  # tokens: a validation tail is cut once the text since the last cut gives at least this many


@dataclass
class CorpusStats:
    files: int = 0
    utterances: int = 0
    tokens: int = 0
    unknown: int = 0  # tokens outside the vocabulary, encoded as <unk>
    replaced_bytes: int = 0  # undecodable bytes replaced by U+FFFD
    files_with_replacements: list[str] = field(default_factory=list)
    legacy_files: list[str] = field(default_factory=list)  # files not UTF-8, read as Windows-1252 (see decoding)
    layouts: dict[str, str] = field(default_factory=dict)  # file → "line" or "paragraph"
    bytes_read: int = 0  # of the files, as read so far (what a progress bar of a long read follows)


class Source:
    """One corpus input. Standard input and pipes are spooled to a temporary file (``temporary``) so that they can
    be read more than once; :func:`remove_spools` (or :func:`opened_sources`) deletes those copies."""

    def __init__(self, path: Path | None, name: str, temporary: bool = False, style: str | None = None) -> None:
        self.path = path
        self.name = name
        self.temporary = temporary  # a spooled copy of a stream: identified by content, deleted after use
        self.style = style  # the style of every utterance in it (see the module doc), or None

    def open(self) -> BinaryIO:
        assert self.path is not None
        return open(self.path, "rb")

    def __repr__(self) -> str:
        return f"Source({self.name!r})"


def split_style(item: str | Path) -> tuple[str, str | None]:
    """``"books/=prose"`` → ``("books/", "prose")``. A path that exists as written keeps any ``=`` in its name."""
    text = str(item)
    path, sep, style = text.rpartition("=")
    if not sep or not path or Path(text).exists():
        return text, None
    check_style_name(style)
    return path, style


def resolve_sources(
    inputs: Sequence[str | Path],
    stdin: BinaryIO | None = None,
    interleave: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[Source]:
    """Expand files, folders and ``-`` (each optionally ``=STYLE``) into readable sources, or raise
    :class:`CorpusError` naming the problem.

    What a folder holds that cannot be read (a subfolder or a file without permission) is skipped, and ``warn`` is
    told so in one line naming them; an input named itself that cannot be read is an error.

    Standard input and anything that cannot be read twice (a pipe such as ``<(zcat corpus.gz)``, a device) is
    copied once into a temporary file; the caller removes those copies with :func:`remove_spools`.

    ``interleave`` takes the inputs' files in turn (the first file of each input, then the second of each...), so that
    a corpus of several folders, one per domain or style, alternates between them all along the training stream
    instead of one domain after the other: every switch teaches the model what a style token means."""
    if not inputs:
        raise CorpusError("no corpus given")
    groups: list[list[Source]] = []
    skipped: list[str] = []  # what folders hold that cannot be read: "path (reason)"
    try:
        for item in inputs:
            try:
                text, style = split_style(item)
            except ConfigError as e:
                raise CorpusError(f"{item}: {e}") from None
            group = _expand(text, stdin, skipped)
            for source in group:
                source.style = style
            groups.append(group)
        if interleave:
            sources = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
        else:
            sources = [source for group in groups for source in group]
        for source in sources:
            _check_text(source)
    except BaseException:
        remove_spools([source for group in groups for source in group])
        raise
    if skipped and warn is not None:
        shown = ", ".join(skipped[:3]) + (f" … ({len(skipped)} in all)" if len(skipped) > 3 else "")
        warn(f"cannot read {shown}: skipped")
    return sources


def _expand(item: str | Path, stdin: BinaryIO | None, skipped: list[str]) -> list[Source]:
    if str(item) == "-":
        if stdin is None and sys.stdin is None:  # started with standard input closed (`<&-`)
            raise CorpusError("-: standard input is closed: there is nothing to read")
        return [_spool(stdin or sys.stdin.buffer, "<stdin>")]
    path = Path(item)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file or folder") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        files = _text_files(path, skipped)
        if not files:
            raise CorpusError(f"{path}: folder holds no .txt files")
        return [Source(p, str(p)) for p in files]
    if stat.S_ISREG(mode):
        return [Source(path, str(path))]
    try:  # a pipe, a socket or a device: read it once, into a file that can be read again
        with open(path, "rb") as stream:
            return [_spool(stream, str(path))]
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror or e})") from None


_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a link to nothing (or to itself), a file removed meanwhile


def _text_files(folder: Path, skipped: list[str]) -> list[Path]:
    """Every ``*.txt`` file below ``folder``, sorted; links to folders are not followed. A subfolder or file it holds
    that cannot be read is added to ``skipped`` as ``path (reason)``; ``folder`` itself unreadable is an error."""
    unreadable: list[OSError] = []
    files: list[Path] = []
    for root, _, names in os.walk(folder, onerror=unreadable.append):
        for name in names:
            if not name.endswith(".txt"):
                continue
            path = Path(root, name)
            try:
                if stat.S_ISREG(path.stat().st_mode):
                    open(path, "rb").close()  # readable: found now, not when its text is wanted
                    files.append(path)
            except OSError as e:
                if e.errno not in _GONE:
                    unreadable.append(e)
    for error in unreadable:
        reason = error.strerror or str(error)
        if error.filename == os.fspath(folder):
            raise CorpusError(f"{folder}: cannot read ({reason})")
        skipped.append(f"{error.filename} ({reason})")
    return sorted(files)


def _spool(stream: BinaryIO, name: str) -> Source:
    """Copy ``stream`` into a temporary file, a chunk at a time, refusing binary data at the first chunk that holds a
    NUL byte (in UTF-16, a NUL code unit): ``/dev/zero`` or a binary pipe must not fill the disk before
    :func:`_check_text` reads the copy. A text stream that never ends (``yes |``) grows the copy until the disk is
    full, and then ends in a :class:`CorpusError`.
    However the copy ends early, it is removed."""
    try:
        tmp = tempfile.NamedTemporaryFile(prefix="autocomplete-stdin-", suffix=".txt", delete=False)
    except OSError as e:
        raise CorpusError(f"{name}: cannot make a copy to read ({e.strerror or e})") from None
    utf16: bool | None = None  # decided by the first chunk's byte-order mark
    odd = b""  # in UTF-16, the last byte of a chunk cut inside a code unit
    try:
        with tmp:
            while True:
                try:
                    chunk = stream.read(SPOOL_CHUNK)
                except OSError as e:
                    raise CorpusError(f"{name}: cannot read ({e.strerror or e})") from None
                if not chunk:
                    break
                if utf16 is None:
                    utf16 = decoding.is_utf16(chunk)
                units = odd + chunk if utf16 else chunk
                odd = units[len(units) // 2 * 2 :] if utf16 else b""
                if decoding.looks_binary(units, utf16):
                    raise CorpusError(f"{name}: looks like a binary file, not text")
                try:
                    tmp.write(chunk)
                except OSError as e:
                    raise CorpusError(f"{name}: cannot copy it to {tmp.name} ({e.strerror or e})") from None
    except OSError as e:  # closing the copy flushes its last bytes: a full disk can show here too
        Path(tmp.name).unlink(missing_ok=True)
        raise CorpusError(f"{name}: cannot copy it to {tmp.name} ({e.strerror or e})") from None
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return Source(Path(tmp.name), name, temporary=True)


def fingerprint(source: Source) -> dict[str, object]:
    """What identifies a source's content cheaply: path, size and mtime; a spooled stream by its bytes."""
    assert source.path is not None
    if source.temporary:
        digest = hashlib.sha256()
        with source.open() as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return {"stdin_sha256": digest.hexdigest()}
    st = source.path.stat()
    return {"path": str(source.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remove_spools(sources: Iterable[Source]) -> None:
    """Delete the temporary copies that :func:`resolve_sources` made of streams (the other files are untouched)."""
    for source in sources:
        if source.temporary and source.path is not None:
            source.path.unlink(missing_ok=True)


@contextmanager
def opened_sources(
    inputs: Sequence[str | Path],
    stdin: BinaryIO | None = None,
    interleave: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Iterator[list[Source]]:
    """:func:`resolve_sources` for the length of a ``with`` block: spooled copies are removed however it ends."""
    sources = resolve_sources(inputs, stdin, interleave, warn)
    try:
        yield sources
    finally:
        remove_spools(sources)


def _check_text(source: Source) -> None:
    try:
        with source.open() as f:
            head = f.read(8192)
    except OSError as e:
        raise CorpusError(f"{source.name}: cannot read ({e.strerror or e})") from None
    if decoding.looks_binary(head, decoding.is_utf16(head)):
        raise CorpusError(f"{source.name}: looks like a binary file, not text")


def holds_text(source: Source) -> bool:
    """Whether ``source`` holds anything but whitespace. Read up to its first byte that is not (the whole file only
    when it is blank), so that an empty text is found at once, not after a pass over the corpus."""
    try:
        with source.open() as f:
            while chunk := f.read(1 << 16):
                if chunk.strip():
                    return True
    except OSError as e:
        raise CorpusError(f"{source.name}: cannot read ({e.strerror or e})") from None
    return False


def _raw_lines(f: BinaryIO, stats: CorpusStats, name: str) -> Iterator[tuple[str, bool]]:
    """Decoded lines as (text, complete); an overlong line comes in pieces, all but the last with complete=False.

    The encoding is decided per file (:mod:`autocomplete.decoding`): UTF-16 by its byte-order mark, else UTF-8 or,
    when the bytes from its first non-ASCII line on are mostly not UTF-8, Windows-1252 (named in ``stats``).

    A line ends at LF, CR LF or a lone CR (old Mac files, some exports). A NUL byte anywhere (in UTF-16, a NUL
    character) means the file is not text: :class:`CorpusError` (checked on every line read, so it costs a
    ``memchr``, not a second pass)."""
    start = f.tell()
    utf16 = decoding.is_utf16(f.read(4))
    f.seek(start)
    for text, complete in _utf16_pieces(f, stats, name) if utf16 else _byte_pieces(f, stats, name):
        if text.endswith("\n"):
            text = text[:-1]
        if "\r" not in text:
            yield text, complete
            continue
        lines = text.split("\r")  # "a\r" (a CR LF or CR line end) gives ["a", ""]: the empty tail is no line
        last = len(lines) - 1 if lines[-1] else len(lines) - 2
        for i, line in enumerate(lines[: last + 1]):
            yield line, complete if i == len(lines) - 1 else True


def _byte_pieces(f: BinaryIO, stats: CorpusStats, name: str) -> Iterator[tuple[str, bool]]:
    """Lines of an 8-bit or UTF-8 file, decoded, each with its line end, as (text, complete)."""
    replaced = 0
    utf8: bool | None = None  # undecided while every line so far was ASCII (the same in either encoding)
    while True:
        raw = f.readline(MAX_SEGMENT)
        if not raw:
            break
        if b"\x00" in raw:
            raise CorpusError(f"{name}: looks like a binary file, not text (a NUL byte in it)")
        complete = raw.endswith(b"\n")
        if not complete and len(raw) >= MAX_SEGMENT:
            cut = raw.rfind(b"\r")
            if cut >= 0:  # a CR-only file: cut after a line end, which stays in this piece
                f.seek(cut + 1 - len(raw), io.SEEK_CUR)
                raw = raw[: cut + 1]
            elif (cut := max(raw.rfind(b" "), raw.rfind(b"\t"))) > 0:  # keep the last partial word for the next piece
                f.seek(cut + 1 - len(raw), io.SEEK_CUR)
                raw = raw[:cut]
                stats.bytes_read += 1  # the blank between the pieces
            else:  # no whitespace at all: cut at a UTF-8 character boundary
                end = len(raw)
                while end > 0 and raw[end - 1] & 0xC0 == 0x80:
                    end -= 1
                if end > 0 and raw[end - 1] >= 0xC0:
                    end -= 1
                if end > 0:
                    f.seek(end - len(raw), io.SEEK_CUR)
                    raw = raw[:end]
        elif not complete:
            complete = True  # last line of the file without a newline
        stats.bytes_read += len(raw)
        if utf8 is None and not raw.isascii():
            utf8 = raw.startswith(codecs.BOM_UTF8) or _sample_reads_as_utf8(f, f.tell() - len(raw))
        if utf8 is False:
            yield decoding.decode_windows_1252(raw), complete
            continue
        text, bad = decoding.decode_utf8(raw)
        replaced += bad
        yield text, complete
    if replaced:
        stats.replaced_bytes += replaced
        stats.files_with_replacements.append(name)
    if utf8 is False:
        stats.legacy_files.append(name)


def _sample_reads_as_utf8(f: BinaryIO, at: int) -> bool:
    """Whether the bytes from offset ``at`` on (a bounded sample) read as UTF-8; the file is left where it was."""
    here = f.tell()
    f.seek(at)
    sample = f.read(decoding.SAMPLE)
    f.seek(here)
    return decoding.reads_as_utf8(sample)


def _utf16_pieces(f: BinaryIO, stats: CorpusStats, name: str) -> Iterator[tuple[str, bool]]:
    """Lines of a UTF-16 file (its byte-order mark says which order), each with its line end, as (text, complete).

    Decoded a chunk at a time, so a character cut by a chunk's end is whole in the next; a line longer than
    :data:`MAX_SEGMENT` characters is cut as :func:`_byte_pieces` cuts one. Undecodable units (a lone surrogate, an
    odd last byte) are replaced by U+FFFD and counted (with any U+FFFD the file itself holds)."""
    decoder = codecs.getincrementaldecoder("utf-16")("replace")  # reads the mark, drops it
    pending = ""
    replaced = 0
    ended = False
    while not ended:
        chunk = f.read(1 << 16)
        stats.bytes_read += len(chunk)
        ended = not chunk
        new = decoder.decode(chunk, final=ended)
        if "\x00" in new:
            raise CorpusError(f"{name}: looks like a binary file, not text (a NUL character in it)")
        replaced += new.count("\ufffd")
        pending += new
        start = 0
        while True:
            if (end := pending.find("\n", start, start + MAX_SEGMENT)) >= 0:
                yield pending[start : end + 1], True
                start = end + 1
                continue
            if len(pending) - start < MAX_SEGMENT:
                break  # the rest of a line, continued in the next chunk
            piece = pending[start : start + MAX_SEGMENT]
            if (cut := piece.rfind("\r")) >= 0:  # a CR-only file: cut after a line end, which stays in this piece
                piece, start = piece[: cut + 1], start + cut + 1
            elif (cut := max(piece.rfind(" "), piece.rfind("\t"))) > 0:  # the last partial word goes on
                piece, start = piece[:cut], start + cut + 1
            else:
                start += MAX_SEGMENT
            yield piece, False
        pending = pending[start:]
    if pending:
        yield pending, True
    if replaced:
        stats.replaced_bytes += replaced
        stats.files_with_replacements.append(name)


def detect_layout(lines: Sequence[str]) -> Literal["line", "paragraph"]:
    """``paragraph`` for hard-wrapped prose (most lines 50–80 columns, few longer), else ``line``."""
    lengths = sorted(len(line) for line in lines if line.strip())
    if len(lengths) < 20:
        return "line"
    median = lengths[len(lengths) // 2]
    p90 = lengths[int(len(lengths) * 0.9)]
    return "paragraph" if median >= 50 and p90 <= 80 else "line"


def iter_utterances(source: Source, breaks: Breaks, stats: CorpusStats) -> Iterator[tuple[str, bool]]:
    """Text segments of ``source`` as (text, ends_utterance)."""
    with source.open() as f:
        layout = breaks
        if layout == "auto":
            sniff = []
            for text, _ in _raw_lines(f, CorpusStats(), source.name):
                sniff.append(text)
                if len(sniff) >= _SNIFF_LINES:
                    break
            layout = detect_layout(sniff)
            f.seek(0)
        stats.layouts[source.name] = layout
        stats.files += 1
        if layout == "line":
            for text, complete in _raw_lines(f, stats, source.name):
                if complete and not text.strip():
                    continue
                yield text, complete
            return
        paragraph: list[str] = []
        size = 0
        for text, complete in _raw_lines(f, stats, source.name):
            if not text.strip() and complete:
                if paragraph:
                    yield " ".join(paragraph), True
                    paragraph, size = [], 0
                continue
            paragraph.append(text.strip())
            size += len(text)
            if size >= MAX_SEGMENT:
                yield " ".join(paragraph), False
                paragraph, size = [], 0
        if paragraph:
            yield " ".join(paragraph), True


def iter_token_lines(
    sources: Iterable[Source], tokenizer: Tokenizer, breaks: Breaks, stats: CorpusStats
) -> Iterator[tuple[list[str], bool]]:
    """Tokens of each segment (no EOS), and whether an EOS follows it."""
    for source in sources:
        for text, ends in iter_utterances(source, breaks, stats):
            tokens = tokenizer.tokenize_line(text)
            if tokens or ends:
                yield tokens, ends


def build_vocab(
    sources: Sequence[Source],
    tokenizer: Tokenizer,
    breaks: Breaks = "auto",
    max_size: int | None = None,
    min_count: int = 1,
) -> Vocab:
    stats = CorpusStats()
    lines = (tokens for tokens, _ in iter_token_lines(sources, tokenizer, breaks, stats))
    return Vocab.build(
        lines, max_size=max_size, min_count=min_count, case_fold=tokenizer.case_sensitive, styles=styles_of(sources)
    )


def styles_of(sources: Sequence[Source]) -> tuple[str, ...]:
    """The styles the sources are marked with, in order of first appearance."""
    return tuple(dict.fromkeys(s.style for s in sources if s.style is not None))


def iter_source_ids(
    source: Source, tokenizer: Tokenizer, vocab: Vocab, breaks: Breaks, stats: CorpusStats, chunk: int = 1 << 16
) -> Iterator[array]:
    """Token ids of one source, EOS after every utterance, in int32 arrays of about ``chunk`` ids (bounded memory).

    A styled source's utterances each begin with the style's token (the :data:`EOS` before it ends the previous
    one, in this file or the one before)."""
    ids = array("i")
    at_start = True
    style = vocab.style_id(source.style)
    for tokens, ends in iter_token_lines([source], tokenizer, breaks, stats):
        if at_start and style is not None:
            ids.append(style)
        ids.extend(vocab.encode(tokens, at_start))
        if ends:
            ids.append(EOS_ID)
            stats.utterances += 1
        at_start = ends
        if len(ids) >= chunk:
            stats.tokens += len(ids)
            stats.unknown += ids.count(UNK_ID)
            yield ids
            ids = array("i")
    if ids:
        stats.tokens += len(ids)
        stats.unknown += ids.count(UNK_ID)
        yield ids


def encode_source(
    source: Source, tokenizer: Tokenizer, vocab: Vocab, breaks: Breaks, stats: CorpusStats
) -> Tensor:
    """Token ids of one source, EOS after every utterance, as a 1-D int32 tensor."""
    ids = array("i")
    for part in iter_source_ids(source, tokenizer, vocab, breaks, stats):
        ids.extend(part)
    return torch.frombuffer(ids, dtype=torch.int32).clone() if ids else torch.zeros(0, dtype=torch.int32)


def encode_text(text: str, tokenizer: Tokenizer, vocab: Vocab) -> Tensor:
    """Token ids of an in-memory text: each line is an utterance followed by EOS."""
    ids: list[int] = []
    for line in text.split("\n"):
        tokens = tokenizer.tokenize_line(line)
        if tokens:
            ids.extend(vocab.encode(tokens))
            ids.append(EOS_ID)
    return torch.tensor(ids, dtype=torch.int32)


class TokenFile:
    """Token ids ``[start, stop)`` of a flat file of native-endian int32 ids, read on demand.

    The ids are read with ``readinto`` when a window is asked for, instead of mapping the file: a memory map would
    count every page it has touched in the process's resident set until the kernel reclaims it, and its whole size
    against an address-space limit. Reading keeps both bounded by the window size whatever the corpus size.
    Slicing gives another view of the same file without reading anything. Each read opens the file, so a
    ``TokenFile`` is a plain value: safe to share between threads and processes.
    """

    ITEMSIZE = 4

    def __init__(self, path: Path, start: int = 0, stop: int | None = None) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size // self.ITEMSIZE
        self.start = start
        self.stop = size if stop is None else stop
        if not 0 <= self.start <= self.stop <= size:
            raise ValueError(f"{path}: ids [{start}, {stop}) lie outside the file's {size} ids")

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice) -> TokenFile:
        if not isinstance(index, slice):
            raise TypeError("a TokenFile is indexed by slices only; use read() for the ids")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("a TokenFile slice must be contiguous")
        return TokenFile(self.path, self.start + start, self.start + max(start, stop))

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {self.start}, {self.stop})"

    def read(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Ids ``[start, stop)`` of this view as a 1-D int32 tensor (a copy)."""
        stop = len(self) if stop is None else stop
        return self.read_rows([start], max(0, stop - start)).view(-1)

    def read_rows(self, starts: Sequence[int], width: int) -> Tensor:
        """``width`` ids from each offset in ``starts`` (relative to this view) → (len(starts), width) int32."""
        for s in starts:
            if s < 0 or s + width > len(self):
                raise IndexError(f"ids [{s}, {s + width}) lie outside a view of {len(self)} ids")
        buffer = bytearray(len(starts) * width * self.ITEMSIZE)
        view = memoryview(buffer)
        row = width * self.ITEMSIZE
        with open(self.path, "rb", buffering=0) as f:
            for i, s in enumerate(starts):
                f.seek((self.start + s) * self.ITEMSIZE)
                _read_exactly(f, view[i * row : (i + 1) * row], self.path)
        if not buffer:
            return torch.zeros(len(starts), width, dtype=torch.int32)
        return torch.frombuffer(buffer, dtype=torch.int32).view(len(starts), width)


def _read_exactly(f: io.RawIOBase, out: memoryview, path: Path) -> None:
    done = 0
    while done < len(out):
        n = f.readinto(out[done:])
        if not n:
            raise CorpusError(f"{path}: token file is shorter than its header says (truncated?)")
        done += n


TokenIds = Tensor | TokenFile  # a 1-D stream of token ids, in memory or on disk


def ids_digest(ids: TokenIds, chunk: int = 1 << 20) -> str:
    """A hash of a stream's ids, the same in memory and on disk (read ``chunk`` ids at a time)."""
    digest = hashlib.sha256()
    for start in range(0, len(ids), chunk):
        stop = min(len(ids), start + chunk)
        part = ids.read(start, stop) if isinstance(ids, TokenFile) else ids[start:stop]
        digest.update(part.to(torch.int32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Corpus:
    train: TokenIds  # (N,) int32 token ids
    valid: TokenIds | None  # (M,) int32, or None when no validation text was given
    stats: CorpusStats


def check_trainable(train_tokens: int, sources: Sequence[Source]) -> None:
    """Refuse a corpus that yields fewer than two ids (nothing to predict)."""
    if train_tokens < 2:
        names = ", ".join(s.name for s in sources[:3]) + (" …" if len(sources) > 3 else "")
        raise CorpusError(f"{names}: no text to train on (the corpus is empty or whitespace only)")


class ValidationSplit:
    """How many tokens to hold out for validation from the end of the text read so far, file after file: the tail
    of about ``fraction`` of the text since the previous cut. :func:`load_corpus` and the token cache both ask it, so
    their streams are the same.

    A tail is cut once the text since the previous cut gives at least :data:`MIN_TAIL` tokens, and after the last
    file. A file that long gives its own tail; shorter ones are pooled with the files after them, so that a folder
    of one-line notes holds out a stretch of whole notes, not the last token of every note: that token is its
    ``<eos>``, which training would then never see and validation would measure alone. A tail is rounded down, so
    what is held out is ``fraction`` of the text to within a token per cut."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.pending = 0  # tokens read since the last cut

    def after(self, tokens: int, last: bool) -> int:
        """The tokens to hold out from the end of the text, now that a file of ``tokens`` tokens was read (0: none,
        the tail is cut later)."""
        self.pending += tokens
        held = int(self.pending * self.fraction)
        if held < MIN_TAIL and not last:
            return 0
        self.pending = 0
        return held


def load_corpus(
    sources: Sequence[Source],
    tokenizer: Tokenizer,
    vocab: Vocab,
    breaks: Breaks = "auto",
    valid_sources: Sequence[Source] = (),
    valid_fraction: float = 0.0,
) -> Corpus:
    """Encode the training sources in memory; validation comes from ``valid_sources`` or the tails that
    :class:`ValidationSplit` cuts from the training files. Tails that add up to too little to validate on stay in the
    training stream (a tiny text loses no token). :class:`~autocomplete.token_cache.TokenCache` produces the same
    streams on disk, for corpora of any size."""
    stats = CorpusStats()
    encoded = [encode_source(source, tokenizer, vocab, breaks, stats) for source in sources]
    stream = torch.cat(encoded) if encoded else torch.zeros(0, dtype=torch.int32)
    kept = torch.ones(stream.numel(), dtype=torch.bool)
    split, end = ValidationSplit(0.0 if valid_sources else valid_fraction), 0
    for i, ids in enumerate(encoded):
        end += len(ids)
        kept[end - split.after(len(ids), last=i == len(encoded) - 1) : end] = False
    if stream.numel() - int(kept.sum()) < MIN_VALID_TOKENS:
        kept[:] = True  # too little to validate on: every token is trained on instead
    train = stream[kept]
    valid_parts = [stream[~kept]] if not bool(kept.all()) else []
    for source in valid_sources:
        valid_parts.append(encode_source(source, tokenizer, vocab, breaks, CorpusStats()))
    valid = torch.cat(valid_parts) if valid_parts else None
    check_trainable(train.numel(), sources)
    if valid is not None and valid.numel() < MIN_VALID_TOKENS:
        valid = None
    return Corpus(train, valid, stats)


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Lay a 1-D stream out as ``batch_size`` contiguous columns → (B, L); the ragged tail is dropped."""
    length = ids.numel() // batch_size
    return ids[: length * batch_size].view(batch_size, length)


def bptt_batches(data: Tensor, bptt: int, start: int = 0) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Consecutive (offset, inputs (B, T), targets (B, T)) windows over ``data`` (B, L); state carries across them."""
    for i in range(start, data.size(1) - 1, bptt):
        t = min(bptt, data.size(1) - 1 - i)
        yield i, data[:, i : i + t], data[:, i + 1 : i + 1 + t]


class BatchedStream:
    """A 1-D id stream laid out as ``batch_size`` contiguous columns (as :func:`batchify` does) and walked in
    truncated-BPTT windows.

    Column ``b`` holds ids ``[b·L, (b+1)·L)`` with ``L = len(ids) // batch_size`` (the ragged tail is dropped), so
    each column is one long stretch of text and the LSTM state carries from a window to the next. A tensor is laid out
    once on ``device``; a :class:`TokenFile` is read one window at a time, ``batch_size × (bptt + 1)`` ids per step,
    so memory does not grow with the corpus. Both give exactly the same windows.
    """

    def __init__(self, ids: TokenIds, batch_size: int, device: torch.device | str = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.length = len(ids) // batch_size  # L: ids per column
        self.device = torch.device(device)
        self._file: TokenFile | None = None
        self._data: Tensor | None = None
        if isinstance(ids, TokenFile):
            self._file = ids[: self.length * batch_size]
        else:
            self._data = batchify(ids, batch_size).to(self.device, torch.long)  # (B, L)

    def num_batches(self, bptt: int) -> int:
        return max(0, (self.length - 1 + bptt - 1) // bptt)

    def windows(self, bptt: int, start: int = 0) -> Iterator[tuple[int, Tensor, Tensor]]:
        """Consecutive (offset, inputs (B, T), targets (B, T)) windows from column offset ``start``; T ≤ ``bptt``."""
        if self._data is not None:
            yield from bptt_batches(self._data, bptt, start)
            return
        assert self._file is not None
        for i in range(start, self.length - 1, bptt):
            t = min(bptt, self.length - 1 - i)
            starts = [b * self.length + i for b in range(self.batch_size)]
            block = self._file.read_rows(starts, t + 1).to(self.device, torch.long)  # (B, T + 1)
            yield i, block[:, :-1], block[:, 1:]


__all__ = [
    "EOS",
    "BatchedStream",
    "Corpus",
    "CorpusStats",
    "Source",
    "TokenFile",
    "TokenIds",
    "ValidationSplit",
    "batchify",
    "bptt_batches",
    "build_vocab",
    "check_trainable",
    "split_style",
    "styles_of",
    "detect_layout",
    "encode_source",
    "encode_text",
    "fingerprint",
    "holds_text",
    "ids_digest",
    "iter_source_ids",
    "load_corpus",
    "opened_sources",
    "remove_spools",
    "resolve_sources",
]
