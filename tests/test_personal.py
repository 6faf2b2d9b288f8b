import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocomplete import checkpoint
from autocomplete.errors import CheckpointError, ConfigError
from autocomplete.evaluate import evaluate_learning, evaluate_stream
from autocomplete.personal import (
    LearnConfig,
    Personal,
    erase_states,
    inbox_path,
    model_hash,
    open_personal,
    private,
    read_state,
    state_path,
    waiting,
)
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import EOS
from .conftest import held_by_another_program, wait_for, saved_words

CACHE_ONLY = LearnConfig(cache_weight=0.5, flatness=1.0, lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False)
LEXICON_ONLY = LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0)
DYNAMIC_ONLY = LearnConfig(window=0, lexicon=False, lr=0.05, lr_bias=0.5, lr_top=0.0, decay=0.0)
TOP_ONLY = LearnConfig(window=0, lexicon=False, lr=0.0, lr_bias=0.0, lr_top=0.003, decay=0.0)


def learning_predictor(lm, config=None):
    return Predictor(lm, personal=Personal(lm, config))


def words(suggestions):
    return [s.word for s in suggestions]


def test_the_cache_offers_a_word_outside_the_vocabulary_as_the_next_word_where_its_context_repeats(trained_lm):
    assert "Zorblax" not in trained_lm.vocab
    predictor = learning_predictor(trained_lm, CACHE_ONLY)
    assert "Zorblax" not in words(predictor.suggest("I met my lord ", 5))
    predictor.commit("I met my lord Zorblax today .\n")
    predictor.personal.wait()
    assert "Zorblax" in words(predictor.suggest("I met my lord ", 5))


def test_after_one_line_the_shipped_model_offers_no_word_just_typed_but_a_name_where_its_context_repeats():
    # The LSTM output that predicted the word just typed resembles the current one most, and a first line gives the
    # cache little else to point at: pointing there at full share, it put "He was very" -> "very" (then "was", or the
    # first line's "day") first. A name typed once, where its context comes again, resembles it much more.
    from autocomplete.paths import default_model_path

    lm = checkpoint.load(default_model_path())
    predictor = learning_predictor(lm)
    predictor.commit("It rained all day.\n")
    predictor.personal.wait()
    for text in ("He was very ", "He was very much ", "She said that ", "I think that the ", "The weather is "):
        first = predictor.suggest(text, 1)[0].word
        assert first.lower() not in text.lower().split() + ["it", "rained", "all", "day"], (text, first)
    predictor.commit("I met Okonkwo at the harbour today.\n")  # a name, where the context will repeat
    predictor.personal.wait()
    assert "Okonkwo" in [s.word for s in predictor.suggest("Yesterday I met ", 3)]


def test_the_cache_points_at_the_lines_words_before_the_last_ones_typed(trained_lm):
    predictor = learning_predictor(trained_lm, CACHE_ONLY)
    assert CACHE_ONLY.skip_recent == 2
    predictor.suggest("good my lord ", 3)
    context = predictor._context
    assert context.line_entries(skip=0)[2] == ["good", "my", "lord"]
    assert context.line_entries(skip=CACHE_ONLY.skip_recent)[2] == ["good"]
    assert predictor.personal._causal(4).tolist() == [[False] * 4] * 3 + [[True, False, False, False]]


def test_where_nothing_earlier_resembles_the_current_text_the_caches_share_goes_back_to_the_model(trained_lm):
    def added(sentinel):
        config = CACHE_ONLY.replace(sentinel=sentinel, cache_rate=0.0)
        learning, plain = learning_predictor(trained_lm, config), Predictor(trained_lm)
        for predictor in (learning, plain):
            predictor.commit("the lord is here .\n")
        learning.personal.wait()
        lord = trained_lm.vocab.stoi["lord"]
        return float(learning.distribution("the ")[lord] - plain.distribution("the ")[lord])

    pointing = added(0.0)  # without a sentinel the cache spends its whole share on the few positions it has
    assert pointing > 0.01
    assert 0 <= added(0.5) < pointing
    assert abs(added(1e3)) < 1e-6  # nothing can resemble the current features that much: the model's own


def test_the_cache_never_offers_a_piece_of_text_that_is_not_a_word(trained_lm):
    predictor = learning_predictor(trained_lm, CACHE_ONLY)
    for _ in range(3):  # undecodable bytes (U+FFFD) and a zero-width space, typed or pasted
        predictor.commit("I met my lord \ufffd\ufffd today and a\u200bb .\n")
        predictor.commit("I met my lord \ufffd\u200b today\n")
    predictor.personal.wait()
    for text in ("I met my lord ", "today and a", "I met my lord \ufffd"):
        offered = words(predictor.suggest(text, 10))
        assert offered and not {"\ufffd", "\u200b"} & set(offered), (text, offered)


def test_an_unknown_words_share_goes_to_the_words_outside_the_vocabulary_typed_in_a_context_like_this_one(trained_lm):
    def probabilities(context):
        config = LearnConfig(cache_weight=0.01, cache_rate=0.0, lr=0.0, lr_bias=0.0, lr_top=0.0, unknown_context=context)
        predictor = learning_predictor(trained_lm, config)
        for _ in range(3):
            predictor.commit("I met my lord Zorblax today .\n")
            predictor.commit("we ate the Quuxly and the Quuxly again\n")
        predictor.personal.wait()
        found = predictor.suggest("I met my lord Zo", 5) + predictor.suggest("I met my lord Qu", 5)
        return {s.word: s.probability for s in found}  # each P(word | "I met my lord")

    by_count, by_context = probabilities(0.0), probabilities(1.0)
    assert by_count["Quuxly"] > by_count["Zorblax"]  # typed twice as often
    assert by_context["Zorblax"] > by_context["Quuxly"]  # but this is where Zorblax was typed
    assert by_context["Zorblax"] > 2 * by_count["Zorblax"]


def test_a_word_outside_the_vocabulary_is_never_offered_right_after_itself(trained_lm):
    predictor = learning_predictor(trained_lm, LEXICON_ONLY)
    for _ in range(3):
        predictor.commit("I met my lord Zorblax today .\n")
        predictor.commit("I met my lord Quuxly today .\n")
    predictor.personal.wait()
    assert {"Zorblax", "Quuxly"} <= set(words(predictor.suggest("I met my lord ", 40)))
    assert "Zorblax" not in words(predictor.suggest("I met my lord Zorblax ", 40))
    assert words(predictor.suggest("I met my lord Zorblax Zo", 5)) == ["Zorblax"]  # typed again: completed
    # another word outside the vocabulary in its place is the same <unk> to the model, not the same word to the user:
    # the line now says Quuxly (its surface was kept from the text before, and Quuxly offered after itself)
    after = words(predictor.suggest("I met my lord Quuxly ", 40))
    assert "Quuxly" not in after and "Zorblax" in after


def test_a_word_typed_with_a_capital_the_vocabulary_lacks_is_offered_before_capitalised_words_less_likely(trained_lm):
    # "Zed" typed once, the vocabulary holding only "zed": a capital mid-sentence prefers words spelled that way, and
    # the user's own spelling is one of them (it came last, under words of <0.1 %, and the grey text was another)
    vocab = trained_lm.vocab
    assert "first" in vocab and "First" not in vocab and any(w.startswith("Fi") for w in vocab.itos)
    predictor = learning_predictor(trained_lm, CACHE_ONLY)
    predictor.commit("I met First at the gate .\n")
    predictor.personal.wait()
    assert words(predictor.suggest("I met Fi", 5))[0] == "First"


def test_a_learned_name_completes_however_its_accent_is_typed(trained_lm):
    predictor = learning_predictor(trained_lm)
    predictor.commit("I met Remédios at the station\n")  # composed: é
    predictor.personal.wait()
    for typed in ("I met Remé", "I met Reme\u0301"):  # é, then e with a combining accent (a macOS file name's way)
        suggested = predictor.suggest(typed, 5)
        assert "Remédios" in words(suggested), repr(typed)
        assert predictor.insertions(typed, suggested)[words(suggested).index("Remédios")] == "dios"
        assert words(predictor.complete_or_next(typed, 5))[0] == "Remédios"


