"""Where the cursor sits in Python source: in a comment, a string or a docstring (prose a language model can help
with), or in code (where a host's own completion should answer).

:func:`prose_before_cursor` reads the source up to the cursor and returns the prose the cursor is in, as the model
should read it, or None in code; :func:`prose_in` returns all the prose of a finished piece of source (what a shell
learns from a cell it ran). It is a small scanner rather than :mod:`tokenize` because the text being edited is
incomplete by nature: the string under the cursor is unterminated, a bracket is still open, an f-string's
replacement field is half typed. The scanner knows comments, string prefixes (``r``, ``b``, ``f``, ``t`` and their
combinations), triple quotes, backslash escapes and f-string replacement fields (nested quotes included, as Python
3.12 allows).

What counts as prose:

* a comment: its text after the ``#``, with the comment lines right above it (a block comment is one paragraph);
* a triple-quoted string (docstrings): its text so far, lines joined, blank lines kept as paragraph breaks;
* a one-line string once it holds a space: ``"the weather is ni`` is prose, but ``open("/tmp/f`` is a path, where
  the host's completion (file names) does better than English words;
* never a key, spaces or not: a string that is a subscript (``d["first na``, ``d[ 'a b``) or the key of a
  mapping's ``.get(``, ``.pop(`` or ``.setdefault(``, where the host completes the keys it holds. A string in a
  list display (``["some words``, ``x in ["a b``) or any other call's argument (``print("hello th``) stays prose;
* never the code inside an f-string's ``{...}``.

The prose always ends with the characters right before the cursor, so completions computed on it apply at the cursor.
"""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass, field

_PREFIX_LETTERS = frozenset("rbuftRBUFT")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(")]}")
_BLOCK_COMMENT_LINES = 20  # comment lines above the cursor's that still count as the same paragraph


@dataclass
class _Code:
    """Code: the top level, or an f-string replacement field (``depth`` counts brackets opened inside it)."""

    field: bool = False
    depth: int = 0
    start: int = 0  # where a replacement field's ``{`` is


@dataclass
class _String:
    quote: str  # ', ", ''' or """
    prefix: str  # its prefix letters in lower case (``f``, ``rb``...)
    start: int  # index of the first character of the content
    fields: list[tuple[int, int]] = field(default_factory=list)  # its replacement fields so far, ``{`` to ``}``

    @property
    def formatted(self) -> bool:
        """An f-string (or t-string): braces open replacement fields."""
        return "f" in self.prefix or "t" in self.prefix


def prose_before_cursor(source: str) -> str | None:
    """The prose the end of ``source`` (the text before the cursor) is in, or None when it is in code."""
    return _prose(source)


def prose_in(source: str) -> list[str]:
    """The prose of a whole piece of source (a cell a shell ran), one item per paragraph as it was written: a block
    of comment lines as one, each paragraph of a triple-quoted string, each one-line string that holds a space (the
    text between its replacement fields, its escapes read). Left out: one-word comments (``# noqa``), bytes, and a
    string still open at the end."""
    pieces: list[str] = []
    _scan(source, pieces)
    return [" ".join(piece.split()) for piece in pieces if len(piece.split()) > 1]


@functools.lru_cache(maxsize=64)
def _prose(source: str) -> str | None:
    frame, comment_at = _scan(source)
    if comment_at is not None:
        return _comment(source, comment_at)
    if isinstance(frame, _Code):
        return None
    if _is_key(source, frame):
        return None
    content = source[frame.start :]
    if len(frame.quote) == 3:
        return _paragraphs(content)
    return content if any(ch.isspace() for ch in content) else None


_KEY_LOOKBEHIND = 200  # characters before a string's quote read to tell a key from prose
# what ends right before a key: a subscript's ``[`` after an expression (a name, a closing bracket or quote), or a
# mapping method's ``(``; the name before a ``[`` is checked to be no keyword (``in [``, ``return [``: a display)
_KEY_BEFORE = re.compile(r"""(?:(?P<name>\w+)|[)\]}'"])\s*\[\s*\Z|\.\s*(?:get|pop|setdefault)\s*\(\s*\Z""")


def _is_key(source: str, string: _String) -> bool:
    """Whether ``string`` is a key (a subscript, or a mapping method's first argument): code, where the host's
    completion knows the keys, not prose, even with a space in it."""
    opening = string.start - len(string.quote) - len(string.prefix)
    match = _KEY_BEFORE.search(source, max(0, opening - _KEY_LOOKBEHIND), opening)
    return match is not None and not keyword.iskeyword(match.group("name") or "")


