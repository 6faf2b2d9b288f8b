import math

import pytest
import torch

from autocomplete import data
from autocomplete.evaluate import (
    evaluate,
    evaluate_loss,
    evaluate_stream,
    keystroke_savings,
    read_eval_text,
    shown_perplexity,
)
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import EOS

from .conftest import SHAKESPEARE, TOY


def test_perplexity_is_the_mean_log_likelihood_the_predictor_assigns(trained_lm):
    predictor = Predictor(trained_lm)
    text = "Before we proceed any further, hear me speak."
    ids = torch.tensor(trained_lm.vocab.encode(trained_lm.tokenizer.tokenize(text)))
    loss, accuracy, count = evaluate_stream(trained_lm.model, ids, chunk=4)
    manual = 0.0
    tokens = trained_lm.tokenizer.tokenize(text)
    for i, token_id in enumerate(ids.tolist()):
        manual -= math.log(float(predictor.distribution(" ".join(tokens[:i]) + " " if i else "")[token_id]))
    assert count == len(tokens)
    assert loss == pytest.approx(manual / count, rel=1e-4)
    assert 0 <= accuracy[1] <= accuracy[3] <= accuracy[5] <= 1


@pytest.mark.parametrize("loss, shown", [(math.log(124.349), "124.35"), (50.0, "5.18e+21"), (1e6, "inf")])
def test_a_perplexity_is_shown_with_two_decimals_or_as_a_power_of_ten_once_it_is_absurd(loss, shown):
    assert shown_perplexity(loss) == shown  # a run with --lr 10 printed one of 73 digits


def test_batched_loss_agrees_with_the_stream_loss_roughly(trained_lm):
    sources = data.resolve_sources([SHAKESPEARE])
    ids, _ = read_eval_text(sources, trained_lm.tokenizer, trained_lm.vocab)
    stream, _, _ = evaluate_stream(trained_lm.model, ids[:3000])
    batched, n = evaluate_loss(trained_lm.model, ids[:3000], batch_size=1, bptt=3000)
    assert n == 2999 and batched == pytest.approx(stream, rel=0.05)


def test_keystroke_savings_follow_the_published_protocol(toy_model_path):
    predictor = Predictor.load(toy_model_path)
    tokens = TOY.split()  # hello how are you hello how is: 24 letters + 7 spaces
    everything = keystroke_savings(predictor, tokens, k=50)  # every word is shown before its first letter
    assert (everything.keys_without, everything.keys_with, everything.words) == (31, 7, 7)
    assert everything.savings == pytest.approx(1 - 7 / 31)
    unknown = keystroke_savings(predictor, ["zebra", "hello"], k=50)  # an unknown word is typed in full + space
    assert unknown.keys_with == 6 + 1


def test_one_suggestion_saves_less_than_many(toy_model_path):
    predictor = Predictor.load(toy_model_path)
    tokens = (TOY + " " + TOY).split() + [EOS]
    one, five = keystroke_savings(predictor, tokens, k=1), keystroke_savings(predictor, tokens, k=5)
    assert 0 < one.savings <= five.savings < 1


def test_the_max_words_limit_counts_typed_words(toy_model_path):
    result = keystroke_savings(Predictor.load(toy_model_path), TOY.split(), k=3, max_words=2)
    assert result.words == 2 and result.keys_without == len("hello how ")


def test_a_report_holds_all_metrics_and_serialises(trained_lm):
    predictor = Predictor(trained_lm)
    ids, surface = read_eval_text(data.resolve_sources([SHAKESPEARE]), trained_lm.tokenizer, trained_lm.vocab)
    report = evaluate(predictor, ids[:400], surface[:400], ksr_k=(1, 5), ksr_words=50)
    d = report.to_dict()
    assert d["perplexity"] == pytest.approx(math.exp(d["loss"]))
    assert [r["k"] for r in d["keystroke_savings"]] == [1, 5]
    assert set(d["accuracy"]) == {"top1", "top3", "top5"}


def test_evaluation_reports_the_progress_of_each_phase(trained_lm):
    predictor = Predictor(trained_lm)
    ids, surface = read_eval_text(data.resolve_sources([SHAKESPEARE]), predictor.tokenizer, predictor.vocab)
    done: dict[str, list[int]] = {}

    def phase(name, total):
        done[name] = [total, 0]
        return lambda n: done[name].__setitem__(1, done[name][1] + n)

    evaluate(predictor, ids[:300], surface[:300], ksr_k=(1, 3), ksr_words=25, phases=phase)
    assert done == {"scoring": [300, 300], "typing with 1 suggestion": [25, 25], "typing with 3 suggestions": [25, 25]}


def counting_suggestions(predictor):
    """``predictor`` with every ``suggest`` call's text recorded in the returned list."""
    calls = []
    suggest = predictor.suggest

    def counted(text, k=5, **kwargs):
        calls.append(text)
        return suggest(text, k, **kwargs)

    predictor.suggest = counted
    return calls


def test_a_word_longer_than_any_suggestion_is_typed_in_full_without_looking_at_each_prefix(toy_model_path):
    predictor = Predictor.load(toy_model_path)
    calls = counting_suggestions(predictor)
    blob = "x" * 5000
    result = keystroke_savings(predictor, [blob, "hello", blob], k=50)
    assert (result.keys_without, result.keys_with) == (5001 + 6 + 5001, 5001 + 1 + 5001)
    assert calls == [blob + " "]  # only hello's first look: the toy shows it before its first letter


def test_long_words_a_personal_state_could_suggest_are_still_simulated_and_count_the_same(toy_model_path, monkeypatch):
    from autocomplete import evaluate as module
    from autocomplete.personal import Personal

    lm = Predictor.load(toy_model_path).lm
    tokens = ["a" * 700, "hello", "a" * 700, "b" * 700, EOS, "a" * 700, "how", "b" * 700, EOS]
    results = []
    for growth in (module._GROWTH, 10**6):  # as it is, then looking at every prefix of every word
        monkeypatch.setattr(module, "_GROWTH", growth)
        predictor = Predictor(lm, personal=Personal(lm))
        calls = counting_suggestions(predictor)
        results.append((keystroke_savings(predictor, tokens, k=5), len(calls)))
        predictor.personal.close()
    (shortcut, looks), (full, every) = results
    assert shortcut == full
    assert every - looks == 2 * 700  # the first a… and b… words, which nothing could suggest, are not looked at