def test_the_lexicon_completes_a_word_outside_the_vocabulary_from_its_first_two_letters(trained_lm):
    assert not any(w.lower().startswith("ku") for w in trained_lm.vocab.itos)
    predictor = learning_predictor(trained_lm, LEXICON_ONLY)
    assert predictor.suggest("we run Ku", 5) == []
    predictor.commit("we run Kubernetes at work\n")
    predictor.personal.wait()
    assert words(predictor.suggest("and then Ku", 5)) == ["Kubernetes"]
    assert words(predictor.suggest("and then ku", 5)) == ["kubernetes"]  # what was typed is kept, the rest completed


def test_own_words_that_differ_only_in_case_are_offered_once_in_the_typed_case(trained_lm):
    assert not any(w.lower().startswith("nas") for w in trained_lm.vocab.itos)
    predictor = learning_predictor(trained_lm, LEXICON_ONLY)
    predictor.commit("we met NASA and then Nasa again\n")
    predictor.personal.wait()
    assert words(predictor.suggest("and then nas", 5)) == ["nasa"]  # never nasA beside it
    assert words(predictor.suggest("and then NAS", 5)) == ["NASA"]


def test_dynamic_evaluation_moves_predictions_toward_a_repeated_phrase_and_forget_restores_the_base_exactly(trained_lm):
    predictor = learning_predictor(trained_lm, DYNAMIC_ONLY)
    target = trained_lm.vocab.stoi["crown"]
    base = predictor.distribution("the king wears the ")
    for _ in range(5):
        predictor.commit("the king wears the crown\n")
    predictor.personal.wait()
    predictor.reset()  # the same text, without the committed lines in its context
    adapted = predictor.distribution("the king wears the ")
    assert adapted[target] > 2 * base[target]
    predictor.personal.forget()
    assert torch.equal(predictor.distribution("the king wears the "), base)


def phrase_log_prob(predictor, phrase):
    """log P(phrase) word by word, each word predicted from the words before it (on a fresh line)."""
    predictor.reset()
    words = phrase.split()
    total, text = 0.0, ""
    for word, token_id in zip(words, predictor.vocab.encode(words, True)):
        total += float(predictor.distribution(text)[token_id].log())
        text += word + " "
    return total


@pytest.mark.parametrize("quantize", [False, True], ids=["float", "int8"])
def test_dynamic_evaluation_of_the_top_lstm_layer_moves_predictions_toward_a_repeated_phrase_and_forget_restores_the_base_exactly(
    trained_lm, quantize
):
    predictor = Predictor(trained_lm, quantize=quantize, personal=Personal(trained_lm, TOP_ONLY))
    phrase = "the king wears the crown"
    base = predictor.distribution("the king wears the ")
    before = phrase_log_prob(predictor, phrase)
    for _ in range(5):
        predictor.commit(phrase + "\n")
    predictor.personal.wait()
    assert predictor.personal.top_layer(predictor.model) is not None and predictor.personal._adapter is None
    committed = predictor.context_length
    predictor.commit("and so\n")
    assert predictor.context_length > committed  # adapting the layer does not cost the session its context
    after = phrase_log_prob(predictor, phrase)
    assert after > before + 0.5
    predictor.personal.forget()
    assert torch.equal(predictor.distribution("the king wears the "), base)


def test_the_cache_earns_a_larger_share_on_text_that_repeats_itself(trained_lm):
    personal = Personal(trained_lm, LearnConfig(cache_rate=0.05, lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False))
    assert personal.cache_weight == 0.1
    for _ in range(6):
        personal.learn("we deploy the build to the cluster tonight\n")
    personal.wait()
    assert personal.cache_weight > 0.3
    personal.forget()
    assert personal.cache_weight == 0.1


def test_a_fixed_cache_share_stays_as_set(trained_lm):
    personal = Personal(trained_lm, LearnConfig(cache_rate=0.0, lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False))
    personal.learn("we deploy the build to the cluster tonight\n" * 3, wait=True)
    assert personal.cache_weight == 0.1


def test_a_line_that_starts_with_a_space_is_never_learned(trained_lm):
    predictor = learning_predictor(trained_lm)
    predictor.commit(" my password is Zorblax\n")
    predictor.commit(" and ")
    predictor.commit("Quuxly\n")  # the rest of the same private line
    predictor.personal.wait()
    assert predictor.personal.words == 0 and not predictor.personal.active
    predictor.commit("a public line\n")
    predictor.personal.wait()
    assert set(predictor.personal.counts) == {"a", "public", "line"}
    assert private(" x") and private("\tx") and not private("x ")


def test_text_the_user_did_not_write_is_not_learned(trained_lm):
    predictor = learning_predictor(trained_lm)
    predictor.commit("the model's own reply\n", learn=False)
    predictor.personal.wait()
    assert predictor.personal.words == 0


def test_nothing_is_learned_while_learning_is_switched_off(trained_lm):
    predictor = learning_predictor(trained_lm)
    predictor.personal.enabled = False
    predictor.commit("Zorblax\n")
    predictor.personal.wait()
    assert predictor.personal.words == 0


def test_the_lexicon_and_the_cache_stay_within_their_bounds(trained_lm):
    personal = Personal(trained_lm, LearnConfig(window=7, lexicon_size=10, lr=0.0, lr_bias=0.0, lr_top=0.0))
    personal.learn(" ".join(f"w{i}" for i in range(40)) + "\n", wait=True)
    payload = personal.to_payload()
    assert personal.words <= 10
    assert payload["cache"]["keys"].shape == (7, trained_lm.model.config.output_dim)
    assert payload["cache"]["surface"] == ["w34", "w35", "w36", "w37", "w38", "w39", EOS]


def test_watchers_hear_of_each_line_once_it_is_learned_in_full_and_of_forget_until_they_stop(trained_lm):
    personal = Personal(trained_lm)
    heard = []
    stop = personal.watch(lambda: heard.append((personal.version, "Zorblax" in personal._index.words)))
    personal.learn("I met Zorblax today\n", wait=True)
    assert heard == [(personal.version, True)]  # told after the lexicon index too, under the newest version
    personal.forget()
    assert len(heard) == 2 and heard[-1] == (personal.version, False)
    stop()
    personal.watch(lambda: 1 / 0)  # a watcher that fails never stops the learning
    personal.learn("Zorblax again\n", wait=True)
    assert len(heard) == 2 and personal.counts["Zorblax"] == 1 and personal.error is None


def test_learning_a_text_at_once_ends_in_the_same_state_as_learning_it_step_by_step(trained_lm):
    tokens = [*"the king is dead , long live the king".split(), EOS, *"Zorblax rules the land now".split(), EOS] * 20
    stepwise, bulk = Personal(trained_lm), Personal(trained_lm)
    stepwise.learn_tokens(tokens)
    bulk.learn_tokens(tokens, bulk=True)  # `autocomplete learn`: the int8 top layer is made once, at the end
    assert bulk.stats.steps == stepwise.stats.steps > 1 and bulk.cache_weight == stepwise.cache_weight
    for name, weight in stepwise._top.weights.items():
        assert torch.equal(bulk._top.weights[name], weight)
    assert torch.equal(bulk._adapter.b, stepwise._adapter.b) and "quantized" in vars(bulk._top)  # ready for keys


def test_a_line_learned_in_pieces_counts_as_one_line(trained_lm):
    personal = Personal(trained_lm)
    personal.learn_tokens(["the", "king"] * 100)  # `autocomplete learn` of a line too long for one batch
    personal.learn_tokens(["is", "dead", EOS, EOS, "long", "live", "the", "king", EOS])  # an empty line between
    assert personal.stats.lines == 2 and personal.stats.tokens == 209


def test_learning_settings_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="cache weight"):
        LearnConfig(cache_weight=1.0)


def test_replaying_text_with_nothing_to_learn_scores_like_the_plain_evaluation(trained_lm):
    text = "First Citizen: Before we proceed any further, hear me speak.\nAll: Speak, speak.\n" * 3
    path_ids, surface = _encode(trained_lm, text)
    off = Personal(trained_lm, LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0, lexicon=False))
    loss, accuracy, count = evaluate_learning(trained_lm.model, off, path_ids, surface)
    plain_loss, plain_accuracy, plain_count = evaluate_stream(trained_lm.model, path_ids)
    assert count == plain_count and accuracy == plain_accuracy
    assert loss == pytest.approx(plain_loss, abs=1e-5)
    learned, _, _ = evaluate_learning(trained_lm.model, Personal(trained_lm), path_ids, surface)
    assert learned < plain_loss  # the text repeats itself: what was learned helps


