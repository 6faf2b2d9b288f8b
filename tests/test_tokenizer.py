from hypothesis import given, settings
from hypothesis import strategies as st

from autocomplete.tokenizer import (
    EOS,
    Detokenizer,
    Tokenizer,
    TokenizerConfig,
    detokenize,
    ends_sentence,
    sentence_starts,
)

tok = Tokenizer()


def roundtrip(text: str) -> list[str]:
    tokens = tok.tokenize(text)
    assert tok.tokenize(detokenize(tokens)) == tokens
    return tokens


def test_punctuation_is_split_off_and_joined_back_naturally():
    tokens = roundtrip("Hello, world. How are you?")
    assert tokens == ["Hello", ",", "world", ".", "How", "are", "you", "?"]
    assert detokenize(tokens) == "Hello, world. How are you?"


def test_contractions_and_hyphenated_words_stay_whole():
    assert roundtrip("I don't know, it's well-known.") == ["I", "don't", "know", ",", "it's", "well-known", "."]


def test_curly_quotes_and_apostrophes_fold_to_ascii():
    tokens = roundtrip("“Don’t,” she said.")
    assert tokens == ['"', "don't".capitalize(), ",", '"', "she", "said", "."]
    assert detokenize(tokens) == '"Don\'t," she said.'


def test_numbers_urls_emails_and_abbreviations_are_single_tokens():
    tokens = roundtrip("Mr. Smith paid $3.14 at 11:30, see https://example.com/a?b=1. Mail a.b@c.org now")
    assert "Mr." in tokens and "3.14" in tokens and "11:30" in tokens
    assert "https://example.com/a?b=1" in tokens and "a.b@c.org" in tokens
    assert tokens[tokens.index("https://example.com/a?b=1") + 1] == "."


def test_empty_and_whitespace_only_text_have_no_tokens():
    assert tok.tokenize("") == []
    assert tok.tokenize("   \t  ") == []


def test_newlines_become_end_of_utterance_tokens():
    assert tok.tokenize("hi there\nbye\n") == ["hi", "there", EOS, "bye", EOS]


def test_emoji_sequences_and_combining_marks_stay_attached():
    family = "👨\u200d👩\u200d👧"
    tokens = roundtrip(f"cafe\u0301 {family} 👍🏽 ok 🇫🇷")
    assert tokens == ["caf\u00e9", family, "👍🏽", "ok", "🇫🇷"]  # the accent composed (NFC); a flag's two letters one


def test_a_word_goes_on_after_an_accent_or_a_vowel_sign_and_is_the_same_word_however_its_accents_were_typed():
    assert roundtrip("Reme\u0301dios nai\u0308ve") == roundtrip("Remédios naïve") == ["Remédios", "naïve"]
    assert roundtrip("नमस्ते दुनिया, สวัสดีครับ") == ["नमस्ते", "दुनिया", ",", "สวัสดีครับ"]
    assert roundtrip("Ọjọ́bọ") == ["Ọjọ́bọ"]


def test_invisible_hints_are_dropped_and_page_breaks_and_zero_width_spaces_separate_words():
    assert tok.tokenize("\ufeffco\xadoperation") == ["cooperation"]  # a byte-order mark, a soft hyphen
    assert tok.tokenize("page\x0cNext\x0bline zero\u200bwidth") == ["page", "Next", "line", "zero", "width"]


def test_control_characters_are_dropped():
    assert tok.tokenize("a\x00b\x07 c\x1b") == ["ab", "c"]


def test_right_to_left_text_tokenizes_into_words():
    assert roundtrip("שלום עולם, مرحبا") == ["שלום", "עולם", ",", "مرحبا"]


def test_a_very_long_line_tokenizes_completely():
    text = "word " * 50_000
    assert len(roundtrip(text)) == 50_000


def test_whitespace_tokenizer_keeps_pretokenized_text_as_is():
    ws = Tokenizer(TokenizerConfig(kind="whitespace"))
    assert ws.tokenize(" the <unk> cost N dollars \n") == ["the", "<unk>", "cost", "N", "dollars", EOS]


def test_split_partial_separates_the_word_being_typed():
    assert tok.split_partial("how are yo") == ("how are ", "yo")
    assert tok.split_partial("how are ") == ("how are ", "")
    assert tok.split_partial("Hello,") == ("Hello,", "")
    assert tok.split_partial("I don't") == ("I ", "don't")
    assert tok.split_partial("") == ("", "")


def test_a_word_typed_up_to_its_apostrophe_or_hyphen_or_accent_is_still_being_typed():
    assert tok.split_partial("I don'") == tok.split_partial("I don’") == ("I ", "don'")  # then ``t``, not a new word
    assert tok.split_partial("a well-") == ("a ", "well-")
    # a quote that closes what it opened ends the word: the next words are offered, as after any finished word
    assert tok.split_partial("she said 'yes'") == ("she said 'yes'", "")
    assert tok.split_partial("what is ‘it’") == ("what is ‘it’", "")
    assert tok.split_partial("'I am here'") == ("'I am here'", "")
    assert tok.split_partial("the boys'") == ("the ", "boys'")
    assert tok.split_partial("Later I met Reme\u0301") == ("Later I met ", "Reme\u0301")
    assert tok.split_partial("नमस्") == ("", "नमस्")
    assert tok.split_partial("a --") == ("a --", "") and tok.split_partial("pi is 3.14") == ("pi is 3.14", "")


def test_sentence_starts_follow_terminators_and_skip_opening_quotes():
    tokens = tok.tokenize('He left. "The end," I said.')
    flags = dict(zip(tokens, sentence_starts(tokens)))
    assert flags["He"] and flags["The"] and not flags["I"]
    assert ends_sentence(["Hi", "."]) and not ends_sentence(["Hi", ","]) and ends_sentence([])


def test_detokenizer_capitalises_sentence_starts_when_asked():
    assert detokenize(["i", "went", ".", "then", "i", "left", "."], sentence_case=True) == "I went. Then i left."
    assert detokenize(["ﬁnal", "."], sentence_case=True) == "Final."  # a ligature's title case, not "FInal"


def test_chinese_and_japanese_get_no_spaces_and_their_punctuation_and_arabics_none_before_it():
    assert detokenize(["我喜欢吃苹果", "。", "你喜欢吃什么", "？"]) == "我喜欢吃苹果。你喜欢吃什么？"
    assert detokenize(["「", "東京", "」", "です"]) == "「東京」です"
    assert detokenize(["مرحبا", "،", "كيف", "حالك", "؟"]) == "مرحبا، كيف حالك؟"
    assert detokenize(["한국어", "문장", "."]) == "한국어 문장."  # Korean spaces its words
    assert detokenize(["मैं", "ठीक", "हूँ", "।"]) == "मैं ठीक हूँ।"


def test_detokenizer_streams_the_same_text_as_a_whole_join():
    tokens = tok.tokenize('She said, "yes (really)" -- twice... ok?!')
    detok = Detokenizer()
    assert "".join(detok.feed(t) for t in tokens) == detokenize(tokens)
    assert detokenize(tokens) == 'She said, "yes (really)"--twice... ok?!'


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_tokenize_never_raises_and_detokenize_preserves_the_tokens(text):
    tokens = tok.tokenize(text)
    assert all(t.strip() for t in tokens)
    assert tok.tokenize(detokenize(tokens)) == tokens


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", ",", ".", '"', "'", "(", ")", "-", "--", "3", "x-y", "?", "!", "$"])))
def test_detokenize_of_any_token_sequence_retokenizes_to_it(tokens):
    assert tok.tokenize(detokenize(tokens)) == tokens
