"""Which encoding a text file's bytes are in, and the decoders that read them.

A corpus file is read as one of three encodings, decided per file:

* **UTF-16** when it begins with a UTF-16 byte-order mark (``FF FE`` or ``FE FF``, what Windows tools write). Its
  NUL bytes are half of its ASCII characters, so binary data is told by a NUL *code unit* instead
  (:func:`looks_binary`).
* **Windows-1252** (Latin-1 with printable characters in ``80``–``9F``; the five bytes 1252 leaves undefined read as
  Latin-1) when the bytes are not UTF-8 and read as a legacy 8-bit encoding: old mail archives and notes.
* **UTF-8** otherwise, undecodable bytes replaced by U+FFFD and counted (:func:`decode_utf8`).

The 8-bit decision (:func:`reads_as_utf8`) is made on a bounded sample: the bytes from the first line that holds a
non-ASCII byte on (:data:`SAMPLE` bytes), not the whole file. The lines before it are ASCII, the same in both
encodings, so nothing already read is read again, and a file whose accents begin after a megabyte of ASCII is still
recognised. In the sample, bytes that form valid multi-byte UTF-8 sequences are evidence for UTF-8 (Latin-1 text
almost never forms them by chance: ``Ã`` followed by ``©``), and undecodable ones evidence against. The file is read
as Windows-1252 only when the undecodable ones are the majority, so a UTF-8 file with a few damaged bytes stays UTF-8
with those bytes replaced: a real UTF-8 file is never read as mojibake. A file that is UTF-8 in its sample and
Latin-1 further on (two archives joined) keeps UTF-8 and has its later accents replaced, as before.
"""

from __future__ import annotations

import codecs
import encodings.cp1252

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
SAMPLE = 1 << 18  # bytes looked at, from the first non-ASCII line on, to decide between UTF-8 and Windows-1252
WINDOWS_1252 = "Windows-1252 (Latin-1)"  # how a file read as legacy 8-bit text is named to the user

# The 1252 table with its five undefined bytes (81, 8D, 8F, 90, 9D) read as Latin-1 does (C1 controls), so that
# decoding never fails: every byte string is text in it.
_TABLE = "".join(chr(b) if c == "\ufffe" else c for b, c in enumerate(encodings.cp1252.decoding_table))


def is_utf16(head: bytes) -> bool:
    """Whether a file whose first bytes are ``head`` is UTF-16 by its byte-order mark.

    ``FF FE 00 00`` is a UTF-32-LE mark, not UTF-16: such a file is left to the binary check (it has NUL code units)."""
    return head.startswith(UTF16_BOMS) and not head.startswith(codecs.BOM_UTF32_LE)


def looks_binary(data: bytes, utf16: bool) -> bool:
    """Whether ``data`` (bytes of a file, from a code unit's start) is binary, not text: a NUL byte, or in UTF-16 a
    NUL code unit, which no text holds (half of a UTF-16 file's bytes are NUL when it is mostly ASCII)."""
    if utf16:
        units = memoryview(data)[: len(data) // 2 * 2].cast("H")  # byte order does not matter for a zero unit
        return 0 in units
    return b"\x00" in data


def reads_as_utf8(sample: bytes) -> bool:
    """Whether a sample of a file's bytes is UTF-8 (possibly damaged in places) rather than legacy 8-bit text: its
    valid multi-byte sequences at least as many as its undecodable ones. A sequence cut by the sample's end is left
    out of the count."""
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(sample, final=False)
    undecodable = text.count("\ufffd") - sample.count("\ufffd".encode())  # a U+FFFD the file holds is not an error
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return non_ascii - undecodable >= undecodable


def decode_utf8(raw: bytes) -> tuple[str, int]:
    """``raw`` as UTF-8, and how many undecodable byte sequences in it were replaced by U+FFFD."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text, text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")


def decode_windows_1252(raw: bytes) -> str:
    """``raw`` as Windows-1252, its undefined bytes as Latin-1: every byte is a character, nothing is replaced."""
    return codecs.charmap_decode(raw, "strict", _TABLE)[0]


__all__ = ["SAMPLE", "UTF16_BOMS", "WINDOWS_1252", "decode_utf8", "decode_windows_1252", "is_utf16", "looks_binary",
           "reads_as_utf8"]
