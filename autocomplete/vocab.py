"""The vocabulary: token ⇄ id, built by counting, saved inside every checkpoint.

Ids 0 and 1 are always :data:`~autocomplete.tokenizer.UNK` and :data:`~autocomplete.tokenizer.EOS`; a model trained
with styles has its style tokens next (``<prose>``, ``<dialogue>``, ... in the order given); the rest are sorted by
descending count (ties by spelling, so a build is reproducible).

Styles: every utterance of a styled corpus begins with its style token, right after the :data:`EOS` that ends the
previous one, so the model reads ``<eos> <dialogue> i would like ...``. :meth:`Vocab.start_ids` is the one place that
says which tokens open an utterance, and :meth:`Vocab.encode` puts the style token after every :data:`EOS` it encodes.
A vocabulary without styles (every model trained before them) opens an utterance with :data:`EOS` alone and ignores a
style asked for, so old models work as they always did.

Sentence-initial case folding (``case_fold``): a capital that only comes from sentence position is folded away, so
"The" at the start of a sentence is the word "the", while "I", "London" and "Bennet" keep their capital because that
is how they appear inside sentences. Decided by counts: a sentence-initial ``Word`` becomes ``word`` when ``word`` is
the more frequent form in the vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from autocomplete.errors import ConfigError
from autocomplete.tokenizer import EOS, MAX_TOKEN_CHARS, SPECIALS, STYLE_NAME, UNK, capitalize, sentence_starts, style_token

UNK_ID = 0
EOS_ID = 1
# the longest word a vocabulary read from a file may hold: ten times what a build keeps (MAX_TOKEN_CHARS), so only a
# damaged or crafted file has a longer one (a megabyte "word" would be printed and offered as it is)
MAX_WORD_CHARS = 1_000


class Vocab:
    """Immutable mapping between tokens and ids (read-only after construction, so safe to share across threads)."""

    def __init__(
        self, itos: Sequence[str], counts: Sequence[int], case_fold: bool = True, styles: Sequence[str] = ()
    ) -> None:
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        if len(counts) != len(itos):
            raise ValueError("counts and tokens differ in length")
        self.styles: tuple[str, ...] = tuple(styles)  # style names, their tokens at ids len(SPECIALS)...
        for name in self.styles:
            check_style_name(name)
        style_tokens = [style_token(name) for name in self.styles]
        if list(itos[len(SPECIALS) : len(SPECIALS) + len(style_tokens)]) != style_tokens:
            raise ValueError(f"a vocabulary with styles must list {style_tokens} right after {SPECIALS}")
        self.itos: list[str] = list(itos)
        self.counts: list[int] = [int(c) for c in counts]
        self.case_fold = case_fold
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary lists a token twice")
        self._initial: dict[str, int] = {}
        if case_fold:
            for i, word in enumerate(self.itos):
                upper = capitalize(word)
                if upper == word:
                    continue
                other = self.stoi.get(upper)
                if other is None or self.counts[i] > self.counts[other]:
                    self._initial[upper] = i

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def id(self, token: str, sentence_start: bool = False) -> int:
        if sentence_start and token in self._initial:
            return self._initial[token]
        return self.stoi.get(token, UNK_ID)

    def encode(self, tokens: Sequence[str], at_start: bool = True, style: int | None = None) -> list[int]:
        """Ids of ``tokens``; ``at_start`` says whether the first one begins a sentence (for case folding).

        ``style`` (a style token's id, see :meth:`style_id`) is put after every :data:`EOS`: the next utterance's
        opening, as :meth:`start_ids` gives it for the first one."""
        if not self.case_fold:
            ids = [self.stoi.get(t, UNK_ID) for t in tokens]
        else:
            ids = [self.id(t, s) for t, s in zip(tokens, sentence_starts(tokens, at_start))]
        if style is None or EOS_ID not in ids:
            return ids
        out: list[int] = []
        for i in ids:
            out.append(i)
            if i == EOS_ID:
                out.append(style)
        return out

    # ---- styles ------------------------------------------------------------------------------------------------

    def style_id(self, name: str | None) -> int | None:
        """The id of style ``name``'s token; None when no style is asked for or the vocabulary has no styles (the
        style is then ignored). A style this vocabulary lacks is a :class:`ConfigError` naming the ones it has."""
        if name is None or not self.styles:
            return None
        if name not in self.styles:
            raise ConfigError(f"unknown style {name!r}; this model knows {', '.join(self.styles)}")
        return len(SPECIALS) + self.styles.index(name)

    def start_ids(self, style: str | None = None) -> list[int]:
        """The tokens that open an utterance: :data:`EOS`, then the style's token when the model has styles."""
        style_id = self.style_id(style)
        return [EOS_ID] if style_id is None else [EOS_ID, style_id]

    def read_in_style(self, ids: Sequence[int], style: str | None, opening: bool) -> tuple[list[int], list[int]]:
        """(what the LSTM reads for ``ids`` in ``style``, where each of ``ids`` is in it): the style's token after
        every :data:`EOS`, and first when ``opening`` (the text before ended an utterance), as :meth:`encode` and
        :meth:`start_ids` put it. The output before a style token predicts nothing of the text. Without a style (or
        one this vocabulary lacks): ``ids`` as they are."""
        style_id = self.style_id(style) if style in self.styles else None
        read, rows = ([style_id] if style_id is not None and opening else []), []
        for i in ids:
            rows.append(len(read))
            read.append(i)
            if i == EOS_ID and style_id is not None:
                read.append(style_id)
        return read, rows

    @property
    def style_ids(self) -> list[int]:
        return list(range(len(SPECIALS), len(SPECIALS) + len(self.styles)))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def is_special(self, index: int) -> bool:
        """Unknown word, end of utterance and style tokens: never suggested, never sampled."""
        return index < len(SPECIALS) + len(self.styles)

    def pruned(self, min_count: int) -> Vocab:
        """This vocabulary without the words seen fewer than ``min_count`` times (they become :data:`UNK`).

        The same vocabulary as :meth:`build` with that ``min_count`` gives, as long as this one was built with a
        lower one and the same ``max_size`` (both keep the most frequent words, so dropping rare ones commutes).
        """
        reserved = len(SPECIALS) + len(self.styles)  # the special and style tokens stay, whatever their counts
        keep = [i for i in range(reserved, len(self)) if self.counts[i] >= min_count]
        dropped = sum(self.counts[reserved:]) - sum(self.counts[i] for i in keep)
        itos = self.itos[:reserved] + [self.itos[i] for i in keep]
        counts = [self.counts[0] + dropped, *self.counts[1:reserved]] + [self.counts[i] for i in keep]
        return Vocab(itos, counts, self.case_fold, self.styles)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"itos": self.itos, "counts": self.counts, "case_fold": self.case_fold}
        if self.styles:  # absent without styles: files stay readable by versions that predate them
            data["styles"] = list(self.styles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Vocab:
        """A vocabulary from :meth:`to_dict`'s table, every entry's type checked (files may be damaged or hostile):
        a :class:`ValueError` says what is wrong."""
        itos, counts, case_fold = data.get("itos"), data.get("counts"), data.get("case_fold")
        styles = data.get("styles", [])
        if not isinstance(itos, list) or not all(isinstance(t, str) and t for t in itos):
            raise ValueError("the vocabulary's words are not a list of non-empty texts")
        too_long = next((i for i, t in enumerate(itos) if len(t) > MAX_WORD_CHARS), None)
        if too_long is not None:
            raise ValueError(
                f"the vocabulary's word {too_long} is {len(itos[too_long]):,} characters long; a word has at most "
                f"{MAX_WORD_CHARS:,}"
            )
        if not isinstance(counts, list) or not all(type(n) is int and n >= 0 for n in counts):
            raise ValueError("the vocabulary's counts are not a list of whole numbers ≥ 0")
        if not isinstance(case_fold, bool):
            raise ValueError(f"the vocabulary's case folding is {case_fold!r}, not true or false")
        if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
            raise ValueError("the vocabulary's styles are not a list of names")
        try:
            return cls(itos, counts, case_fold, styles)
        except ConfigError as e:  # a bad style name in a file
            raise ValueError(str(e)) from None

    @classmethod
    def build(
        cls,
        utterances: Iterable[Sequence[str]],
        max_size: int | None = None,
        min_count: int = 1,
        case_fold: bool = True,
        styles: Sequence[str] = (),
    ) -> Vocab:
        """Count tokens of a stream of tokenized utterances (without :data:`EOS`) and keep the most frequent.

        ``max_size`` counts the special and style tokens; ``min_count`` drops rarer words (they become :data:`UNK`),
        and so does a token longer than :data:`~autocomplete.tokenizer.MAX_TOKEN_CHARS` (not even counted: a corpus of
        long unique strings must not fill memory with them). ``styles`` names the style tokens to reserve (see
        :meth:`start_ids`).
        """
        reserved = len(SPECIALS) + len(styles)
        if max_size is not None and max_size <= reserved:
            raise ConfigError(f"vocabulary size must be greater than {reserved}, got {max_size}")
        for name in styles:
            check_style_name(name)
        if min_count < 1:
            raise ConfigError(f"min count must be at least 1, got {min_count}")
        inner: Counter[str] = Counter()
        initial: Counter[str] = Counter()
        utterance_count = too_long = 0
        for tokens in utterances:
            utterance_count += 1
            if any(len(t) > MAX_TOKEN_CHARS for t in tokens):
                too_long += sum(len(t) > MAX_TOKEN_CHARS for t in tokens)
                tokens = [t for t in tokens if len(t) <= MAX_TOKEN_CHARS]
            if not case_fold:
                inner.update(tokens)
                continue
            for token, start in zip(tokens, sentence_starts(tokens)):
                (initial if start else inner)[token] += 1
        for token, n in initial.items():
            lower = token.lower()
            fold = case_fold and token != lower and capitalize(lower) == token and inner[lower] > inner[token]
            inner[lower if fold else token] += n
        for special in (*SPECIALS, *map(style_token, styles)):
            inner.pop(special, None)
        ranked = sorted(((n, t) for t, n in inner.items() if n >= min_count), key=lambda x: (-x[0], x[1]))
        if max_size is not None:
            ranked = ranked[: max_size - reserved]
        unk_count = sum(inner.values()) - sum(n for n, _ in ranked) + too_long
        itos = [UNK, EOS, *map(style_token, styles)] + [t for _, t in ranked]
        counts = [unk_count, utterance_count] + [0] * len(styles) + [n for n, _ in ranked]
        return cls(itos, counts, case_fold, styles)


def check_style_name(name: str) -> None:
    """A style name is lower-case letters, digits, ``-`` and ``_``, starting with a letter (``prose``, ``tech``)."""
    if not isinstance(name, str) or not STYLE_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid style name {name!r}: use lower-case letters, digits, - and _, starting with a letter"
        )
    if style_token(name) in SPECIALS:
        raise ConfigError(f"invalid style name {name!r}: {style_token(name)} is a token of its own; choose another")
