import pytest

from autocomplete.errors import ConfigError
from autocomplete.tokenizer import EOS, UNK, Tokenizer
from autocomplete.vocab import EOS_ID, UNK_ID, Vocab

tok = Tokenizer()


def build(lines: list[str], **kwargs: object) -> Vocab:
    return Vocab.build((tok.tokenize_line(line) for line in lines), **kwargs)  # type: ignore[arg-type]


def test_special_tokens_come_first_and_words_by_frequency():
    vocab = build(["b a b", "c b a"])
    assert vocab.itos[:2] == [UNK, EOS]
    assert vocab.itos[2:] == ["b", "a", "c"]
    assert vocab.counts[2:] == [3, 2, 1]


def test_max_size_and_min_count_drop_rare_words_to_unknown():
    vocab = build(["a a a b b c"], max_size=3)
    assert vocab.itos == [UNK, EOS, "a"]
    assert vocab.encode(["a", "b", "zzz"]) == [2, UNK_ID, UNK_ID]
    assert "c" not in build(["a a c"], min_count=2)


@pytest.mark.parametrize("styles", [(), ("prose", "dialogue")])
@pytest.mark.parametrize("max_size", [None, 6])
def test_pruning_rare_words_gives_the_vocabulary_that_min_count_builds(max_size, styles):
    lines = ["The a a a b b c d", "e e b The", "f g a"]
    pruned = build(lines, max_size=max_size, styles=styles).pruned(2)
    direct = build(lines, max_size=max_size, min_count=2, styles=styles)
    assert pruned.itos == direct.itos and pruned.counts == direct.counts
    assert pruned.styles == direct.styles == styles  # a styled training run that prunes keeps its styles
    assert sum(pruned.counts) == sum(build(lines).counts)  # every token is still counted, the dropped ones as <unk>


def test_sentence_initial_capitals_fold_into_the_common_lower_case_word():
    vocab = build(["The cat sat on the mat .", "The dog saw the cat .", "I think the dog and I agree ."])
    assert "The" not in vocab and "the" in vocab
    assert vocab.encode(tok.tokenize_line("The dog")) == vocab.encode(["the", "dog"], at_start=False)


def test_names_and_the_pronoun_i_keep_their_capital():
    vocab = build(["I saw London .", "London is big and I like London ."])
    assert "I" in vocab and "i" not in vocab
    assert "London" in vocab and "london" not in vocab
    assert vocab.encode(["London"], at_start=True) == [vocab.stoi["London"]]


def test_a_capital_mid_sentence_is_kept_as_written():
    vocab = build(["the end .", "he said The End"])
    ids = vocab.encode(tok.tokenize_line("he said The"))
    assert vocab.itos[ids[-1]] in ("The", UNK)


def test_vocabulary_round_trips_through_a_plain_dict():
    vocab = build(["The cat sat .", "the cat ."])
    again = Vocab.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos and again.counts == vocab.counts
    assert again.encode(["The", "cat"]) == vocab.encode(["The", "cat"])


def test_decode_inverts_encode_for_known_words():
    vocab = build(["a b c"])
    assert vocab.decode(vocab.encode(["c", "a", EOS], at_start=False)) == ["c", "a", EOS]
    assert vocab.encode([EOS]) == [EOS_ID]


def test_invalid_sizes_are_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="vocabulary size"):
        build(["a"], max_size=2)
    with pytest.raises(ConfigError, match="min count"):
        build(["a"], min_count=0)