def _encode(lm, text):
    ids, surface = [], []
    for line in text.splitlines():
        tokens = lm.tokenizer.tokenize_line(line) + [EOS]
        ids += lm.vocab.encode(tokens)
        surface += tokens
    return torch.tensor(ids), surface


# ---- keystrokes first --------------------------------------------------------------------------------------------


def _until(condition, seconds=30.0):
    """Poll ``condition`` (a state another thread reaches); fails the test only if it is never reached."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "never reached"
        time.sleep(0.005)


def test_the_learner_leaves_a_committed_line_alone_while_a_keystroke_is_in_flight(trained_lm):
    predictor = learning_predictor(trained_lm)
    personal = predictor.personal
    with personal.gate.serving():  # a keystroke being answered (on another thread, in a session)
        predictor.commit("we run Kubernetes at work\n")
        _until(lambda: personal.gate.waiting)
        assert personal.words == 0 and personal.stats.tokens == 0
    personal.wait()
    assert "Kubernetes" in personal.counts and personal.gate.deferrals >= 1


def held_at_its_steps(personal):
    """(set once the learner is inside a dynamic-evaluation step, set to let it go on): the learner of ``personal``
    waits at each of its steps until released."""
    inside, release = threading.Event(), threading.Event()
    step = personal._step

    def held_step(*args, **kwargs):
        inside.set()
        assert release.wait(60)
        return step(*args, **kwargs)

    personal._step = held_step
    return inside, release


def held_mid_step(trained_lm):
    """(a learning predictor, the event that lets its learner go on) once the learner is inside its step on a line."""
    predictor = learning_predictor(trained_lm)
    inside, release = held_at_its_steps(predictor.personal)
    predictor.commit("I met my lord Zorblax today .\n")
    assert inside.wait(60)
    return predictor, release


def test_a_keystroke_is_answered_while_the_learner_is_held_mid_step_and_its_next_slice_waits_for_it(trained_lm):
    predictor, release = held_mid_step(trained_lm)
    personal = predictor.personal
    assert len(predictor.suggest("I met my ", 5)) == 5  # the learner holds its own lock: a keystroke needs none of it
    with personal.gate.serving():
        release.set()
        _until(lambda: personal.gate.waiting)  # the step is done; the cache update waits for the keystroke
        assert personal._cache.ids.numel() == 0
    personal.wait()
    assert "Zorblax" in personal._cache.surface


def test_a_line_committed_while_the_learner_is_held_mid_step_is_taken_at_once(trained_lm):
    # the learner holds its lock for a whole piece (seconds for a long paste): Enter on the next line waited for it
    predictor, release = held_mid_step(trained_lm)
    personal = predictor.personal
    other = predictor.session()
    committed = threading.Thread(target=other.commit, args=("and then we went home\n",))
    committed.start()
    committed.join(30)  # (a bound for a broken build only: taken at once, it never waits)
    taken = not committed.is_alive()
    release.set()
    committed.join()
    assert taken
    personal.wait()
    assert {"Zorblax", "home"} <= set(personal.counts)


def test_the_learner_waits_for_a_gap_in_the_typing_unless_someone_waits_for_the_learning(trained_lm):
    predictor = learning_predictor(trained_lm)
    personal = predictor.personal
    personal.gate.quiet = 3600.0  # a typist who never leaves a gap
    predictor.commit("we run Kubernetes at work\n")
    _until(lambda: personal.gate.waiting)
    assert personal.gate.in_flight == 0 and personal.words == 0
    personal.wait()  # someone waits for the learning: it needs no gap
    assert "Kubernetes" in personal.counts


def test_every_query_tells_the_learner_that_it_is_in_flight(trained_lm):
    predictor = learning_predictor(trained_lm)
    seen = []
    prepare = predictor._prepare
    predictor._prepare = lambda *args, **kwargs: (seen.append(predictor.personal.gate.in_flight), prepare(*args, **kwargs))[1]
    predictor.suggest("the king ", 3)
    predictor.distribution("the king ")
    predictor.complete_or_next("the ki")
    list(predictor.stream("the king", max_words=2, seed=1))
    assert len(seen) >= 4 and min(seen) >= 1
    assert predictor.personal.gate.in_flight == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(["Zork", "zork", "ZORK", "Zorb", "Ab", "ab", "the", "king", "Quux"]),
                         min_size=1, max_size=6), min_size=1, max_size=6))
def test_the_lexicon_index_kept_up_to_date_line_by_line_is_the_one_built_from_scratch(trained_lm, lines):
    personal = Personal(trained_lm, LearnConfig(window=0, lr=0.0, lr_bias=0.0))
    for line in lines:
        personal.learn_tokens([*line, EOS])
        kept = personal._index
        personal._reindex(full=True)
        assert personal._index == kept


def test_the_cache_completes_its_own_words_outside_the_vocabulary_from_their_first_letters(trained_lm):
    predictor = learning_predictor(trained_lm, CACHE_ONLY)
    predictor.commit("I met my lord Zorblax and my lady Zorbina today .\n")
    predictor.personal.wait()
    assert set(words(predictor.suggest("I met my lord zor", 5))) >= {"zorblax", "zorbina"}
    assert "Zorbina" not in words(predictor.suggest("I met my lord Zorbl", 5))


# ---- remembering -------------------------------------------------------------------------------------------------


def test_the_personal_state_survives_a_restart(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    personal, warning = open_personal(lm)
    assert warning is None and personal.path is not None and not personal.path.exists()
    predictor = Predictor(lm, personal=personal)
    predictor.commit("we deploy with Kubernetes daily\n")
    predictor.commit("the king wears the crown\n")
    personal.close()
    predictor.reset()
    before = predictor.distribution("the king wears the ")

    again = checkpoint.load(trained_model_path)
    restored, warning = open_personal(again)
    assert warning is None
    assert restored.counts == personal.counts and restored.stats.lines == 2
    assert restored.cache_weight == personal.cache_weight != LearnConfig().cache_weight  # the share it learned
    after = Predictor(again, personal=restored)
    assert torch.allclose(after.distribution("the king wears the "), before, atol=1e-5)  # the cache keys are float16
    assert "Kubernetes" in words(after.suggest("then Ku", 3))


def test_the_state_is_kept_per_model_file(trained_model_path, tmp_path):
    lm = checkpoint.load(trained_model_path)
    other = tmp_path / "other.pt"
    other.write_bytes(trained_model_path.read_bytes() + b"")  # same bytes: same identity
    assert open_personal(checkpoint.load(other))[0].path == open_personal(lm)[0].path
    lm.metadata["x"] = 1
    checkpoint.save(lm, other)
    assert open_personal(checkpoint.load(other))[0].path != open_personal(lm)[0].path


def test_a_failed_save_leaves_the_previous_state_intact(trained_model_path, monkeypatch):
    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm)
    personal.learn("the first line\n", wait=True)
    personal.save()
    good = personal.path.read_bytes()
    personal.learn("a second line that will not be saved\n", wait=True)

    def torn(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(CheckpointError, match="previous file is unchanged"):
        personal.save()
    assert personal.path.read_bytes() == good
    assert sorted(personal.path.parent.iterdir()) == [personal.path, personal.path.with_name(personal.path.name + ".lock")]  # no temporary file left behind (the lock is held)


def test_a_save_cut_short_by_a_signal_is_written_in_full_by_the_next_one(trained_model_path, monkeypatch):
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("I met Zorblax at the station\n", wait=True)
    written = torch.save

    def terminated(*args, **kwargs):
        raise SystemExit(143)  # what the session's SIGTERM handler raises, here in the middle of the write

    monkeypatch.setattr(torch, "save", terminated)
    with pytest.raises(SystemExit):
        personal.save()
    assert not personal.path.exists()
    monkeypatch.setattr(torch, "save", written)
    assert personal.save()  # the line is still to be saved, not taken as saved by the write that never happened
    assert "Zorblax" in read_state(personal.path)["lexicon"]["words"]


def test_a_kill_during_a_save_leaves_a_loadable_state(trained_model_path, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from autocomplete import checkpoint
        from autocomplete.personal import LearnConfig, open_personal
        personal, _ = open_personal(checkpoint.load({str(trained_model_path)!r}), LearnConfig(window=50000))
        personal.learn("word " * 3000 + "\\n", wait=True)
        print(personal.path, flush=True)
        while True:
            personal._dirty = True
            personal.save()
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    path = process.stdout.readline().strip()
    time.sleep(1.0)
    process.kill()
    process.wait()
    payload = read_state(path)
    assert payload["stats"]["tokens"] == 3001


def test_a_corrupt_state_file_is_set_aside_with_one_line(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm)
    personal.close()  # the program ends
    for n in range(2):
        personal.path.write_bytes(b"not a state file at all %d" % n)
        again, warning = open_personal(lm)
        again.close()
        assert "not a valid personal state file" in warning and "\n" not in warning
        assert again.words == 0 and not personal.path.exists()
    aside = sorted(personal.path.parent.glob(personal.path.name + ".corrupt*"))
    assert [f.read_bytes() for f in aside] == [b"not a state file at all 0", b"not a state file at all 1"]  # none lost


def test_a_state_file_that_cannot_be_read_or_that_a_newer_version_wrote_is_left_alone(trained_model_path, monkeypatch):
    import builtins

    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm)
    personal.learn("my friend Zorblax\n", wait=True)
    personal.close()
    payload = read_state(personal.path)
    payload["format_version"] = 99
    checkpoint.save_payload(payload, personal.path)
    newer = personal.path.read_bytes()
    again, warning = open_personal(lm)
    again.learn("more words here\n", wait=True)
    again.close()
    assert "written by a newer autocomplete" in warning and "not saved" in warning
    assert personal.path.read_bytes() == newer and not again.saving

    real_open = builtins.open

    def unreadable(file, *args, **kwargs):
        if str(file) == str(personal.path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", unreadable)
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    third, warning = open_personal(lm)
    third.close()
    assert warning == f"{personal.path}: cannot read (Permission denied); what is learned now is not saved"
    monkeypatch.undo()
    assert personal.path.read_bytes() == newer
    assert not list(personal.path.parent.glob("*.corrupt*"))


def test_while_one_program_learns_into_a_state_another_uses_it_but_keeps_its_own_learning_in_memory(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    first, warning = open_personal(lm)
    assert warning is None and first.saving
    first.learn("I met my lord Zorblax today .\n", wait=True)
    first.close()
    saved = first.path.read_bytes()
    with held_by_another_program(first.path) as pid:  # a session running meanwhile
        second, warning = open_personal(checkpoint.load(trained_model_path))
        assert warning == (f"another autocomplete session or program (process {pid}) is learning into "
                           f"{first.path}: what is learned here is handed over to it")
        assert "Zorblax" in second.counts and not second.saving  # what was saved is used
        second.learn("we run Kubernetes daily\n", wait=True)
        second.save()
        assert len(list(inbox_path(first.path).glob("*.json"))) == 1  # handed over, not saved over the state
        with pytest.raises(CheckpointError, match=r"is learning into .*: quit it first \(or use :forget in the session"):
            second.forget()
        assert "Kubernetes" in second.counts  # a forget refused erases nothing, in memory either
    assert first.path.read_bytes() == saved  # nothing saved over the other's file
    second.forget()  # the program that held the state has ended: the second may erase it now
    assert not first.path.exists() and second.words == 0
    third, warning = open_personal(checkpoint.load(trained_model_path))
    assert warning is None and third.saving
    third.close()


def test_two_loads_of_a_model_in_one_program_share_its_state_and_both_learnings_are_saved(trained_model_path):
    first, _ = open_personal(checkpoint.load(trained_model_path))  # a program that loads the model twice; a plugin
    first.learn("I met my lord Zorblax today .\n", wait=True)
    again, warning = open_personal(checkpoint.load(trained_model_path))
    assert warning is None and again is first and "Zorblax" in again.counts
    again.learn("we run Kubernetes daily\n", wait=True)
    first.close()  # one of them is done with it: saved, still held for the other
    assert first.saving and {"Zorblax", "Kubernetes"} <= set(read_state(first.path)["lexicon"]["words"])
    again.learn("and Quuxly too\n", wait=True)
    again.close()
    assert not again.saving and "Quuxly" in read_state(first.path)["lexicon"]["words"]


def test_a_second_load_that_would_learn_differently_hands_over_to_the_first(trained_model_path):
    first, _ = open_personal(checkpoint.load(trained_model_path))
    other, warning = open_personal(checkpoint.load(trained_model_path), LearnConfig(window=10))
    assert other is not first and other.hands_over and "is handed over to it" in warning
    other.learn("we run Kubernetes daily\n", wait=True)
    other.close()
    first.absorb_inbox()
    assert "Kubernetes" in first.counts
    first.close()


def test_a_program_that_hands_over_follows_an_erase_in_the_holder_at_its_next_save(trained_model_path):
    # sweep k, item 4: after `:forget` in the holder, a second session still offered the name it had been told
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    second, _ = open_personal(checkpoint.load(trained_model_path), LearnConfig(window=10))
    assert second.hands_over
    second.learn("we met Zorblax\n", wait=True)
    holder.forget()
    second._tick()  # its save of the minute
    assert "Zorblax" not in second.counts and second.words == 0
    second.learn("we met Quillon\n", wait=True)
    second.close()
    holder.absorb_inbox()
    assert "Quillon" in holder.counts and "Zorblax" not in holder.counts
    holder.close()


def test_a_state_that_exists_in_a_folder_that_cannot_be_written_is_said_at_the_start(trained_model_path, monkeypatch):
    import os

    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm)
    personal.learn("my friend Zorblax\n", wait=True)
    personal.close()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    again, warning = open_personal(lm)
    assert warning == f"{personal.path.parent}: not writable: what is learned is not saved"
    assert "Zorblax" in again.counts and not again.saving


def test_a_symlink_at_the_state_s_lock_is_never_written_through_and_learning_is_kept_in_memory(
    trained_model_path, tmp_path
):
    # tester h, bug 3: `autocomplete learn` truncated the file the link pointed at and wrote its process number there
    decoy = tmp_path / "decoy.txt"
    decoy.write_text("someone's notes")
    state = state_of(trained_model_path)
    state.with_name(state.name + ".lock").symlink_to(decoy)
    personal, warning = open_personal(checkpoint.load(trained_model_path))
    personal.learn("my friend Zorblax\n", wait=True)
    personal.close()
    assert warning == (f"{state}.lock: is a symbolic link, not a lock file; remove it to go on: what is learned is"
                       " not saved")
    assert decoy.read_text() == "someone's notes" and not state.exists() and "Zorblax" in personal.counts


def test_a_data_folder_that_is_a_file_is_named_as_such(trained_model_path, tmp_path, monkeypatch):
    # sweep k, item 8: "…/personal: File exists"
    afile = tmp_path / "afile"
    afile.write_text("hi")
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(afile))
    personal, warning = open_personal(checkpoint.load(trained_model_path))
    assert warning == f"{afile}: a file, not a folder: what is learned is not saved" and not personal.saving
    assert afile.read_text() == "hi"


def test_a_state_for_another_vocabulary_is_refused(trained_model_path, tiny_lm, tmp_path):
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("hello there\n", wait=True)
    payload = personal.to_payload()
    with pytest.raises(CheckpointError, match="another model"):
        Personal(tiny_lm).load_payload(payload, "state.pt")


def test_the_state_lives_in_the_user_data_folder(trained_model_path, isolated_user_dirs):
    lm = checkpoint.load(trained_model_path)
    assert state_path(lm, "ab" * 32).parent == isolated_user_dirs / "personal"


def test_what_was_learned_and_handed_over_is_readable_by_its_user_only(trained_model_path, tmp_path, monkeypatch):
    # as shells keep their history: the state holds every word typed; a shared machine's other users must not read it
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path / "new" / "data"))
    umask = os.umask(0o022)
    try:
        lm = checkpoint.load(trained_model_path)
        personal, _ = open_personal(lm)
        personal.learn("my password is hunter2\n", wait=True)
        personal.close()
        with held_by_another_program(personal.path):  # this one is the second program: it hands over
            second, _ = open_personal(lm)
            second.hand_over(["hello", "there", EOS])
            second.close()
    finally:
        os.umask(umask)
    data = tmp_path / "new" / "data"
    assert stat.S_IMODE(data.stat().st_mode) == stat.S_IMODE((data / "personal").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755  # above the data folder: the usual mode
    files = [f for f in (data / "personal").rglob("*") if f.is_file() and not f.name.endswith(".lock")]
    assert any(f.suffix == ".pt" for f in files)
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


def test_a_state_an_older_version_left_readable_by_others_becomes_its_users_only_when_opened(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm)
    personal.learn("my password is hunter2\n", wait=True)
    personal.close()
    personal.path.chmod(0o644)  # as a version before 0600 saved it, under umask 022
    again, _ = open_personal(lm)
    assert stat.S_IMODE(personal.path.stat().st_mode) == 0o600
    assert again.counts.get("hunter2") == 1  # what it held is kept
    again.close()


def test_the_adapted_top_layer_survives_a_restart_exactly(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm, TOP_ONLY)
    for _ in range(3):
        personal.learn("the king wears the crown\n")
    personal.close()
    before = Predictor(lm, personal=personal).distribution("the king wears the ")
    again = checkpoint.load(trained_model_path)
    restored, warning = open_personal(again, TOP_ONLY)
    assert warning is None
    assert torch.equal(Predictor(again, personal=restored).distribution("the king wears the "), before)
    assert restored.to_payload()["top"]["steps"] == 3


def _saved_with_top(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    personal, _ = open_personal(lm, TOP_ONLY)
    personal.learn("the king wears the crown\n", wait=True)
    personal.save()
    return lm, personal, personal.to_payload()


@pytest.mark.parametrize("damage", ["shape", "values", "missing"])
def test_a_state_whose_top_layer_does_not_fit_the_model_is_refused_in_one_line(trained_model_path, damage):
    lm, personal, payload = _saved_with_top(trained_model_path)
    weights = payload["top"]["weights"]
    name = next(iter(weights))
    if damage == "shape":
        weights[name] = weights[name][:-1]
    elif damage == "values":
        weights[name][0, 0] = float("nan")
    else:
        del weights[name]
    personal.close()
    checkpoint.save_payload(payload, personal.path)
    again, warning = open_personal(checkpoint.load(trained_model_path), TOP_ONLY)
    assert "personal state is incomplete or inconsistent (top layer" in warning and "\n" not in warning
    assert again.top_layer(again.model) is None and not personal.path.exists()


def test_a_state_saved_before_the_top_layer_was_adapted_still_loads(trained_model_path):
    lm, personal, payload = _saved_with_top(trained_model_path)
    del payload["top"]
    payload["format_version"] = 1
    personal.close()
    checkpoint.save_payload(payload, personal.path)
    again, warning = open_personal(checkpoint.load(trained_model_path), TOP_ONLY)
    assert warning is None and again.counts == personal.counts and again.top_layer(again.model) is None


def test_a_word_with_an_invisible_character_in_it_is_never_learned_as_a_word_nor_offered(trained_lm):
    predictor = learning_predictor(trained_lm, LearnConfig(lr=0.0, lr_bias=0.0, lr_top=0.0))
    for _ in range(3):  # a joiner, a variation selector, a combining grapheme joiner, a tag: each shows as "Qux"
        predictor.commit("we saw Qux\u200d and Qux\ufe0f and Qux\u034f and Qux\U000E0041 here .\n")
    predictor.personal.wait()
    assert not predictor.personal.counts.keys() & {"Qux\u200d", "Qux\ufe0f", "Qux\u034f", "Qux\U000E0041"}
    for text in ("we saw ", "we saw Q"):
        assert all(s.word.isprintable() for s in predictor.suggest(text, 10)), text


def reopened_after(model_path, change, line="my friend Zorblax\n", then=lambda lm, again: again.words):
    """(the warning, ``then(lm, state)``: by default its words) of a state that learned ``line``, saved, changed by
    ``change(payload)``, reopened (and closed after ``then``)."""
    lm = checkpoint.load(model_path)
    personal, _ = open_personal(lm)
    personal.learn(line, wait=True)
    personal.close()
    payload = read_state(personal.path)
    change(payload)
    checkpoint.save_payload(payload, personal.path)
    again, warning = open_personal(lm)
    try:
        return warning, then(lm, again)
    finally:
        again.close()


def test_a_saved_state_whose_cache_holds_nan_is_set_aside(trained_model_path):
    warning, words = reopened_after(trained_model_path, lambda p: p["cache"]["keys"].__setitem__((0, 0), float("nan")))
    assert "personal state is incomplete or inconsistent (cache values)" in warning and words == 0


def test_a_personal_folder_that_cannot_be_searched_leaves_the_model_working(trained_model_path, monkeypatch):
    from pathlib import Path

    lm = checkpoint.load(trained_model_path)
    real_exists = Path.exists

    def denied(path):
        if path.parent.name == "personal" and path.suffix == ".pt":
            raise PermissionError(13, "Permission denied")
        return real_exists(path)

    monkeypatch.setattr(Path, "exists", denied)
    personal, warning = open_personal(lm)
    assert warning.endswith("personal: cannot read (Permission denied); what is learned is not saved")
    assert not personal.saving and personal.path is None
    assert Predictor(lm, personal=personal).suggest("my lord ", 3)


@pytest.mark.parametrize("field, value", [("lines", "x"), ("tokens", -1), ("updated", "\x1b[2J"), ("created", 5)])
def test_a_saved_state_with_crafted_stats_is_set_aside(trained_model_path, field, value):
    warning, words = reopened_after(trained_model_path, lambda payload: payload["stats"].__setitem__(field, value))
    assert "personal state is incomplete or inconsistent (stats" in warning and words == 0


@pytest.mark.parametrize("lexicon, why", [
    ("x", "unreadable lexicon"),  # not Python's "string indices must be integers"
    ({"words": ["Zorblax", "Zorblax"], "counts": [1, 1]}, "lexicon words or counts"),
    ({"words": ["Zorblax"], "counts": [10**40]}, "lexicon words or counts"),
])
def test_a_saved_state_with_a_crafted_lexicon_is_set_aside_saying_which_part(trained_model_path, lexicon, why):
    warning, words = reopened_after(trained_model_path, lambda payload: payload.__setitem__("lexicon", lexicon))
    assert f"personal state is incomplete or inconsistent ({why})" in warning and words == 0


def _set(*path):
    """A change that puts ``path[-1]`` at ``payload[path[0]][path[1]]…`` (an index or key each)."""
    *keys, last, value = path

    def change(payload):
        for key in keys:
            payload = payload[key]
        payload[last] = value(payload[last]) if callable(value) else value

    return change


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("change, why", [
    # tester h, bug 2: an infinite count was an OverflowError out of every program on the model, never set aside
    (_set("lexicon", "counts", 0, INF), "lexicon"),
    (_set("lexicon", "counts", 0, NAN), "lexicon"),
    (_set("lexicon", "counts", 0, "5"), "lexicon"),
    (_set("learner", "last_id", INF), "learner position"),
    (_set("learner", "at_start", "no"), "learner position"),
    (_set("learner", "cache_weight", 10**400), "cache weight"),  # too large for a float
    (_set("top", "steps", INF), "top layer parameters"),
    (_set("stats", "tokens", INF), "stats counts"),
    # tester h, bug 5: non-finite learner state was taken, and the next learning step spread it to everything
    (_set("learner", "state", 0, 0, lambda t: torch.full_like(t, NAN)), "learner state values"),
    (_set("learner", "state", 0, 1, lambda t: torch.full_like(t, INF)), "learner state values"),
    (_set("adapter", "b", lambda t: torch.full_like(t, -INF)), "adapter values"),
    # the re-check: finite but huge adapter values loaded, and the next step could leave float32's range
    (_set("adapter", "a", lambda t: torch.full_like(t, 1e38)), "adapter values"),
    (_set("top", "mean_square", lambda ms: {k: torch.tensor(INF) for k in ms}), "top layer mean squares"),
    # tester h, item 10: complex keys were cast to real with PyTorch's two-line warning, and used
    (_set("cache", "keys", lambda t: t.to(torch.complex64)), "cache values"),
    (_set("adapter", "a", lambda t: t.to(torch.complex64)), "adapter values"),
    (_set("cache", "ids", lambda t: t.double()), "cache contents"),
])
def test_a_saved_state_with_a_crafted_number_anywhere_is_set_aside_in_one_line(trained_model_path, recwarn, change, why):
    warning, words = reopened_after(trained_model_path, change)
    assert f"personal state is incomplete or inconsistent ({why}); moved to " in warning and "\n" not in warning
    assert words == 0 and not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_a_saved_state_whose_model_sizes_are_tensors_is_of_another_model(trained_model_path):
    # (a tensor there was "Boolean value of Tensor with more than one value is ambiguous", out of every program)
    warning, words = reopened_after(trained_model_path, _set("model", "vocab_size", lambda n: torch.tensor([n, n])))
    assert "personal state of another model; moved to " in warning and words == 0


def test_what_a_saved_state_holds_that_is_never_learned_is_dropped_and_the_rest_kept(trained_model_path):
    # tester h, bug 9: a 10 MB word in the state's lexicon was offered, and printed, in full
    long = "Ra" + "v" * 10_000

    def change(payload):
        lexicon, surface = payload["lexicon"], payload["cache"]["surface"]
        lexicon["words"][lexicon["words"].index("Ravindra")] = long
        lexicon["words"] += ["", "7294"]
        lexicon["counts"] += [3, 3]
        surface[surface.index("Ravindra")], surface[0] = long, ""

    def reopened(lm, state):
        return state, words(Predictor(lm, personal=state).suggest("I met Ra", 10))

    warning, (again, suggested) = reopened_after(trained_model_path, change, "I met Ravindra at the station\n", reopened)
    assert warning is None and "station" in again.counts and not {long, "", "7294"} & set(again.counts)
    assert not {long, ""} & set(again.to_payload()["cache"]["surface"]) and suggested
    assert all(len(word) < 100 for word in suggested)


def state_of(model_path):
    """Where the personal state of the model at ``model_path`` is saved (its folder made)."""
    state = state_path(checkpoint.load(model_path), model_hash(model_path))
    state.parent.mkdir(parents=True, exist_ok=True)
    return state


def open_elsewhere_held(model_path):
    """A second program's state: it uses what was saved and hands what it learns to the holder (not this process)."""
    personal, _ = open_personal(checkpoint.load(model_path))
    assert personal.hands_over
    return personal


