import contextlib
import errno
import io
import os
import sys
import tempfile
import threading

import pytest
import torch

from autocomplete import data
from autocomplete.data import CorpusStats
from autocomplete.errors import CorpusError
from autocomplete.tokenizer import Tokenizer
from autocomplete.vocab import EOS_ID

from .conftest import SHAKESPEARE

tok = Tokenizer()

PROSE = "\n".join(
    [
        "It was a bright cold day in April, and the clocks were striking. Winston",
        "Smith, his chin nuzzled into his breast in an effort to escape the wind,",
        "slipped quickly through the glass doors of Victory Mansions, though not",
    ]
    * 10
)


def utterances(path, breaks="auto"):
    [source] = data.resolve_sources([path])
    return list(data.iter_utterances(source, breaks, CorpusStats()))


def test_folders_expand_to_their_text_files_in_order(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / "skip.bin").write_text("x")
    assert [s.name for s in data.resolve_sources([tmp_path])] == [str(tmp_path / "b.txt"), str(tmp_path / "sub/a.txt")]


def test_missing_paths_empty_folders_and_binary_files_are_named(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt: no such file"):
        data.resolve_sources([tmp_path / "nope.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="empty: folder holds no .txt files"):
        data.resolve_sources([tmp_path / "empty"])
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\x00\x00\x01binary")
    with pytest.raises(CorpusError, match="image.txt: looks like a binary file"):
        data.resolve_sources([tmp_path / "image.txt"])


@contextlib.contextmanager
def locked(*paths):
    """``paths`` without any permission for the length of a ``with`` block (a test is skipped where they still can be
    read: as root)."""
    for path in paths:
        path.chmod(0)
    try:
        if any(os.access(path, os.R_OK) for path in paths):
            pytest.skip("permissions do not bind here (running as root)")
        yield
    finally:
        for path in paths:
            path.chmod(0o755)


def test_what_a_folder_holds_that_cannot_be_read_is_skipped_with_one_warning_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("hello there\n")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.txt").write_text("dear diary\n")
    (tmp_path / "secret.txt").write_text("a secret\n")
    warnings = []
    with locked(tmp_path / "private", tmp_path / "secret.txt"):
        sources = data.resolve_sources([tmp_path], warn=warnings.append)
    assert [s.name for s in sources] == [str(tmp_path / "notes.txt")]
    assert warnings == [f"cannot read {tmp_path / 'secret.txt'} (Permission denied), {tmp_path / 'private'} "
                        "(Permission denied): skipped"]


def test_a_folder_named_that_cannot_be_read_is_an_error_not_an_empty_folder(tmp_path):
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.txt").write_text("dear diary\n")
    with locked(tmp_path / "private"), pytest.raises(CorpusError, match="private: cannot read \\(Permission denied\\)$"):
        data.resolve_sources([tmp_path / "private"])


def test_standard_input_is_read_as_a_corpus_from_a_copy_that_is_removed_after_use(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the copy is made, to see it go
    with data.opened_sources(["-"], stdin=io.BytesIO(b"one two\nthree\n")) as [source]:
        assert source.name == "<stdin>" and source.temporary and source.path.parent == tmp_path
        assert [t for t, _ in data.iter_utterances(source, "line", CorpusStats())] == ["one two", "three"]
    assert not source.path.exists() and list(tmp_path.iterdir()) == []


class EndlessStream(io.RawIOBase):
    """``/dev/zero`` (``byte`` b"\\0") or ``yes`` (b"y\\n"), that fails the test once more than ``limit`` bytes are
    read from it: a copy that reads it to the end would otherwise fill the disk."""

    def __init__(self, pattern: bytes, limit: int = 8 << 20) -> None:
        self.pattern, self.limit, self.given = pattern, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        assert self.given < self.limit, f"read {self.given:,} bytes of an endless stream"
        n = len(buffer) - len(buffer) % len(self.pattern)
        buffer[:n] = self.pattern * (n // len(self.pattern))
        self.given += n
        return n


def test_an_endless_binary_stream_is_refused_at_its_first_chunk_and_its_copy_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    zeros = EndlessStream(b"\0")
    with pytest.raises(CorpusError, match="^<stdin>: looks like a binary file, not text$"):
        data.resolve_sources(["-"], stdin=io.BufferedReader(zeros))
    assert zeros.given <= 4 << 20 and list(tmp_path.iterdir()) == []


def test_a_binary_pipe_is_refused_before_it_is_copied_to_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spools"))
    (tmp_path / "spools").mkdir()
    fifo = tmp_path / "zeros"
    os.mkfifo(fifo)

    written = []

    def writer():  # `train <(cat /dev/zero)`: ends when the reader closes the pipe
        try:
            with open(fifo, "wb") as f:
                for _ in range(64):  # 64 MiB at most, if the reader never stopped
                    f.write(bytes(1 << 20))
                    written.append(1 << 20)
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with pytest.raises(CorpusError, match="zeros: looks like a binary file, not text$"):
        data.resolve_sources([fifo])
    thread.join(timeout=30)
    assert not thread.is_alive() and list((tmp_path / "spools").iterdir()) == []
    assert sum(written) <= 4 << 20  # not read to the end


def test_an_endless_text_stream_ends_in_one_error_and_no_copy_when_the_disk_fills(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    make = tempfile.NamedTemporaryFile
    written = []

    def full_disk(*args, **kwargs):  # the copy takes 3 MiB, then the disk is full
        tmp = make(*args, **kwargs)
        real = tmp.write

        def write(chunk):
            if sum(written) >= 3 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(len(chunk))
            return real(chunk)

        tmp.write = write
        return tmp

    monkeypatch.setattr(data.tempfile, "NamedTemporaryFile", full_disk)
    with pytest.raises(CorpusError) as error:
        data.resolve_sources(["-"], stdin=io.BufferedReader(EndlessStream(b"y\n")))
    message = str(error.value)
    assert message.startswith("<stdin>: cannot copy it to ") and message.endswith("(No space left on device)")
    assert "\n" not in message and sum(written) >= 3 << 20 and list(tmp_path.iterdir()) == []


def test_wrapped_prose_is_joined_into_paragraphs(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(PROSE + "\n\nSecond paragraph here.\n")
    segments = utterances(path)
    assert len(segments) == 2
    assert segments[0][0].startswith("It was a bright") and "Winston Smith" in segments[0][0]
    assert data.detect_layout(PROSE.split("\n")) == "paragraph"


def test_one_utterance_per_line_corpora_keep_their_lines(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("hi\nhello there, how can I help?\n\nbye\n" * 10)
    segments = utterances(path)
    assert segments[:3] == [("hi", True), ("hello there, how can I help?", True), ("bye", True)]


def test_a_utf8_file_with_a_stray_byte_stays_utf8_with_that_byte_replaced_and_counted(tmp_path):
    path = tmp_path / "damaged.txt"
    path.write_bytes(b"na\xefve ok\n" + "café, déjà vu\n".encode())  # UTF-8 but for its first accent, a Latin-1 byte
    [source] = data.resolve_sources([path])
    stats = CorpusStats()
    texts = [t for t, _ in data.iter_utterances(source, "line", stats)]
    assert texts == ["na\ufffdve ok", "café, déjà vu"]
    assert stats.replaced_bytes == 1 and stats.files_with_replacements == [str(path)] and stats.legacy_files == []


def test_a_latin1_file_is_read_as_windows_1252_whole_words_and_named(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Le garçon Brûlémont était très fâché.\n“Déjà”, dit-il — €5\n".encode("cp1252"))
    [source] = data.resolve_sources([path])
    stats = CorpusStats()
    texts = [t for t, _ in data.iter_utterances(source, "line", stats)]
    assert texts == ["Le garçon Brûlémont était très fâché.", "“Déjà”, dit-il — €5"]
    assert stats.legacy_files == [str(path)] and stats.replaced_bytes == 0
    assert {"garçon", "Brûlémont", "était"} <= set(tok.tokenize_line(texts[0]))


def test_a_latin1_file_whose_accents_come_after_a_long_ascii_start_is_still_windows_1252(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"plain ascii words\n" * 100_000 + "un garçon\n".encode("latin-1"))  # 1.8 MB before the ç
    stats = CorpusStats()
    [source] = data.resolve_sources([path])
    assert [t for t, _ in data.iter_utterances(source, "line", stats)][-1] == "un garçon"
    assert stats.legacy_files == [str(path)]


def test_bytes_windows_1252_leaves_undefined_read_as_latin1_not_replaced(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_bytes(b"a\x81b caf\xe9\n")
    stats = CorpusStats()
    [source] = data.resolve_sources([path])
    assert [t for t, _ in data.iter_utterances(source, "line", stats)] == ["a\x81b café"]
    assert stats.replaced_bytes == 0


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_with_a_byte_order_mark_reads_as_its_text(tmp_path, encoding):
    path = tmp_path / "windows.txt"
    mark = "\ufeff".encode(encoding)
    path.write_bytes(mark + "Le garçon\r\nsecond line 𝄞\rthird\n".encode(encoding))
    stats = CorpusStats()
    [source] = data.resolve_sources([path])
    assert [t for t, _ in data.iter_utterances(source, "line", stats)] == ["Le garçon", "second line 𝄞", "third"]
    assert stats.replaced_bytes == 0 and stats.legacy_files == []


def test_a_utf16_file_larger_than_a_read_keeps_every_character_whole_across_reads(tmp_path):
    path = tmp_path / "big16.txt"
    line = "é𝄞 mots\n"  # 18 bytes with a surrogate pair: reads of 64 KiB end at every even offset in it
    path.write_bytes(("\ufeff" + line * 30_000).encode("utf-16-be"))
    stats = CorpusStats()
    [source] = data.resolve_sources([path])
    assert next(data.iter_utterances(source, "line", stats)) == ("é𝄞 mots", True)
    assert set(data.iter_utterances(source, "line", stats)) == {("é𝄞 mots", True)} and stats.replaced_bytes == 0


def test_utf16_from_standard_input_is_read_and_binary_with_a_utf16_mark_still_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    text = "\ufeffhello wörld\n".encode("utf-16-le")
    [source] = data.resolve_sources(["-"], stdin=io.BytesIO(text))
    assert [t for t, _ in data.iter_utterances(source, "line", CorpusStats())] == ["hello wörld"]
    data.remove_spools([source])
    with pytest.raises(CorpusError, match="^<stdin>: looks like a binary file, not text$"):
        data.resolve_sources(["-"], stdin=io.BytesIO(b"\xff\xfeh\x00\x00\x00\x01\x02"))
    (tmp_path / "fake.txt").write_bytes(b"\xff\xfeh\x00\x00\x00\x01\x02")  # a NUL code unit: not UTF-16 text
    with pytest.raises(CorpusError, match="fake.txt: looks like a binary file"):
        data.resolve_sources([tmp_path / "fake.txt"])


def test_a_real_binary_file_is_still_refused(tmp_path):
    program = tmp_path / "program.txt"
    program.write_bytes(open(sys.executable, "rb").read(1 << 16))
    with pytest.raises(CorpusError, match="program.txt: looks like a binary file, not text"):
        data.resolve_sources([program])


@pytest.mark.parametrize("encoding, mark", [("utf-8", ""), ("utf-16-le", "\ufeff")])
def test_an_enormous_line_is_read_in_bounded_pieces_without_losing_words(tmp_path, monkeypatch, encoding, mark):
    monkeypatch.setattr(data, "MAX_SEGMENT", 1000)
    path = tmp_path / "long.txt"
    words = [f"w{i}" for i in range(3000)]
    path.write_bytes((mark + " ".join(words) + "\nnext line\n").encode(encoding))
    segments = utterances(path, "line")
    assert all(len(t) <= 1000 for t, _ in segments)
    assert [ends for _, ends in segments].count(True) == 2
    assert " ".join(t for t, _ in segments).split() == words + ["next", "line"]


def test_vocabulary_and_ids_come_from_the_same_stream(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a b a\nb c\n")
    sources = data.resolve_sources([path])
    vocab = data.build_vocab(sources, tok, "line")
    corpus = data.load_corpus(sources, tok, vocab, "line")
    assert vocab.decode(corpus.train.tolist()) == ["a", "b", "a", "<eos>", "b", "c", "<eos>"]
    assert corpus.valid is None and corpus.stats.tokens == 7 and corpus.stats.utterances == 2


def test_validation_is_the_tail_of_each_file():
    sources = data.resolve_sources([SHAKESPEARE])
    vocab = data.build_vocab(sources, tok)
    corpus = data.load_corpus(sources, tok, vocab, valid_fraction=0.1)
    total = corpus.train.numel() + corpus.valid.numel()
    assert corpus.valid.numel() == pytest.approx(total * 0.1, abs=2)


def notes(folder, count=300, words=4):
    """A folder of one-line notes, ``words`` words each (``count`` files), as a notes app or a chat export leaves."""
    folder.mkdir()
    for i in range(count):
        (folder / f"n{i:04}.txt").write_text(" ".join(f"w{(i + j) % 50}" for j in range(words)) + "\n")
    return data.resolve_sources([folder])


def test_a_folder_of_one_line_notes_keeps_their_ends_in_training_and_holds_out_the_fraction_asked(tmp_path):
    sources = notes(tmp_path / "notes")  # 300 notes of 5 tokens: each one's last token is its <eos>
    vocab = data.build_vocab(sources, tok)
    corpus = data.load_corpus(sources, tok, vocab, valid_fraction=0.1)
    total = corpus.train.numel() + corpus.valid.numel()
    assert corpus.valid.numel() == pytest.approx(total * 0.1, abs=5)
    train_ends = (corpus.train == EOS_ID).sum().item()
    valid_ends = (corpus.valid == EOS_ID).sum().item()
    assert train_ends + valid_ends == 300 and train_ends == pytest.approx(270, abs=5)
    assert valid_ends < corpus.valid.numel() / 2  # whole notes, not only their ends


def test_the_validation_split_pools_short_files_and_cuts_long_ones_alone():
    split = data.ValidationSplit(0.1)
    assert [split.after(100, last=False) for _ in range(5)] == [0, 0, 0, 0, 50]
    assert split.after(2_000, last=False) == 200  # a long file gives its own tail, as it always has
    assert split.after(7, last=True) == 0  # the last file ends the pool: a tenth of 7 tokens rounds down to none
    assert data.ValidationSplit(0.0).after(10_000, last=True) == 0


def test_a_validation_tail_too_short_to_use_is_trained_on(tmp_path):
    path = tmp_path / "toy.txt"
    path.write_text("hello how are you hello how is\n")  # 8 tokens: a 2% tail is one token, too few to validate on
    sources = data.resolve_sources([path])
    vocab = data.build_vocab(sources, tok)
    corpus = data.load_corpus(sources, tok, vocab, valid_fraction=0.02)
    assert corpus.valid is None
    assert vocab.decode(corpus.train.tolist()) == "hello how are you hello how is <eos>".split()


def test_an_empty_or_whitespace_corpus_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("   \n\n\t\n")
    sources = data.resolve_sources([path])
    vocab = data.build_vocab(sources, tok)
    with pytest.raises(CorpusError, match="blank.txt: no text to train on"):
        data.load_corpus(sources, tok, vocab)


def test_batches_walk_contiguous_columns_with_targets_shifted_by_one():
    ids = torch.arange(20)
    batched = data.batchify(ids, 4)
    assert batched.tolist()[1] == [5, 6, 7, 8, 9]
    windows = list(data.bptt_batches(batched, 2))
    assert [o for o, _, _ in windows] == [0, 2]
    _, x, y = windows[1]
    assert x.tolist()[0] == [2, 3] and y.tolist()[0] == [3, 4]
    assert data.BatchedStream(ids, 4).num_batches(2) == len(windows)


def test_encode_text_ends_every_line_with_eos():
    vocab = data.build_vocab(data.resolve_sources([SHAKESPEARE]), tok)
    ids = data.encode_text("Speak, speak.\nAll", tok, vocab)
    assert ids.tolist().count(EOS_ID) == 2


def write_ids(path, ids):
    path.write_bytes(ids.to(torch.int32).numpy().tobytes())
    return data.TokenFile(path)


def test_a_token_file_reads_ranges_and_slices_without_loading_the_file(tmp_path):
    ids = torch.arange(100, dtype=torch.int32)
    tokens = write_ids(tmp_path / "ids.tokens", ids)
    assert len(tokens) == 100 and torch.equal(tokens.read(), ids)
    tail = tokens[60:]
    assert len(tail) == 40 and torch.equal(tail.read(5, 8), ids[65:68])
    assert torch.equal(tail[10:20].read_rows([0, 5], 3), torch.tensor([[70, 71, 72], [75, 76, 77]], dtype=torch.int32))
    assert len(tokens[90:10]) == 0
    with pytest.raises(IndexError):
        tail.read_rows([38], 3)


@pytest.mark.parametrize("batch_size, bptt, start", [(1, 7, 0), (4, 5, 0), (16, 35, 0), (8, 3, 9), (3, 100, 0)])
def test_disk_backed_batches_are_identical_to_in_memory_batches(tmp_path, batch_size, bptt, start):
    ids = torch.randint(0, 5000, (1237,), dtype=torch.int32)
    on_disk = data.BatchedStream(write_ids(tmp_path / "ids.tokens", ids)[3:], batch_size)  # a view, as a rank shard
    in_memory = data.BatchedStream(ids[3:], batch_size)
    windows = list(in_memory.windows(bptt, start))
    assert len(windows) == in_memory.num_batches(bptt) - start // bptt == on_disk.num_batches(bptt) - start // bptt
    for (i, x, y), (j, u, v) in zip(windows, on_disk.windows(bptt, start), strict=True):
        assert i == j and torch.equal(x, u) and torch.equal(y, v) and x.dtype == u.dtype == torch.long


def test_a_batched_stream_lays_columns_out_like_batchify():
    ids = torch.arange(20)
    stream = data.BatchedStream(ids, 4)
    [(_, x, y), *_] = stream.windows(2)
    assert x.tolist() == data.batchify(ids, 4)[:, :2].tolist() and y[:, 0].tolist() == [1, 6, 11, 16]


@pytest.mark.parametrize("encoded", [
    "Le garçon était là.\r\nIl est parti.\n".encode("cp1252"),
    "Le garçon était là.\r\nIl est parti.".encode("utf-8"),
    "\ufeffLe garçon était là.\r\nIl est parti.\n".encode("utf-16-le"),
    b"word " * 300_000 + b"\n",  # a line cut into pieces
], ids=["windows-1252", "utf-8", "utf-16", "cut-line"])
def test_reading_a_file_counts_every_byte_of_it_once(tmp_path, monkeypatch, encoded):
    monkeypatch.setattr(data, "MAX_SEGMENT", 1 << 16)
    path = tmp_path / "text.txt"
    path.write_bytes(encoded)
    stats = data.CorpusStats()
    lines = list(data.iter_utterances(data.Source(path, path.name), "line", stats))
    assert lines and stats.bytes_read == len(encoded)
