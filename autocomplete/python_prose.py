"""Where the cursor sits in Python source: in a comment, a string or a docstring (prose a language model can help
with), or in code (where a host's own completion should answer).

:func:`prose_before_cursor` reads the source up to the cursor and returns the prose the cursor is in, as the model
should read it, or None in code. It is a small scanner rather than :mod:`tokenize` because the text being edited is
incomplete by nature: the string under the cursor is unterminated, a bracket is still open, an f-string's
replacement field is half typed. The scanner knows comments, string prefixes (``r``, ``b``, ``f``, ``t`` and their
combinations), triple quotes, backslash escapes and f-string replacement fields (nested quotes included, as Python
3.12 allows).

What counts as prose:

* a comment: its text after the ``#``, with the comment lines right above it (a block comment is one paragraph);
* a triple-quoted string (docstrings): its text so far, lines joined, blank lines kept as paragraph breaks;
* a one-line string once it holds a space: ``"the weather is ni`` is prose, but ``d["ke`` and ``open("/tmp/f`` are
  keys and paths, where the host's completion (dictionary keys, file names) does better than English words;
* never the code inside an f-string's ``{...}``.

The prose always ends with the characters right before the cursor, so completions computed on it apply at the cursor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

_PREFIX_LETTERS = frozenset("rbuftRBUFT")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(")]}")
_BLOCK_COMMENT_LINES = 20  # comment lines above the cursor's that still count as the same paragraph


@dataclass
class _Code:
    """Code: the top level, or an f-string replacement field (``depth`` counts brackets opened inside it)."""

    field: bool = False
    depth: int = 0


@dataclass
class _String:
    quote: str  # ', ", ''' or """
    formatted: bool  # an f-string (or t-string): braces open replacement fields
    start: int  # index of the first character of the content


def prose_before_cursor(source: str) -> str | None:
    """The prose the end of ``source`` (the text before the cursor) is in, or None when it is in code."""
    return _prose(source)


@functools.lru_cache(maxsize=64)
def _prose(source: str) -> str | None:
    stack: list[_Code | _String] = [_Code()]
    i, n = 0, len(source)
    while i < n:
        frame = stack[-1]
        c = source[i]
        if isinstance(frame, _String):
            if c == "\\":
                i += 2
            elif source.startswith(frame.quote, i):
                stack.pop()
                i += len(frame.quote)
            elif c == "\n" and len(frame.quote) == 1:
                stack.pop()  # an unterminated one-line string ends at the line end (a syntax error, not our business)
                i += 1
            elif frame.formatted and c == "{":
                if source.startswith("{{", i):
                    i += 2
                else:
                    stack.append(_Code(field=True))
                    i += 1
            else:
                i += 1
            continue
        if c == "#":
            end = source.find("\n", i)
            if end < 0:
                return _comment(source, i)
            i = end + 1
        elif c in "'\"":
            quote = c * 3 if source.startswith(c * 3, i) else c
            stack.append(_String(quote, _is_formatted(source, i), i + len(quote)))
            i += len(quote)
        elif frame.field and c in _OPENERS:
            frame.depth += 1
            i += 1
        elif frame.field and c in _CLOSERS:
            if frame.depth == 0 and c == "}":
                stack.pop()  # back in the f-string
            else:
                frame.depth = max(0, frame.depth - 1)
            i += 1
        else:
            i += 1
    frame = stack[-1]
    if isinstance(frame, _Code):
        return None
    content = source[frame.start :]
    if len(frame.quote) == 3:
        return _paragraphs(content)
    return content if any(ch.isspace() for ch in content) else None


def _is_formatted(source: str, quote_at: int) -> bool:
    """Whether the quote at ``quote_at`` opens an f-string (or t-string), from the prefix letters before it."""
    j = quote_at
    while j > 0 and source[j - 1] in _PREFIX_LETTERS and quote_at - j < 2:
        j -= 1
    if j > 0 and (source[j - 1].isalnum() or source[j - 1] == "_"):
        return False  # the letters end a name (``elif"``), they are no prefix
    return any(ch in "fFtT" for ch in source[j:quote_at])


def _comment(source: str, hash_at: int) -> str:
    """The comment from ``hash_at`` to the end, after the comment lines right above it (one paragraph)."""
    line_start = source.rfind("\n", 0, hash_at) + 1
    text = source[hash_at:].lstrip("#")
    if source[line_start:hash_at].strip():
        return text  # a comment after code: its own paragraph
    above: list[str] = []
    end = line_start - 1
    while end > 0 and len(above) < _BLOCK_COMMENT_LINES:
        start = source.rfind("\n", 0, end) + 1
        line = source[start:end].strip()
        if not line.startswith("#") or not line.lstrip("#").strip():
            break
        above.append(line.lstrip("#").strip())
        end = start - 1
    if not above:
        return text
    return " ".join(reversed(above)) + " " + text.lstrip()


def _paragraphs(content: str) -> str:
    """A triple-quoted string's text so far: lines joined by spaces, blank lines kept as line breaks, the cursor's
    line as typed (without its indentation)."""
    *earlier, current = content.split("\n")
    paragraphs: list[list[str]] = [[]]
    for line in earlier:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    text = "\n".join(" ".join(p) for p in paragraphs if p)
    if earlier and text:
        text += " " if paragraphs[-1] else "\n"
    return text + (current.lstrip() if earlier else current)
