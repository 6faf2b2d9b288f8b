import json
import os

import pytest
import torch

from autocomplete import data
from autocomplete.data import TokenFile
from autocomplete.errors import ConfigError
from autocomplete.token_cache import TokenCache, default_cache_dir
from autocomplete.tokenizer import Tokenizer, TokenizerConfig
from autocomplete.train import TrainConfig, Trainer

from .conftest import SHAKESPEARE, make_lm

tok = Tokenizer()


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(SHAKESPEARE.read_text())
    return path


def entries(folder, suffix):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix))


def no_tokenising(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tokenised although the cache holds the answer")

    monkeypatch.setattr(data, "iter_token_lines", refuse)


def test_the_cache_lives_in_the_user_data_directory_by_default(isolated_user_dirs):
    assert TokenCache().folder == default_cache_dir() == isolated_user_dirs / "token-cache"


@pytest.mark.parametrize("split", [{"valid_fraction": 0.1}, {"valid_fraction": 0.0}, {"valid": True}])
def test_cached_streams_hold_the_same_ids_as_the_in_memory_corpus(tmp_path, corpus_file, split):
    second = tmp_path / "second.txt"
    second.write_text("One more file.\nWith two lines.\n" * 50)
    sources = data.resolve_sources([corpus_file, second])
    valid_sources = data.resolve_sources([second]) if split.get("valid") else []
    fraction = split.get("valid_fraction", 0.0)
    vocab = data.build_vocab(sources, tok)
    memory = data.load_corpus(sources, tok, vocab, "auto", valid_sources, fraction)
    disk = TokenCache(tmp_path / "cache").corpus(sources, tok, vocab, "auto", valid_sources, fraction)
    assert isinstance(disk.train, TokenFile)
    assert torch.equal(disk.train.read(), memory.train)
    if memory.valid is None:
        assert disk.valid is None
    else:
        assert torch.equal(disk.valid.read(), memory.valid)
    assert disk.stats == memory.stats


def test_a_cached_folder_of_short_notes_is_split_as_the_in_memory_corpus_is(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(300):
        (folder / f"n{i:04}.txt").write_text(f"note {i % 7} says hi\n")
    sources = data.resolve_sources([folder])
    vocab = data.build_vocab(sources, tok)
    memory = data.load_corpus(sources, tok, vocab, valid_fraction=0.05)
    disk = TokenCache(tmp_path / "cache").corpus(sources, tok, vocab, valid_fraction=0.05)
    assert torch.equal(disk.train.read(), memory.train) and torch.equal(disk.valid.read(), memory.valid)
    assert len(disk.valid) == pytest.approx(0.05 * 1_500, abs=5)


def test_a_cached_tiny_text_keeps_its_last_token_when_its_tail_is_too_short_to_validate_on(tmp_path):
    path = tmp_path / "toy.txt"
    path.write_text("hello how are you hello how is\n")
    sources = data.resolve_sources([path])
    vocab = data.build_vocab(sources, tok)
    disk = TokenCache(tmp_path / "cache").corpus(sources, tok, vocab, valid_fraction=0.02)
    memory = data.load_corpus(sources, tok, vocab, valid_fraction=0.02)
    assert disk.valid is None and torch.equal(disk.train.read(), memory.train) and len(disk.train) == 8
    assert disk.stats == memory.stats


def test_a_second_run_reads_vocabulary_and_ids_from_the_cache_without_tokenising(tmp_path, corpus_file, monkeypatch):
    sources = data.resolve_sources([corpus_file])
    messages: list[str] = []
    cache = TokenCache(tmp_path / "cache", log=messages.append)
    vocab = cache.vocab(sources, tok, max_size=500)
    first = cache.corpus(sources, tok, vocab, valid_fraction=0.1)
    no_tokenising(monkeypatch)
    again = cache.vocab(sources, tok, max_size=500)
    second = cache.corpus(sources, tok, vocab, valid_fraction=0.1)
    assert again.to_dict() == vocab.to_dict()
    assert torch.equal(second.train.read(), first.train.read()) and second.stats == first.stats
    assert messages[-2].startswith("vocabulary from the cache") and messages[-1].startswith("token ids from the cache")


def test_changing_the_corpus_file_invalidates_its_cached_ids(tmp_path, corpus_file):
    sources = data.resolve_sources([corpus_file])
    vocab = data.build_vocab(sources, tok)
    cache = TokenCache(tmp_path / "cache")
    before = cache.corpus(sources, tok, vocab).train.read()
    corpus_file.write_text("Speak, speak.\n" * 10)
    after = cache.corpus(sources, tok, vocab).train.read()
    assert torch.equal(after, data.load_corpus(sources, tok, vocab).train)
    assert after.numel() == 50 != before.numel()  # "speak , speak . <eos>" × 10
    assert len(entries(tmp_path / "cache", ".tokens")) == 2


def test_touching_the_corpus_file_invalidates_its_cached_vocabulary(tmp_path, corpus_file):
    sources = data.resolve_sources([corpus_file])
    cache = TokenCache(tmp_path / "cache")
    cache.vocab(sources, tok)
    stat = corpus_file.stat()
    os.utime(corpus_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    cache.vocab(sources, tok)
    assert len(entries(tmp_path / "cache", ".vocab.json")) == 2


def test_another_vocabulary_or_tokenizer_or_break_mode_gets_its_own_entry(tmp_path, corpus_file):
    sources = data.resolve_sources([corpus_file])
    cache = TokenCache(tmp_path / "cache")
    full = data.build_vocab(sources, tok)
    small = data.build_vocab(sources, tok, max_size=100)
    a = cache.corpus(sources, tok, full).train.read()
    b = cache.corpus(sources, tok, small).train.read()
    assert torch.equal(b, data.load_corpus(sources, tok, small).train) and not torch.equal(a, b)
    cache.corpus(sources, tok, full, breaks="paragraph")
    cache.corpus(sources, Tokenizer(TokenizerConfig(lowercase=True)), full)
    assert len(entries(tmp_path / "cache", ".tokens")) == 4
    headers = [json.loads((tmp_path / "cache" / name).read_text()) for name in entries(tmp_path / "cache", ".json")]
    assert len({h["inputs"]["vocab"] for h in headers}) == 2


def test_the_vocabulary_size_limits_are_part_of_the_vocabulary_key(tmp_path, corpus_file):
    sources = data.resolve_sources([corpus_file])
    cache = TokenCache(tmp_path / "cache")
    assert len(cache.vocab(sources, tok, max_size=100)) == 100
    assert len(cache.vocab(sources, tok, max_size=200)) == 200
    assert len(cache.vocab(sources, tok)) > len(cache.vocab(sources, tok, min_count=3)) > 200


def test_an_interrupted_build_leaves_neither_an_entry_nor_a_temporary_file(tmp_path, corpus_file, monkeypatch):
    sources = data.resolve_sources([corpus_file])
    vocab = data.build_vocab(sources, tok)
    original = data.iter_source_ids

    def killed_halfway(*args, **kwargs):
        for i, part in enumerate(original(*args, chunk=1000, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield part

    monkeypatch.setattr(data, "iter_source_ids", killed_halfway)
    cache = TokenCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        cache.corpus(sources, tok, vocab)
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith((".lock", ".use"))] == []
    monkeypatch.setattr(data, "iter_source_ids", original)
    assert torch.equal(cache.corpus(sources, tok, vocab).train.read(), data.load_corpus(sources, tok, vocab).train)


def test_the_ids_file_appears_whole_by_rename_and_its_header_is_written_after_it(tmp_path, corpus_file, monkeypatch):
    sources = data.resolve_sources([corpus_file])
    vocab = data.build_vocab(sources, tok)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    TokenCache(tmp_path / "cache").corpus(sources, tok, vocab)
    [(tmp_tokens, tokens), (tmp_header, header)] = renames
    assert tokens.endswith(".tokens") and tmp_tokens.startswith("." + tokens) and tmp_tokens.endswith(".tmp")
    assert header == tokens.replace(".tokens", ".json") and tmp_header.startswith("." + header)


def test_an_ids_file_that_does_not_match_its_header_is_rebuilt(tmp_path, corpus_file):
    sources = data.resolve_sources([corpus_file])
    vocab = data.build_vocab(sources, tok)
    cache = TokenCache(tmp_path / "cache")
    expected = cache.corpus(sources, tok, vocab).train.read()
    [name] = entries(tmp_path / "cache", ".tokens")
    with open(tmp_path / "cache" / name, "r+b") as f:
        f.truncate(100)
    assert torch.equal(cache.corpus(sources, tok, vocab).train.read(), expected)


def test_an_unusable_cache_folder_is_a_clear_error(tmp_path, corpus_file):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the token cache folder"):
        TokenCache(blocker / "cache").vocab(data.resolve_sources([corpus_file]), tok)


def test_training_from_the_cache_reaches_the_same_weights_as_training_from_memory(tmp_path):
    config = TrainConfig(epochs=1, batch_size=8, bptt=16, lr=3e-3, max_steps=15, device="cpu", save_every=1e9)
    sources = data.resolve_sources([SHAKESPEARE])
    results = []
    for name, on_disk in (("memory", False), ("disk", True)):
        lm = make_lm(seed=5, dropout=0.2)
        if on_disk:
            corpus = TokenCache(tmp_path / "cache").corpus(sources, lm.tokenizer, lm.vocab, valid_fraction=0.1)
        else:
            corpus = data.load_corpus(sources, lm.tokenizer, lm.vocab, valid_fraction=0.1)
        result = Trainer(lm, corpus, config, tmp_path / f"{name}.pt", progress=False).run()
        results.append((result, torch.cat([p.detach().flatten() for p in lm.model.parameters()])))
    (memory, w_memory), (disk, w_disk) = results
    assert torch.equal(w_memory, w_disk)
    assert memory.best_valid_loss == disk.best_valid_loss and memory.tokens_seen == disk.tokens_seen


# ---- listing and clearing (`autocomplete cache`) -------------------------------------------------------------------


def fill(folder, corpus_file):
    """A cache holding a vocabulary and the token ids of ``corpus_file``; returns the cache, still reading its ids."""
    cache = TokenCache(folder)
    sources = data.resolve_sources([corpus_file])
    vocab = cache.vocab(sources, tok, max_size=500)
    cache.corpus(sources, tok, vocab, valid_fraction=0.1)
    return cache


def age(entry, days):
    old = entry.last_used - days * 86400
    for f in entry.files:
        os.utime(f, (old, old))


def test_the_cache_lists_each_entry_with_its_size_and_what_it_was_made_from(tmp_path, corpus_file):
    fill(tmp_path / "cache", corpus_file)
    listed = TokenCache(tmp_path / "cache").entries()
    assert sorted(e.kind for e in listed) == ["token ids", "vocabulary"]
    for e in listed:
        assert e.corpus == "1 file(s): corpus.txt"
        assert e.size == sum(f.stat().st_size for f in e.files) > 0
    ids = next(e for e in listed if e.kind == "token ids")
    assert {f.suffix for f in ids.files} >= {".tokens", ".json"}


def test_clearing_keeps_the_ids_a_running_training_reads_until_it_lets_go(tmp_path, corpus_file):
    reader = fill(tmp_path / "cache", corpus_file)
    other = TokenCache(tmp_path / "cache")  # `autocomplete cache --clear` in another terminal
    removed, skipped = other.remove(other.entries())
    assert [e.kind for e in removed] == ["vocabulary"] and [e.kind for e in skipped] == ["token ids"]
    assert all(f.exists() for f in skipped[0].files)
    reader.release()  # the training ended
    removed, skipped = other.remove(other.entries())
    assert [e.kind for e in removed] == ["token ids"] and skipped == []
    assert list((tmp_path / "cache").iterdir()) == []


def test_reading_an_entry_marks_it_as_used(tmp_path, corpus_file):
    fill(tmp_path / "cache", corpus_file).release()
    for e in TokenCache(tmp_path / "cache").entries():
        age(e, 30)
    assert all(e.age_days() > 29 for e in TokenCache(tmp_path / "cache").entries())
    fill(tmp_path / "cache", corpus_file).release()  # a second training on the same corpus
    assert all(e.age_days() < 1 for e in TokenCache(tmp_path / "cache").entries())


def test_files_left_by_a_killed_build_are_listed_as_unfinished_and_cleared(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / ".0123456789abcdef0123456789abcdef.tokens.k2j3.tmp").write_bytes(b"\0" * 400)
    (folder / "notes.txt").write_text("not the cache's")
    [entry] = TokenCache(folder).entries()
    assert entry.kind == "unfinished" and entry.size == 400
    TokenCache(folder).remove([entry])
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


@pytest.mark.skipif(os.name != "posix", reason="locks are POSIX flock")
def test_a_temporary_file_that_a_build_is_writing_is_not_removed(tmp_path):
    import fcntl

    folder = tmp_path / "cache"
    folder.mkdir()
    key = "0123456789abcdef0123456789abcdef"
    (folder / f".{key}.tokens.k2j3.tmp").write_bytes(b"\0" * 400)
    with open(folder / f"{key}.tokens.lock", "a+b") as lock:  # what a build in another process holds
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        removed, skipped = TokenCache(folder).remove(TokenCache(folder).entries())
        assert removed == [] and [e.kind for e in skipped] == ["unfinished"]
    removed, skipped = TokenCache(folder).remove(TokenCache(folder).entries())  # the build was killed
    assert [e.kind for e in removed] == ["unfinished"] and skipped == []
    assert not (folder / f".{key}.tokens.k2j3.tmp").exists()


def test_the_cache_command_lists_and_clears_only_what_is_old_enough(tmp_path, corpus_file, capsys):
    from autocomplete.cli import main

    folder = tmp_path / "cache"
    fill(folder, corpus_file).release()
    vocab_entry = next(e for e in TokenCache(folder).entries() if e.kind == "vocabulary")
    age(vocab_entry, 10)
    assert main(["cache", "--cache-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(2 entries," in out and "token ids" in out and "vocabulary" in out and "corpus.txt" in out
    assert main(["cache", "--cache-dir", str(folder), "--clear", "--older-than", "5"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 of 2 entries")
    assert [e.kind for e in TokenCache(folder).entries()] == ["token ids"]
    with pytest.raises(SystemExit) as exit:  # a usage error
        main(["cache", "--cache-dir", str(folder), "--older-than", "5"])
    assert exit.value.code == 2 and "autocomplete cache: error: --older-than goes with --clear" in capsys.readouterr().err