def test_what_a_second_program_learned_is_learned_by_the_next_to_hold_the_state_and_only_once(trained_model_path):
    state = state_of(trained_model_path)
    with held_by_another_program(state):
        second = open_elsewhere_held(trained_model_path)
        second.learn("I met my lord Zorblax today .\n", wait=True)
        second.close()  # its program ends: what it learned waits in the inbox
    holder, warning = open_personal(checkpoint.load(trained_model_path))
    assert warning is None
    holder.absorb_inbox()
    assert holder.counts.get("Zorblax") == 1
    holder.close()
    assert not inbox_path(state).exists()  # the saved state holds it: the inbox file is gone
    again, _ = open_personal(checkpoint.load(trained_model_path))
    again.absorb_inbox()
    assert again.counts.get("Zorblax") == 1 and again.stats.lines == 1  # never learned twice
    again.close()


def test_a_running_holder_learns_what_another_program_hands_over_within_a_quiet_spell(trained_model_path, monkeypatch):
    import os

    monkeypatch.setattr(Personal, "save_every", 0.2)
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    try:
        code = ("import sys; from autocomplete import checkpoint; from autocomplete.personal import open_personal\n"
                "p, w = open_personal(checkpoint.load(sys.argv[1])); assert p.hands_over, w\n"
                "p.learn('we run Kubernetes daily\\n', wait=True); p.close()")
        subprocess.run([sys.executable, "-c", code, str(trained_model_path)], check=True, env=os.environ.copy())
        wait_for(lambda: "Kubernetes" in holder.counts)
        wait_for(lambda: not list(inbox_path(holder.path).glob("*.json")))  # saved, then removed
    finally:
        holder.close()


