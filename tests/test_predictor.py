import threading

import pytest
import torch

from autocomplete.predictor import Predictor
from autocomplete.tokenizer import EOS, UNK
from autocomplete.vocab import EOS_ID

TEXT = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak."


def reference_distribution(lm, text):
    """One forward pass over the whole text, the notebook way."""
    ids = [EOS_ID] + lm.vocab.encode(lm.tokenizer.tokenize(text))
    with torch.no_grad():
        logits, _ = lm.model(torch.tensor([ids]))
    return torch.softmax(logits[0, -1], -1)


def test_word_by_word_feeding_matches_one_pass_over_the_whole_text(tiny_lm):
    predictor = Predictor(tiny_lm)
    typed = ""
    for word in TEXT.split():
        typed += word + " "
        got = predictor.distribution(typed)
        assert (got - reference_distribution(tiny_lm, typed)).abs().max() <= 1e-5


def test_appending_a_word_costs_one_step_however_long_the_text(tiny_lm):
    predictor = Predictor(tiny_lm)
    long_text = "speak " * 500
    predictor.suggest(long_text)
    before = predictor.steps
    predictor.suggest(long_text + "hear ")
    assert predictor.steps - before == 1
    before = predictor.steps
    predictor.suggest(long_text + "hear me ")
    assert predictor.steps - before == 1


def test_typing_inside_a_word_runs_no_step(tiny_lm):
    predictor = Predictor(tiny_lm)
    predictor.suggest("hear me ")
    before = predictor.steps
    for partial in ("s", "sp", "spe"):
        predictor.suggest("hear me " + partial)
    assert predictor.steps == before


def test_an_edit_in_the_middle_resyncs_to_the_same_state_as_a_fresh_predictor(tiny_lm):
    predictor = Predictor(tiny_lm, checkpoint_every=8, keep_recent=4)
    words = ("speak " * 60).split()
    original = " ".join(words) + " "
    predictor.suggest(original)
    words[30] = "hear"
    edited = " ".join(words) + " "
    before = predictor.steps
    got = predictor.distribution(edited)
    fresh = Predictor(tiny_lm).distribution(edited)
    assert (got - fresh).abs().max() <= 1e-5
    assert predictor.steps - before <= 60 - 30 + 8  # recomputed from the checkpoint before the edit, not from 0


def test_backspace_returns_to_a_cached_state_without_recomputing(tiny_lm):
    predictor = Predictor(tiny_lm)
    for text in ("hear ", "hear me ", "hear me speak "):  # typed word by word
        predictor.suggest(text)
    steps = predictor.steps
    back = predictor.distribution("hear me ")
    assert predictor.steps == steps
    assert (back - Predictor(tiny_lm).distribution("hear me ")).abs().max() <= 1e-5


def test_suggestions_complete_the_partial_word_and_carry_probabilities(trained_lm):
    predictor = Predictor(trained_lm)
    suggestions = predictor.suggest("Before we proceed any further, hear me sp", k=5)
    assert suggestions and all(s.word.lower().startswith("sp") for s in suggestions)
    dist = predictor.distribution("Before we proceed any further, hear me ")
    for s in suggestions:
        assert s.probability == pytest.approx(float(dist[s.token_id]), rel=1e-4)
    assert [s.probability for s in suggestions] == sorted((s.probability for s in suggestions), reverse=True)
    assert suggestions[0].completion_for("sp") == suggestions[0].word[2:]


def test_suggestions_never_show_special_tokens_or_bare_punctuation(trained_lm):
    predictor = Predictor(trained_lm)
    for text in ("", "Speak, speak.", "hear me\n", "All"):
        for s in predictor.suggest(text + " ", k=20):
            assert s.word not in (UNK, EOS) and any(ch.isalnum() for ch in s.word)


def test_sentence_starts_are_capitalised(trained_lm):
    predictor = Predictor(trained_lm)
    assert all(s.word[0].isupper() for s in predictor.suggest("Speak, speak. ", k=5) if s.word[0].isalpha())
    assert all(s.word[0].isupper() for s in predictor.suggest("", k=5) if s.word[0].isalpha())


def test_the_typed_prefix_is_kept_and_completed(trained_lm):
    predictor = Predictor(trained_lm)
    for s in predictor.suggest("hear me SP", k=3):
        assert s.word.startswith("SP")


def test_an_unknown_prefix_has_no_suggestions(trained_lm):
    assert Predictor(trained_lm).suggest("hear me zqxw") == []