def _scan(source: str, pieces: list[str] | None = None) -> tuple[_Code | _String, int | None]:
    """Read ``source`` to its end: the frame it ends in, and where the comment it ends in starts (None if it does
    not end in one). With ``pieces``, the prose of each comment and string finished on the way is appended to it."""
    stack: list[_Code | _String] = [_Code()]
    block_end = -2  # where the last comment with a line to itself ends (one on the next line continues its paragraph)
    i, n = 0, len(source)
    while i < n:
        frame = stack[-1]
        stop = _stops(frame).search(source, i)  # the next character that can change anything (the rest is skipped)
        if stop is None:
            break
        i = stop.start()
        c = source[i]
        if isinstance(frame, _String):
            if c == "\\":
                i += 2
            elif source.startswith(frame.quote, i):
                stack.pop()
                if pieces is not None:
                    pieces.extend(_string_prose(source, frame, i))
                i += len(frame.quote)
            elif c == "\n" and len(frame.quote) == 1:
                stack.pop()  # an unterminated one-line string ends at the line end (a syntax error, not our business)
                i += 1
            elif frame.formatted and c == "{":
                if source.startswith("{{", i):
                    i += 2
                else:
                    stack.append(_Code(field=True, start=i))
                    i += 1
            else:
                i += 1
            continue
        if c == "#":
            end = source.find("\n", i)
            if end < 0 and pieces is None:
                return frame, i  # the cursor is in this comment
            end = n if end < 0 else end
            if pieces is not None:
                line_start = source.rfind("\n", 0, i) + 1
                alone = not source[line_start:i].strip()
                text = source[i:end].lstrip("#").strip()
                if alone and text and line_start == block_end + 1:
                    pieces[-1] += " " + text
                else:
                    pieces.append(text)
                block_end = end if alone and text else -2
            i = end + 1
        elif c in "'\"":
            quote = c * 3 if source.startswith(c * 3, i) else c
            stack.append(_String(quote, _prefix(source, i), i + len(quote)))
            i += len(quote)
        elif frame.field and c in _OPENERS:
            frame.depth += 1
            i += 1
        elif frame.field and c in _CLOSERS:
            if frame.depth == 0 and c == "}":
                stack.pop()  # back in the f-string
                string = stack[-1]
                assert isinstance(string, _String)
                string.fields.append((frame.start, i + 1))
            else:
                frame.depth = max(0, frame.depth - 1)
            i += 1
        else:
            i += 1
    return stack[-1], None


_CODE_STOPS = re.compile(r"""[#'"]""")
_FIELD_STOPS = re.compile(r"""[#'"()\[\]{}]""")
_STRING_STOPS = {
    (quote, formatted): re.compile("[\\\\\n" + quote + ("{" if formatted else "") + "]")
    for quote in "'\"" for formatted in (False, True)
}


def _stops(frame: _Code | _String) -> re.Pattern[str]:
    """The characters that matter in ``frame`` (a comment or a string starting, a quote or an escape ending one, a
    bracket in an f-string's field): scanning jumps from one to the next, at C speed in between."""
    if isinstance(frame, _String):
        return _STRING_STOPS[frame.quote[0], frame.formatted]
    return _FIELD_STOPS if frame.field else _CODE_STOPS


def _string_prose(source: str, string: _String, end: int) -> list[str]:
    """The prose of the string whose content ends at ``end``: the text between its replacement fields, escapes
    read; one item per paragraph of a triple-quoted string; nothing for bytes, a key or a one-line string without a
    space."""
    if "b" in string.prefix or _is_key(source, string):
        return []
    parts, at = [], string.start
    for start, stop in string.fields:
        parts.append(source[at:start])
        at = stop
    parts.append(source[at:end])
    text = " ".join(parts if "r" in string.prefix else map(_unescape, parts))
    if len(string.quote) == 3:
        return _paragraphs(text + "\n").split("\n")
    return [text] if any(ch.isspace() for ch in text.strip()) else []


def _unescape(text: str) -> str:
    """A string's escapes as its reader sees them: quotes and backslashes as themselves, a line continuation as
    nothing, any other escape (a newline, a tab, a character code) as a space, never as letters glued to a word."""
    return _ESCAPE.sub(lambda m: _KEPT.get(m.group(1), " "), text)


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|N\{[^}]*\}|[0-7]{1,3}|.)", re.DOTALL)
_KEPT = {"'": "'", '"': '"', "\\": "\\", "\n": ""}


def _prefix(source: str, quote_at: int) -> str:
    """The prefix letters of the string whose quote is at ``quote_at``, in lower case ("" where the letters before
    the quote end a name: ``elif"``)."""
    j = quote_at
    while j > 0 and source[j - 1] in _PREFIX_LETTERS and quote_at - j < 2:
        j -= 1
    if j > 0 and (source[j - 1].isalnum() or source[j - 1] == "_"):
        return ""
    return source[j:quote_at].lower()


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


# a word as people write it in prose: letters (any script), inner apostrophes and hyphens, with the punctuation
# around it; or a short number
_PLAIN_WORD = re.compile(r"""[(\["'“‘]*(?:[^\W\d_]+(?:['’-][^\W\d_]+)*|\d{1,4})[)\]"'”’.,;:!?]*""")
_PLAIN_SHARE = 0.7  # of a piece's words, at least this many must be plain for it to be prose at all


def plain_prose(piece: str) -> str | None:
    """``piece`` (one item of :func:`prose_in`) as a shell should learn it: its plain words, or None if it does not
    read as prose. Commented-out code (``df = pd.read_csv(path, sep=sep)``), commands and queries have too few
    plain words to count; within prose, what is no plain word — an identifier, a token or key
    (``sk_live_9f8e7d``), a path, an escape's remains — is left out, so it is never learned nor offered."""
    words = piece.split()
    plain = [w for w in words if _PLAIN_WORD.fullmatch(w)]
    if len(plain) < 2 or len(plain) < _PLAIN_SHARE * len(words):
        return None
    return " ".join(plain)