def test_what_a_second_program_learned_before_an_erase_is_never_learned_after_it(trained_model_path):
    state = state_of(trained_model_path)
    with held_by_another_program(state):
        second = open_elsewhere_held(trained_model_path)
        second.learn("my password is Zorblax\n", wait=True)
    assert erase_states([state]) == []  # `autocomplete forget` once the holder has ended; nothing saved yet
    second.learn("we run Kubernetes daily\n", wait=True)  # learned after the erase: kept
    second.close()
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    holder.absorb_inbox()
    assert "Zorblax" not in holder.counts and "Kubernetes" in holder.counts
    holder.close()


def test_a_damaged_hand_over_file_is_set_aside_and_learning_goes_on(trained_model_path):
    lm = checkpoint.load(trained_model_path)
    inbox = inbox_path(state_path(lm, model_hash(trained_model_path)))
    inbox.mkdir(parents=True)
    (inbox / "1-1.json").write_text('{"format": "autocomplete-handed-over-1", "items": [[1, null, ["x"]]]')
    holder, warning = open_personal(lm)
    holder.learn("I met Zorblax\n", wait=True)
    assert holder.error is None and "Zorblax" in holder.counts
    holder.close()
    [aside] = inbox.iterdir()
    assert aside.name.startswith("1-1.json.corrupt-")
    # tester h, item 10: it was set aside without a word
    assert warning.startswith(f"{inbox / '1-1.json'}: not a hand-over file (Expecting ',' delimiter")
    assert warning.endswith(f"); moved to {aside.name}") and "\n" not in warning