def test_committed_context_conditions_the_prediction(trained_lm):
    a, b = Predictor(trained_lm), Predictor(trained_lm)
    a.commit("First Citizen:\n")
    b.reset("First Citizen:\n")
    assert torch.equal(a.distribution("We "), b.distribution("We "))
    fresh = Predictor(trained_lm).distribution("First Citizen:\nWe ")
    assert (a.distribution("We ") - fresh).abs().max() <= 1e-5
    assert not torch.allclose(a.distribution("We "), Predictor(trained_lm).distribution("We "))


def test_continuations_are_reproducible_with_a_seed(trained_lm):
    predictor = Predictor(trained_lm)
    one = predictor.continuation("Before we ", max_words=8, temperature=1.0, seed=5, stop_at="never")
    two = predictor.continuation("Before we ", max_words=8, temperature=1.0, seed=5, stop_at="never")
    assert one == two and one.words == 8


def test_temperature_zero_continuation_follows_the_argmax(trained_lm):
    predictor = Predictor(trained_lm)
    greedy = predictor.continuation("Before we ", max_words=3, temperature=0, stop_at="never")
    text = "Before we "
    for token in greedy.tokens:
        dist = predictor.distribution(text)
        dist[0] = 0  # sampling never picks the unknown token
        assert trained_lm.vocab.itos[int(dist.argmax())] == token
        text += token + " "


def test_a_continuation_first_completes_the_partial_word(trained_lm):
    predictor = Predictor(trained_lm)
    cont = predictor.continuation("hear me sp", max_words=3, temperature=0)
    assert cont.tokens[0].lower().startswith("sp")
    assert predictor.tokenizer.tokenize("sp" + cont.text)[0].lower() == cont.tokens[0].lower()


def test_a_continuation_after_a_space_does_not_start_with_one(trained_lm):
    predictor = Predictor(trained_lm)
    assert not predictor.continuation("hear me ", max_words=2, temperature=0).text.startswith(" ")
    assert predictor.continuation("hear me", max_words=2, temperature=0).tokens


def test_stop_at_sentence_end_ends_after_the_terminator(trained_lm):
    predictor = Predictor(trained_lm)
    for seed in range(5):
        cont = predictor.continuation("Speak ", max_words=40, temperature=1.0, seed=seed, stop_at="sentence")
        if cont.ended and cont.tokens and cont.tokens[-1] in (".", "!", "?"):
            assert all(t not in (".", "!", "?") for t in cont.tokens[:-1])


def test_sampling_never_yields_the_unknown_token(trained_lm):
    predictor = Predictor(trained_lm)
    cont = predictor.continuation("", max_words=200, temperature=3.0, top_k=0, top_p=1.0, seed=1, stop_at="never")
    assert UNK not in cont.tokens


def test_concurrent_queries_give_the_same_answers_as_serial_ones(trained_lm):
    predictor = Predictor(trained_lm)
    texts = [f"{w} me " for w in ("hear", "speak", "proceed", "further")] * 5
    expected = {t: [s.word for s in Predictor(trained_lm).suggest(t)] for t in set(texts)}
    errors: list[str] = []

    def worker(text: str) -> None:
        got = [s.word for s in predictor.suggest(text)]
        if got != expected[text]:
            errors.append(text)

    threads = [threading.Thread(target=worker, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_memory_for_states_stays_bounded_on_long_texts(tiny_lm):
    predictor = Predictor(tiny_lm, checkpoint_every=32, keep_recent=64)
    predictor.suggest("speak " * 3000)
    assert len(predictor._states) <= 3000 // 32 + 64 + 2


def test_the_int8_predictor_agrees_with_the_float_one(trained_lm):
    exact, fast = Predictor(trained_lm), Predictor(trained_lm, quantize=True)
    assert fast.model is not exact.model
    for text in ("", "hear me ", "Before we proceed any further, "):
        a, b = exact.distribution(text), fast.distribution(text)
        assert abs(float(b.sum()) - 1) < 1e-4 and (a - b).abs().max() < 0.02
        assert [s.word for s in exact.suggest(text, 3)][:1] == [s.word for s in fast.suggest(text, 3)][:1]


def test_looking_one_word_ahead_and_back_costs_one_step_in_all(tiny_lm):
    predictor = Predictor(tiny_lm)
    predictor.suggest("hear me ")
    steps = predictor.steps
    predictor.continuation("hear me speak", max_words=1, temperature=0, finished=True)  # the grey text's lookahead
    predictor.suggest("hear me spe")  # back: the user is still typing the word
    predictor.suggest("hear me speak ")  # ...and finishes it: the lookahead state is reused
    assert predictor.steps - steps == 1
    reference = Predictor(tiny_lm).distribution("hear me speak ")
    assert (predictor.distribution("hear me speak ") - reference).abs().max() <= 1e-5
