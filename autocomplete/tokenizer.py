"""Text ⇄ tokens: word tokenization, sentence starts, and detokenization back to natural text.

Two tokenizers share one interface:

* ``words`` (the default) splits running text into words, numbers, URLs, e-mail addresses and punctuation. Contractions
  and hyphenated words stay whole (``don't``, ``well-known``) because that is what a person types and wants suggested.
  Curly apostrophes and quotes are folded to their ASCII forms so that text typed on a keyboard matches book text.
* ``whitespace`` is for corpora that are already tokenized (Penn Treebank): tokens are what ``str.split`` returns.

Newlines end an utterance: ``tokenize`` emits :data:`EOS` between lines. Control characters are dropped; combining
marks, emoji sequences joined by ZWJ and variation selectors stay attached to the character they modify.

Case: the vocabulary keeps case (``I``, ``London`` and ``the`` are different words), and :func:`sentence_starts` marks
the tokens that begin a sentence, so the vocabulary can fold a capital that only comes from sentence position
(``The`` → ``the``) while keeping names and ``I``. :class:`Detokenizer` capitalises a word again when it starts a
sentence. The tokenizer itself never changes case unless ``lowercase`` is set.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

UNK = "<unk>"
EOS = "<eos>"
SPECIALS = (UNK, EOS)
STYLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a style's name: ``prose``, ``dialogue``, ``tech``...


def style_token(name: str) -> str:
    """The token that marks an utterance of style ``name`` (``<prose>``); no typed text ever tokenizes to it."""
    return f"<{name}>"

TokenizerKind = Literal["words", "whitespace"]

_ABBREVIATIONS = r"(?i:mrs|mr|ms|dr|prof|st|jr|sr|vs|etc|e\.g|i\.e|a\.m|p\.m)\."
_URL = r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]}']"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_NUMBER = r"\d+(?:[.,:]\d+)+"
_WORD = r"\w+(?:['\-]\w+)*"
_PUNCT_RUN = r"\.{2,}|-{2,}|[!?]{2,}"
_TOKEN_RE = re.compile(
    rf"(?<!\w){_ABBREVIATIONS}|{_URL}|{_EMAIL}|{_NUMBER}|{_WORD}|{_PUNCT_RUN}|[^\w\s]"
)

_MAX_PARTIAL = 256  # a "word" being typed longer than this is not completed
MAX_TOKEN_CHARS = 100  # a longer "word" (a hash, a base64 blob, a run of one letter) never enters a vocabulary
_FOLD = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‛": "'", "‟": '"'})
_ZWJ = "\u200d"
SENTENCE_END = frozenset({".", "!", "?", "...", "…"}) | frozenset(  # tokens that end a sentence
    a + b for a in "!?" for b in "!?"
)
_TRANSPARENT = frozenset({'"', "'", "(", "[", "-", "--", "—", "*", "_"})  # do not end a sentence's start
# (with the full-width and ideographic punctuation of Chinese and Japanese, and Arabic's comma, semicolon and question
# mark, and the Devanagari danda, which take no space before them either)
_NO_SPACE_BEFORE = frozenset(",.;:!?)]}%…。、，．：；！？）］｝」』】〕〉》،؛؟।॥") | frozenset({"...", "'s", "n't"})
_NO_SPACE_AFTER = frozenset("([{$#@（［｛「『【〔〈《")
_DASHES = frozenset({"--", "—", "–", "---"})
_CONTROL = dict.fromkeys(c for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\t\n")
# what the tokenizer reads as a space (vertical tab, form feed, the file/group/record/unit separators, next line, the
# zero-width space that marks word breaks in Thai or Khmer) and drops (a soft hyphen is a hint where a line may break;
# a byte-order mark, at a file's start or inside after a join, is not text)
_CLEAN = _CONTROL | dict.fromkeys((0x0B, 0x0C, *range(0x1C, 0x20), 0x85, 0x200B), " ") | dict.fromkeys((0xAD, 0xFEFF))


# What a terminal would obey instead of showing: C0 and C1 controls (ESC starts escape sequences, 0x9B is a one-byte
# CSI), DEL, and the bidirectional overrides that reorder what is shown. Newline and tab are text.
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\t\n"} | {
    c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(text: str) -> str:
    """``text`` made safe to write to a terminal: every control character is shown as an escape (``\\x1b``) instead
    of being obeyed, so a hostile model file (its vocabulary, its name) cannot retitle, clear or rewrite the
    terminal. Newlines and tabs are kept."""
    return text.translate(_UNPRINTABLE)


def printable_word(word: str) -> str:
    """A word made safe to show as one item of a list: :func:`printable`, with newlines and tabs escaped too (a
    model file's vocabulary can hold them; a list of one word per line must stay one)."""
    return printable(word).replace("\n", "\\n").replace("\t", "\\t")


def without_controls(text: str) -> str:
    """``text`` without C0 controls (but tab and newline), DEL and C1 controls: what a key like Ctrl-Z, or a paste,
    can put into a line that no one meant as text (the tokenizer drops them too, see :func:`clean`)."""
    return text.translate(_CONTROL)


def _is_attachment(token: str) -> bool:
    """Characters that modify the previous one: combining marks, joiners, variation selectors, skin tones."""
    return all(
        unicodedata.category(ch).startswith("M")
        or ch in (_ZWJ, "\u200c")
        or 0xFE00 <= ord(ch) <= 0xFE0F
        or 0x1F3FB <= ord(ch) <= 0x1F3FF
        or 0xE0020 <= ord(ch) <= 0xE007F
        for ch in token
    )


def clean(text: str) -> str:
    """Drop control characters, lone surrogates, soft hyphens and byte-order marks; read vertical tabs, form feeds and
    zero-width spaces as spaces; fold curly quotes; turn CR/LF pairs into newlines; compose accents (NFC), so that a
    word typed with a combining accent (``cafe`` + U+0301, as some keyboards and macOS file names give it) is the same
    word as the one written with ``é``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_FOLD)
    if text.isascii():
        return text.translate(_CLEAN)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        text = "".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF)
    return unicodedata.normalize("NFC", text.translate(_CLEAN))


@dataclass(frozen=True)
class TokenizerConfig:
    kind: TokenizerKind = "words"  # "words" for running text, "whitespace" for pre-tokenized corpora such as PTB
    lowercase: bool = False  # fold everything to lower case (PTB is already lower case)

    def __post_init__(self) -> None:
        if self.kind not in ("words", "whitespace"):
            raise ValueError(f"unknown tokenizer kind {self.kind!r}; expected 'words' or 'whitespace'")
        if not isinstance(self.lowercase, bool):
            raise ValueError(f"the tokenizer's lowercase setting is {self.lowercase!r}, not true or false")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TokenizerConfig:
        """The settings :meth:`to_dict` wrote (a model file's, which may be damaged or hostile); an unknown key is a
        :class:`ValueError` naming it, as ``ModelConfig.from_dict`` names an unknown model setting."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown tokenizer settings {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]


class Tokenizer:
    """Stateless, thread-safe text → token splitter for one :class:`TokenizerConfig`."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        if self.config.kind not in ("words", "whitespace"):
            raise ValueError(f"unknown tokenizer kind {self.config.kind!r}; expected 'words' or 'whitespace'")

    @property
    def case_sensitive(self) -> bool:
        """True when capitalisation carries information the vocabulary should normalise at sentence starts."""
        return self.config.kind == "words" and not self.config.lowercase

    def tokenize_line(self, line: str) -> list[str]:
        """Tokens of one line of text (no :data:`EOS`)."""
        if self.config.kind == "whitespace":
            tokens = line.split()
        else:
            tokens = _split_words(clean(line))
        if self.config.lowercase:
            tokens = [t if t in SPECIALS else t.lower() for t in tokens]
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``; each newline becomes :data:`EOS` (a trailing newline included)."""
        lines = text.split("\n")
        out: list[str] = []
        for i, line in enumerate(lines):
            out.extend(self.tokenize_line(line))
            if i < len(lines) - 1:
                out.append(EOS)
        return out

    def split_partial(self, text: str) -> tuple[str, str]:
        """Split typed text into (complete part, word being typed).

        The word being typed is the trailing run of word characters when the text does not end in whitespace or
        punctuation: ``"how are yo"`` → ``("how are ", "yo")``. Only the complete part is fed to the language model;
        the partial word filters its suggestions.
        """
        if not text or text[-1].isspace():
            return text, ""
        if self.config.kind == "whitespace":
            cut = max(text.rfind(" "), text.rfind("\t"), text.rfind("\n")) + 1
            return text[:cut], text[cut:]
        start = len(text)  # tokens never span whitespace: only the text after the last space matters
        while start > 0 and not text[start - 1].isspace() and len(text) - start < _MAX_PARTIAL:
            start -= 1
        # as the tokenizer splits it (a word goes on after an accent or a vowel sign: ``Reme`` U+0301 ``dios``), with
        # curly apostrophes read as straight ones (``don’`` is ``don'`` being typed); the tokens cover the text
        tokens = _split_words(text[start:].translate(_FOLD))
        last = tokens[-1] if tokens else ""
        if last in ("'", "-") and len(tokens) > 1 and _is_word(tokens[-2]):
            if last == "'" and _quote_open(text[: len(text) - len(tokens[-2]) - 1]):
                return text, ""  # ``said 'yes'``: the quote closes what it opened
            last = tokens[-2] + last  # ``don'``, ``well-``: a word being typed on, not a quote or a dash after it
        elif not _is_word(last):
            return text, ""
        return text[: len(text) - len(last)], last


_QUOTE_SCAN = 2000  # characters of the line before a word that are searched for the quote it may close


def spelled(partial: str) -> str:
    """A word being typed as the vocabulary spells words: curly apostrophes straight (``don’`` → ``don'``), accents
    composed (``Poke`` U+0301 → ``Poké``, as :func:`clean` composes the text the model reads). Its length may differ
    from what was typed (a composed accent is one character): what replaces the typed word is the whole word."""
    return partial if partial.isascii() else unicodedata.normalize("NFC", partial.translate(_FOLD))


def _quote_open(before: str) -> bool:
    """Whether a single quote opened on the line of ``before`` (its last :data:`_QUOTE_SCAN` characters) is still
    open: an odd number of them stand apart as quotes (``'yes`` has one, ``don't`` none)."""
    line = before[before.rfind("\n") + 1 :][-_QUOTE_SCAN:]
    return _split_words(line.translate(_FOLD)).count("'") % 2 == 1


def _is_word(token: str) -> bool:
    """A word (letters, digits, inner apostrophes and hyphens), its accents and vowel signs included."""
    if re.fullmatch(_WORD, token):
        return True
    bare = "".join(ch for ch in token if not unicodedata.category(ch).startswith("M"))
    return bare[:1] == token[:1] != "" and re.fullmatch(_WORD, bare) is not None


def _regional(token: str) -> bool:
    """One regional indicator letter: two of them make a flag (``🇫`` ``🇷`` is 🇫🇷)."""
    return len(token) == 1 and 0x1F1E6 <= ord(token) <= 0x1F1FF


def _split_words(line: str) -> list[str]:
    tokens: list[str] = []
    prev_end = -1
    for match in _TOKEN_RE.finditer(line):
        token = match.group()
        adjacent = match.start() == prev_end and tokens
        if adjacent and (
            _is_attachment(token)
            or tokens[-1].endswith(_ZWJ)
            # a word goes on after a mark Python's ``\w`` leaves out: a Devanagari virama (नमस् + ते), a Thai vowel
            # sign, an accent that did not compose
            or unicodedata.category(tokens[-1][-1]).startswith("M") and token[0].isalnum() and tokens[-1][0].isalnum()
            or _regional(token) and _regional(tokens[-1])
        ):
            tokens[-1] += token
        else:
            tokens.append(token)
        prev_end = match.end()
    return tokens


def sentence_starts(tokens: Iterable[str], at_start: bool = True) -> list[bool]:
    """For each token, whether it begins a sentence (opening quotes and brackets do not end the "start")."""
    flags: list[bool] = []
    for token in tokens:
        flags.append(at_start)
        at_start = _starts_after(token, at_start)
    return flags


def _starts_after(token: str, at_start: bool) -> bool:
    """Whether the token after ``token`` starts a sentence, given whether ``token`` itself did."""
    if token == EOS or token in SENTENCE_END:
        return True
    return at_start and token in _TRANSPARENT


def ends_sentence(tokens: Sequence[str]) -> bool:
    """Whether the next token after ``tokens`` starts a sentence (the last one that is not a quote or bracket
    decides; scanning from the end keeps this cheap on long lines)."""
    for token in reversed(tokens):
        if token == EOS or token in SENTENCE_END:
            return True
        if token not in _TRANSPARENT:
            return False
    return True


def capitalize(word: str) -> str:
    """``word`` with its first letter as a sentence starts it (title case: ``ﬁnal`` → ``Final``, not ``FInal``)."""
    return word[:1].title() + word[1:]


def _unspaced(ch: str) -> bool:
    """Characters of scripts written without spaces between words (Chinese, Japanese kana) and their punctuation."""
    o = ord(ch)
    return (0x3000 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFF65 or 0x20000 <= o <= 0x3FFFF)


class Detokenizer:
    """Joins tokens into natural text incrementally, so generated words can be printed as they come.

    ``feed(token)`` returns the string to append, leading space included. Spacing follows English conventions
    (``Hello, world.``, ``"quoted"``, ``(aside)``, ``end--start``); straight double quotes alternate open/close.
    With ``sentence_case`` a word that starts a sentence is capitalised. :data:`EOS` becomes a newline.
    """

    def __init__(self, previous: Iterable[str] = (), sentence_case: bool = False) -> None:
        self.sentence_case = sentence_case
        previous = list(previous)
        line = previous[len(previous) - previous[::-1].index(EOS) :] if EOS in previous else previous
        self._prev: str | None = previous[-1] if previous else None
        self._open_double = line.count('"') % 2 == 1
        self._open_single = line.count("'") % 2 == 1
        self._at_start = ends_sentence(previous)

    def _advance(self, token: str) -> None:
        if token == '"':
            self._open_double = not self._open_double
        elif token == "'":
            self._open_single = not self._open_single
        self._at_start = _starts_after(token, self._at_start)
        self._prev = token

    def feed(self, token: str) -> str:
        if token == EOS:
            self._open_double = self._open_single = False
            self._advance(token)
            return "\n"
        prev = self._prev
        surface = capitalize(token) if self.sentence_case and self._at_start and token[:1].isalpha() else token
        if prev is None or prev == EOS:
            space = ""
        elif token == '"':
            space = "" if self._open_double else " "
        elif token == "'" and self._open_single:
            space = ""
        elif prev == '"' and self._open_double or prev == "'" and self._open_single:
            space = ""
        elif token in _NO_SPACE_BEFORE or not token.strip(".!?") or prev in _NO_SPACE_AFTER or token in _DASHES or prev in _DASHES:
            space = ""
        elif _unspaced(prev[-1]) and _unspaced(surface[0]):
            space = ""  # 我喜欢 + 你: Chinese and Japanese put no space between words (the tokenizer reads them as one)
        else:
            space = " "
        if (not space and prev is not None and prev != EOS and _split_words(prev + surface) != [prev, surface]
                and not (_unspaced(prev[-1]) and _unspaced(surface[0]))):
            space = " "  # gluing would change how the text re-tokenizes ("a" + "-b")
        self._advance(token)
        return space + surface


def detokenize(tokens: Iterable[str], sentence_case: bool = False) -> str:
    """Join tokens into natural text. Capitalisation is left as is unless ``sentence_case`` is set."""
    detok = Detokenizer(sentence_case=sentence_case)
    return "".join(detok.feed(t) for t in tokens)