def test_ctrl_c_while_a_program_ends_saves_what_was_learned_and_hands_the_rest_to_the_next_start(trained_model_path):
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("I met Zorblax today .\n", wait=True)
    personal.learn("we run Kubernetes daily .\n" * 200)  # queued: seconds of learning

    def interrupted(seconds):
        raise KeyboardInterrupt

    personal._wait_for = interrupted  # Ctrl-C while the program waits for it at its end
    personal.close()
    assert not personal._thread.is_alive()  # never left running inside PyTorch while the interpreter ends
    again, _ = open_personal(checkpoint.load(trained_model_path))
    assert again.counts["Zorblax"] == 1 and again.stats.lines < 201  # saved, without the rest
    again.absorb_inbox()
    assert again.stats.lines == 201 and again.counts["Kubernetes"] == 200  # the rest, handed over: each line once
    again.close()


def test_a_program_ends_in_seconds_however_much_is_queued_and_the_next_start_learns_the_rest(
    trained_model_path, monkeypatch
):
    monkeypatch.setattr(Personal, "close_wait", 0.0)
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("we run Kubernetes daily .\n" * 2000)  # seconds of learning, even for the small test model
    personal.close()  # does not learn them all first
    again, _ = open_personal(checkpoint.load(trained_model_path))
    assert again.stats.lines < 2000 and list(inbox_path(again.path).glob("*.json"))
    again.absorb_inbox()
    assert again.stats.lines == 2000 and again.counts["Kubernetes"] == 2000
    again.close()


def test_a_program_ends_in_seconds_after_a_long_paste_and_the_next_start_learns_the_rest(
    trained_model_path, monkeypatch
):
    monkeypatch.setattr(Personal, "close_wait", 0.0)
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    inside, release = held_at_its_steps(personal)
    personal.learn("we run Kubernetes daily " * 2000 + "\n")  # one line of 8,000 words: seconds of learning
    assert inside.wait(60)
    closing = threading.Thread(target=personal.close)
    closing.start()
    _until(lambda: personal._deferring)
    release.set()
    closing.join()  # the piece under way is learned, not the rest of the paste
    again, _ = open_personal(checkpoint.load(trained_model_path))
    assert again.counts.get("Kubernetes", 0) < 1000 and list(inbox_path(again.path).glob("*.json"))
    again.absorb_inbox()
    assert again.counts["Kubernetes"] == 2000 and again.stats.tokens == 8001  # each word once, and the end of line
    again.close()


