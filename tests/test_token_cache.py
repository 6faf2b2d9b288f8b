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
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []
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