def test_forget_drops_what_is_queued_instead_of_learning_it_first(trained_lm):
    personal = Personal(trained_lm)
    learned = []
    personal.watch(lambda: learned.append(1))
    personal.learn("I met Zorblax today .\n", wait=True)
    learned.clear()
    personal.learn("we run Kubernetes daily .\n" * 200)
    personal.forget()
    personal.wait()
    assert personal.words == 0 and len(learned) < 20  # a line or two in flight at most, then the forget


def test_when_the_holder_ends_a_second_program_takes_the_state_over_with_what_both_learned(
    trained_model_path, monkeypatch
):
    monkeypatch.setattr(Personal, "save_every", 0.2)
    first, _ = open_personal(checkpoint.load(trained_model_path))
    first.learn("we run Kubernetes daily\n", wait=True)
    first.close()
    with held_by_another_program(first.path):
        second = open_elsewhere_held(trained_model_path)
        second.learn("I met my lord Zorblax today .\n", wait=True)
    wait_for(lambda: second.saving)  # the holder has ended: within a quiet spell, the state is the second's
    second.absorb_inbox()
    assert second.counts.get("Zorblax") == 1 and "Kubernetes" in second.counts and second.held_by is None
    second.close()
    again, warning = open_personal(checkpoint.load(trained_model_path))
    again.absorb_inbox()
    assert warning is None and again.counts.get("Zorblax") == 1 and again.counts.get("Kubernetes") == 1
    again.close()


def test_the_learning_status_can_say_what_is_still_queued_without_waiting_for_it(trained_lm):
    from autocomplete.personal import describe

    personal = Personal(trained_lm)
    personal.learn("we run Kubernetes daily .\n" * 200)
    assert "lines still to learn)" in describe(personal, wait=False)
    assert describe(personal).startswith("learning on: ")  # waits: all learned
    assert personal.stats.lines == 200


def test_a_word_longer_than_any_vocabulary_word_is_never_learned_nor_offered(trained_lm):
    predictor = learning_predictor(trained_lm)
    blob = "iVBORw0KGgo" + "A" * 200  # a base64 blob pasted into a line
    predictor.commit(f"the image {blob} is here\n")
    predictor.personal.wait()
    assert blob not in predictor.personal.counts and "image" in predictor.personal.counts
    assert not any(len(s.word) > 100 for s in predictor.suggest("and then iVBO", 10))


def holder_with_inbox(model_path, items):
    """The holder of a state whose inbox has one file of ``items`` (lines of words) from another program."""
    state = state_of(model_path)
    with held_by_another_program(state):
        second = open_elsewhere_held(model_path)
        for line in items:
            second.hand_over(line.split() + [EOS])
        second.close()
    [handed] = inbox_path(state).glob("*.json")
    return handed


def save_held_mid_write(personal, monkeypatch):
    """A save of ``personal`` started in a thread and held once its snapshot is taken, before the file is written;
    (the thread, the event that lets it write)."""
    writing, release = threading.Event(), threading.Event()
    real_save = checkpoint.save_payload

    def slow_save(payload, path, **kwargs):
        writing.set()
        release.wait(30)
        real_save(payload, path, **kwargs)

    monkeypatch.setattr(checkpoint, "save_payload", slow_save)
    saver = threading.Thread(target=personal.save)
    saver.start()
    writing.wait(30)
    return saver, release


def test_an_erase_waits_for_a_save_under_way_and_is_never_undone_by_it(trained_model_path, monkeypatch):
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("my password is Zorblax\n", wait=True)
    saver, release = save_held_mid_write(personal, monkeypatch)
    forgetter = threading.Thread(target=personal.forget)
    forgetter.start()
    time.sleep(0.2)
    release.set()
    saver.join()
    forgetter.join()
    assert not personal.path.exists() and personal.words == 0  # the erase came after the save, and stands
    personal.close()


def test_an_erase_clears_whatever_the_inbox_holds(trained_model_path):
    handed = holder_with_inbox(trained_model_path, ["my password is Zorblax"])
    (handed.parent / "adir.json").mkdir()  # not a hand-over file: set aside as it is, a folder
    (handed.parent / "adir.json" / "x").write_text("x")
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    personal.learn("we run Kubernetes\n", wait=True)
    personal.save()
    personal.forget()
    assert personal.words == 0 and not personal.path.exists() and not handed.parent.exists()
    personal.close()


def test_a_holder_that_ends_while_learning_what_was_handed_over_leaves_the_rest_and_nothing_twice(
    trained_model_path
):
    items = [f"line {n} of the long text about Zorblax" for n in range(200)]  # one file
    handed = holder_with_inbox(trained_model_path, items)
    holder, _ = open_personal(checkpoint.load(trained_model_path))  # starts learning the inbox at once
    wait_for(lambda: holder.stats.lines > 0)
    holder.close()  # the program ends: it does not learn the rest first
    learned = read_state(holder.path)["stats"]["lines"]
    assert 0 < learned < 200
    again, _ = open_personal(checkpoint.load(trained_model_path))
    again.absorb_inbox()
    assert again.stats.lines == 200 and again.counts["Zorblax"] == 200  # each line learned once
    again.close()
    assert not handed.exists()


def test_a_pipe_at_the_state_s_place_is_refused_without_waiting_for_a_writer(trained_model_path):
    # sweep k, item 2: `learn`, `predict` and the session waited for ever at "loading the model…"
    import threading

    state = state_of(trained_model_path)
    os.mkfifo(state)
    said: list[str | None] = []

    def opening(save):
        personal, warning = open_personal(checkpoint.load(trained_model_path), save=save)
        said.append(warning)
        personal.close()

    for save in (False, True):  # a reader (predict) leaves it; the holder sets it aside
        reader = threading.Thread(target=opening, args=(save,), daemon=True)
        reader.start()
        reader.join(timeout=60)
        assert not reader.is_alive(), "waited for a writer on the pipe"
    assert said[0] == f"{state}: is not a regular file; give the personal state file itself; not used"
    assert said[1].startswith(f"{state}: is not a regular file; give the personal state file itself; moved to ")
    assert not os.path.lexists(state)


def test_a_pipe_or_a_link_in_the_inbox_is_set_aside_unread(trained_model_path):
    import os

    handed = holder_with_inbox(trained_model_path, ["we met Zorblax"])
    os.mkfifo(handed.parent / "pipe.json")
    (handed.parent / "link.json").symlink_to(handed)  # tester h, item 10: "1 file waiting" forever, never read
    assert waiting(state_of(trained_model_path)) == 1  # what `info` says waits: the one file a holder learns
    holder, warning = open_personal(checkpoint.load(trained_model_path))
    holder.absorb_inbox()  # would block for good on the pipe
    assert holder.counts.get("Zorblax") == 1  # once: never again through the link
    holder.close()
    assert sorted(f.name[:15] for f in handed.parent.iterdir()) == ["link.json.corru", "pipe.json.corru"]
    assert warning == (f"{handed.parent}: 2 files are not hand-over files (damaged, or not regular files); 2 set aside"
                       " as *.corrupt-…")


def test_an_inbox_that_is_a_link_to_a_folder_is_neither_read_nor_written_through(trained_model_path, tmp_path):
    # the last sweep: the holder renamed the user's own *.json files in the folder the link named to *.corrupt-…
    elsewhere = tmp_path / "projects"
    elsewhere.mkdir()
    (elsewhere / "settings.json").write_text('{"theme": "dark"}')
    state = state_of(trained_model_path)
    state.parent.mkdir(parents=True, exist_ok=True)
    inbox_path(state).symlink_to(elsewhere, target_is_directory=True)
    holder, warning = open_personal(checkpoint.load(trained_model_path))
    second, _ = open_personal(checkpoint.load(trained_model_path), LearnConfig(window=10))
    assert second.hands_over
    second.learn("we run Kubernetes daily\n", wait=True)
    with pytest.raises(CheckpointError) as error:
        second.close()
    assert str(error.value) == (f"{inbox_path(state)}: could not hand over what was learned (a link, not a folder:"
                                " not written through)")
    holder.absorb_inbox()
    holder.close()
    assert warning == f"{inbox_path(state)}: a link, not a folder: what other programs hand over is not read there"
    assert [f.name for f in elsewhere.iterdir()] == ["settings.json"] and waiting(state) == 0
    assert "Kubernetes" not in holder.counts


def test_what_a_program_hands_over_is_cut_to_what_the_holder_accepts(trained_model_path):
    from autocomplete.personal import read_handed

    handed = holder_with_inbox(trained_model_path, ["the image " + "A" * 5000 + " is here", "my pin is 7294 ok"])
    [(_, _, tokens), (_, _, pin)] = read_handed(handed, model_hash(trained_model_path))
    assert tokens[:4] == ["the", "image", "<unk>", "is"] and "7294" not in pin  # never written down


def test_copies_of_the_state_a_kill_left_mid_save_are_removed_by_the_next_holder_and_by_forget(trained_model_path):
    # sweep k, item 1: each `kill -9` during a save left a ~15 MB `.NAME.pt.XXXXXXXX.tmp` of what was learned, which
    # nothing removed, `forget` included
    state = state_of(trained_model_path)
    leftover = state.with_name(f".{state.name}.k9x_2ab7.tmp")
    leftover.write_bytes(b"half a state: the words typed")
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    assert not leftover.exists()
    holder.learn("we met Zorblax\n", wait=True)
    holder.close()
    leftover.write_bytes(b"half a state: the words typed")
    other = state.with_name(f".{state.name}x.k9x_2ab7.tmp")  # another file's, never taken for this one's
    other.write_bytes(b"not ours")
    assert set(erase_states([state])) == {state, leftover} and other.exists()


def test_forget_in_the_holder_also_erases_the_damaged_copies_set_aside(trained_model_path):
    personal, _ = open_personal(checkpoint.load(trained_model_path))
    aside = personal.path.with_name(personal.path.name + ".corrupt-20261130-010101")
    aside.write_bytes(b"an old state that could not be read, with what it learned")
    personal.learn("we run Kubernetes\n", wait=True)
    personal.forget()
    assert not aside.exists() and not personal.path.exists()
    personal.close()


def test_a_holder_killed_between_its_save_and_the_removal_of_what_it_learned_from_the_inbox_learns_nothing_twice(
    trained_model_path
):
    import os

    handed = holder_with_inbox(trained_model_path, ["we met Zorblax at the harbour"])
    code = ("import os, sys; from autocomplete import checkpoint; from autocomplete.personal import open_personal\n"
            "real = checkpoint.save_payload\n"
            "def save_then_die(payload, path, **kwargs):\n    real(payload, path, **kwargs); os._exit(9)\n"
            "checkpoint.save_payload = save_then_die\n"
            "p, _ = open_personal(checkpoint.load(sys.argv[1])); p.absorb_inbox(); p.save()")
    done = subprocess.run([sys.executable, "-c", code, str(trained_model_path)], env=os.environ.copy())
    assert done.returncode == 9 and handed.exists()  # saved, and killed before removing the file
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    holder.absorb_inbox()
    assert holder.counts["Zorblax"] == 1 and holder.stats.lines == 1
    assert not handed.exists()  # the saved state holds it: removed unread
    holder.close()


def test_a_hand_over_whose_inbox_the_holder_removes_meanwhile_makes_it_again(trained_model_path, monkeypatch):
    from autocomplete import personal as personal_module

    state = state_of(trained_model_path)
    real_write = personal_module.atomic_write
    raced = []

    def write_after_the_holder_emptied_the_inbox(path, write, **kwargs):
        if not raced:  # the holder removes the inbox it has just emptied, between mkdir and the write
            raced.append(path)
            path.parent.rmdir()
            raise FileNotFoundError(2, "No such file or directory")
        return real_write(path, write, **kwargs)

    monkeypatch.setattr(personal_module, "atomic_write", write_after_the_holder_emptied_the_inbox)
    with held_by_another_program(state):
        second = open_elsewhere_held(trained_model_path)
        second.learn("we met Zorblax\n", wait=True)
        second.close()
    assert raced and len(list(inbox_path(state).glob("*.json"))) == 1


def test_a_second_program_says_what_it_learned_past_what_it_hands_over(trained_model_path, monkeypatch):
    from autocomplete import personal as personal_module
    from autocomplete.personal import describe

    monkeypatch.setattr(personal_module, "HANDOVER_TOKENS", 6)
    state = state_of(trained_model_path)
    with held_by_another_program(state):
        second = open_elsewhere_held(trained_model_path)
        second.learn("we met Zorblax\n", wait=True)
        assert "in memory only" not in describe(second)
        second.learn("and then Kubernetes was down\n", wait=True)
        said = describe(second)
        second.close()
    assert "hands over 6 tokens at most: 6 more are kept in memory only" in said


def test_a_child_forked_while_its_parent_learns_answers_learns_nothing_and_exits_at_once(trained_model_path, tmp_path):
    import os

    script = textwrap.dedent("""\
        import os, sys, time, autocomplete
        p = autocomplete.load(sys.argv[1])
        p.commit("a line the user wrote about Zorblax\\n" * 200)  # the learner is busy with it
        pid = os.fork()
        if pid == 0:
            p.commit("the child met Quuxly\\n")
            print("child", len(p.suggest("the ")), flush=True)
            sys.exit(0)  # its exit must not wait for a learner thread the fork did not copy
        deadline = time.monotonic() + 60
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                sys.exit("the child hung")
            time.sleep(0.05)
        p.personal.close()
        """)
    done = subprocess.run([sys.executable, "-c", script, str(trained_model_path)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("child ") and int(done.stdout.split()[1]) > 0  # it answered
    words = read_state(state_of(trained_model_path))["lexicon"]["words"]
    assert "Zorblax" in words and "Quuxly" not in words  # the parent's learning saved; the child's learned nowhere


def test_numbers_of_three_digits_or_more_are_never_learned_nor_offered(trained_lm):
    predictor = learning_predictor(trained_lm)
    predictor.personal.learn("the door pin code 7294 works and my card is 4111 1111 ok\n", wait=True)
    assert not {"7294", "4111", "1111"} & set(predictor.personal.counts)
    assert not {"7294", "4111", "1111"} & set(predictor.personal._cache.surface)
    assert "7294" not in words(predictor.suggest("the door pin code "))
    assert "7294" not in words(predictor.suggest("the door pin code 72"))
    assert {"door", "pin", "code"} <= set(predictor.personal.counts)  # the rest of the line is learned


def test_what_a_save_under_way_holds_from_the_inbox_is_not_learned_again_before_it_is_removed(
    trained_model_path, monkeypatch
):
    handed = holder_with_inbox(trained_model_path, ["we met Zorblax at the harbour"])
    holder, _ = open_personal(checkpoint.load(trained_model_path))
    holder.absorb_inbox()
    assert holder.counts["Zorblax"] == 1
    saver, release = save_held_mid_write(holder, monkeypatch)  # the inbox file is still there meanwhile
    holder.absorb_inbox()  # `autocomplete learn` takes up the inbox meanwhile
    release.set()
    saver.join()
    assert holder.counts["Zorblax"] == 1 and not handed.exists()
    holder.close()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
@pytest.mark.parametrize("name", ["SIGHUP", "SIGTERM"])
def test_a_program_that_loads_a_learning_model_saves_what_it_learned_when_its_terminal_closes_or_it_is_killed(
    trained_model_path, tmp_path, name
):
    script = ("import sys, autocomplete\npredictor = autocomplete.load(sys.argv[1])\n"
              "predictor.commit('my friend Zorblax\\n')\nprint('ready', flush=True)\nsys.stdin.readline()\n")
    env = {**os.environ, "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", script, str(trained_model_path)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        child.send_signal(getattr(signal, name))
        assert child.wait(timeout=120) == 128 + getattr(signal, name)  # it was killed on the spot: -1 or -15
    finally:
        child.kill()
        child.communicate()
    assert "Zorblax" in saved_words(tmp_path)
