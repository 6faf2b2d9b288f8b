import copy
import os
import pickle
import re
import subprocess
import sys
import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autocomplete.errors import ConfigError
from autocomplete.predictor import Predictor, in_typed_case
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


def test_a_word_typed_with_a_curly_apostrophe_completes_as_with_a_straight_one(trained_lm):
    predictor = Predictor(trained_lm)
    word = next(w for w in trained_lm.vocab.itos if "'" in w[1:-1] and w[0].isalpha())  # a contraction it knows
    typed = word[: word.index("'") + 1]
    curly = typed.replace("'", "\u2019")
    for text in (f"hear me {typed}", f"hear me {curly}"):  # as the session splits the text
        assert word in [s.word for s in predictor.suggest(text, k=50)], text
    for partial in (typed, curly):  # as readline hands the word over
        assert word in [s.word for s in predictor.suggest("hear me ", k=50, partial=partial)], partial


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


def words(suggestions):
    return [s.word for s in suggestions]


def test_case_variants_of_a_word_are_offered_once_in_the_typed_case_with_their_probabilities_added(cased_lm):
    predictor = Predictor(cased_lm)
    variants = [cased_lm.vocab.stoi[w] for w in ("you", "You", "YOU")]
    suggestions = predictor.suggest("how are yo", k=5)
    assert sorted(words(suggestions)) == ["you", "young"]
    added = float(predictor.distribution("how are ")[variants].sum())
    assert suggestions[words(suggestions).index("you")].probability == pytest.approx(added, rel=1e-5)


def test_a_lower_case_prefix_completes_an_all_capitals_word_in_lower_case(cased_lm):
    predictor = Predictor(cased_lm)
    suggestions = predictor.suggest("how are xxx", k=5)
    assert words(suggestions) == ["xxxviii"]  # never xxxVIII
    assert predictor.insertions("how are xxx", suggestions) == ["viii"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how are yo", {"you", "young"}),
        ("how are Yo", {"You", "Young"}),
        ("how are YO", {"YOU", "YOUNG"}),
        ("how are Xx", {"Xxxviii", "Xxi"}),
        ("how are XX", {"XXXVIII", "XXI"}),
        ("Yo", {"You", "Young"}),  # a sentence start: capitalised as before
        ("yo", {"you", "young"}),  # typed in lower case anyway: kept so
    ],
)
def test_the_rest_of_a_word_follows_the_case_it_is_typed_in(cased_lm, text, expected):
    suggestions = Predictor(cased_lm).suggest(text, k=5)
    assert set(words(suggestions)) == expected and len(suggestions) == len(expected)


def test_a_name_typed_with_its_capital_keeps_its_spelling_and_comes_first(cased_lm):
    predictor = Predictor(cased_lm)
    assert words(predictor.suggest("how are Ok", k=5)) == ["Okonkwo", "Okay"]
    assert set(words(predictor.suggest("how are ok", k=5))) == {"okonkwo", "okay"}  # typed in lower case: kept so


def test_a_continuation_completes_the_partial_word_in_the_case_it_is_typed_in(cased_lm):
    continuation = Predictor(cased_lm).continuation("how are xxx", max_words=1, temperature=0)
    assert continuation.tokens == ("XXXVIII",) and continuation.text == "viii"


@given(st.text(alphabet="abcXYZ'-", min_size=1, max_size=8), st.data())
def test_a_completion_starts_with_what_was_typed_and_spells_the_rest_in_one_case(word, data):
    n = data.draw(st.integers(1, len(word)))
    typed = "".join(c.swapcase() if data.draw(st.booleans()) else c for c in word[:n])
    shown = in_typed_case(typed, word)
    assert shown.startswith(typed) and shown.lower() == word.lower()
    rest = shown[n:]
    assert shown == word or rest in (rest.lower(), rest.upper())


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


def test_the_state_cache_stays_within_its_byte_budget_on_long_texts_and_edits(tiny_lm):
    budget = 40_000  # a few dozen of the tiny model's states
    predictor = Predictor(tiny_lm, cache_bytes=budget)
    words = ("speak hear me " * 1000).split()
    predictor.suggest(" ".join(words) + " ")
    assert predictor.cache_size() <= budget
    for at in (10, 1500, 2990):
        words[at] = "proceed"
        edited = " ".join(words) + " "
        assert (predictor.distribution(edited) - Predictor(tiny_lm).distribution(edited)).abs().max() <= 1e-5
        assert predictor.cache_size() <= budget


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


# ---- sessions: independent contexts over shared weights -------------------------------------------------------------


def test_a_session_is_an_independent_context_over_the_same_weights(trained_lm):
    predictor = Predictor(trained_lm)
    session = predictor.session()
    assert session.model is predictor.model and session.vocab is predictor.vocab
    predictor.commit("First Citizen:\n")
    assert session.context_length == 1 and predictor.context_length > 1
    assert torch.equal(session.distribution("We "), Predictor(trained_lm).distribution("We "))
    session.commit("All: Speak, speak.\n")
    with_context = Predictor(trained_lm).distribution("First Citizen:\nWe ")
    assert (predictor.distribution("We ") - with_context).abs().max() <= 1e-5
    assert session.context_version != predictor.context_version


def test_two_sessions_alternating_cost_the_single_session_keystroke(tiny_lm):
    words = ("hear me speak before we proceed any further " * 200).split()[:1500]
    texts = [" ".join(words) + " ", " ".join(reversed(words)) + " "]
    predictor = Predictor(tiny_lm)
    sessions = [predictor, predictor.session()]
    for session, text in zip(sessions, texts):
        session.suggest(text)  # warm-up: each text read once
    before = [s.steps for s in sessions]
    for word in ("all", "speak", "hear", "me"):
        for i, session in enumerate(sessions):
            texts[i] += word + " "
            session.suggest(texts[i][:-2])  # mid-word: no step
            session.suggest(texts[i])  # the word finished: one step
    assert [s.steps - b for s, b in zip(sessions, before)] == [4, 4]
    shared = Predictor(tiny_lm)  # the same alternation on one context re-reads a whole text each time
    shared.suggest(texts[0])
    start = shared.steps
    shared.suggest(texts[1])
    shared.suggest(texts[0])
    assert shared.steps - start > 1000


def test_committing_in_one_session_leaves_the_others_alone(tiny_lm):
    predictor = Predictor(tiny_lm)
    other = predictor.session()
    other.suggest("hear me ")
    steps, version = other.steps, other.context_version
    predictor.commit("speak " * 50 + "\n")
    assert other.distribution("hear me ").equal(Predictor(tiny_lm).distribution("hear me "))
    assert (other.steps, other.context_version) == (steps, version)


def test_threads_on_separate_sessions_and_on_one_session_get_the_serial_answers(trained_lm):
    predictor = Predictor(trained_lm)
    texts = [f"{w} me " for w in ("hear", "speak", "proceed", "further")]
    expected = {t: [s.word for s in Predictor(trained_lm).suggest(t)] for t in texts}
    sessions = [predictor.session() for _ in texts]
    errors: list[str] = []
    onednn = torch.backends.mkldnn.enabled

    def worker(session: Predictor, text: str) -> None:
        for i in range(15):
            typed = text + "speak " * i
            got = [s.word for s in session.suggest(text)]
            session.suggest(typed)
            if got != expected[text]:
                errors.append(text)

    threads = [threading.Thread(target=worker, args=(s, t)) for s, t in zip(sessions, texts)]  # one session each
    threads += [threading.Thread(target=worker, args=(predictor, t)) for t in texts]  # all on one session
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert torch.backends.mkldnn.enabled == onednn  # the process-wide flag is back as it was


# ---- bounded growth ---------------------------------------------------------------------------------------------------


def test_committed_words_are_computed_once_and_memory_does_not_grow_with_them(tiny_lm):
    predictor = Predictor(tiny_lm)
    line = "hear me speak before we proceed any further\n"
    predictor.commit(line)
    size = predictor.cache_size()
    steps = predictor.steps
    for _ in range(300):
        predictor.commit(line)
    assert predictor.steps - steps == 300 * 9  # eight words and the end of the line, each read once
    assert predictor.cache_size() == size
    assert predictor.context_length == 1 + 301 * 9


def test_a_long_commit_matches_reading_the_text_in_one_pass(tiny_lm):
    text = "hear me speak, before we proceed any further.\n" * 120
    predictor = Predictor(tiny_lm)
    predictor.commit(text)
    assert (predictor.distribution("All ") - reference_distribution(tiny_lm, text + "All ")).abs().max() <= 1e-5


def test_committing_the_text_just_typed_does_not_compute_it_again(tiny_lm):
    predictor = Predictor(tiny_lm)
    typed = "hear me speak before we proceed"
    for i in range(1, len(typed) + 1):
        predictor.suggest(typed[:i])
    predictor.continuation(typed, max_words=1, temperature=0, finished=True)  # the grey text's lookahead
    steps = predictor.steps
    predictor.commit(typed + "\n")
    assert predictor.steps - steps == 1  # only the end of the line
    fresh = Predictor(tiny_lm)
    fresh.commit(typed + "\n")
    assert (predictor.distribution("All ") - fresh.distribution("All ")).abs().max() <= 1e-6


class CountingTokenizer:
    """The model's tokenizer, counting the characters it is asked to tokenise."""

    def __init__(self, tokenizer):
        self.inner = tokenizer
        self.chars = 0

    def tokenize(self, text):
        self.chars += len(text)
        return self.inner.tokenize(text)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("committed", [False, True])
def test_keystroke_work_does_not_grow_with_the_length_of_the_text(tiny_lm, committed):
    work = []
    for words in (100, 5000):
        predictor = Predictor(tiny_lm)
        counter = predictor.tokenizer = CountingTokenizer(predictor.tokenizer)
        text = "hear me speak " * (words // 3)
        if committed:
            predictor.commit(text)
            text = ""
        predictor.suggest(text)
        chars, steps = counter.chars, predictor.steps
        for word in ("before ", "we ", "proceed "):
            for i in range(1, len(word) + 1):
                predictor.suggest(text + word[:i])
            text += word
        work.append((counter.chars - chars, predictor.steps - steps))
    assert work[0] == work[1]
    assert work[1][1] == 3 and work[1][0] < 200


def test_the_front_door_predicts_without_importing_prompt_toolkit(trained_model_path):
    code = (
        "import sys, autocomplete\n"
        f"p = autocomplete.load({str(trained_model_path)!r})\n"
        "words = p.suggest('hear me', k=5)\n"
        "assert words and all(isinstance(w, autocomplete.Suggestion) for w in words), words\n"
        "assert p.session().suggest('hear me ', k=2)\n"
        "assert 'prompt_toolkit' not in sys.modules, sorted(m for m in sys.modules if 'prompt' in m)\n"
        "import torch; assert torch.get_num_threads() == 1\n"
        "torch.set_num_threads(2)\n"
        f"autocomplete.load({str(trained_model_path)!r}, threads=None)\n"
        "assert torch.get_num_threads() == 2  # threads=None leaves the host's setting alone\n"
        "print(autocomplete.percent(words[0].probability))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("%")


@pytest.mark.parametrize("k", [1.5, 0, -3, True, "5", None])
def test_suggest_refuses_a_k_that_is_not_a_whole_number_of_at_least_one(tiny_lm, k):
    with pytest.raises(ConfigError, match=f"k must be an integer ≥ 1, got {k!r}"):
        Predictor(tiny_lm).suggest("hear me ", k=k)


@pytest.mark.parametrize("seed", [2**64, 2**70, -1, 1.5, "x", True])
def test_a_seed_outside_0_to_2_to_the_64_is_refused_before_sampling(tiny_lm, seed):
    predictor = Predictor(tiny_lm)
    with pytest.raises(ConfigError, match=f"seed must be an integer from 0 to {2**64 - 1}, got {seed!r}"):
        predictor.continuation("hear", seed=seed)
    with pytest.raises(ConfigError, match="seed must be"):
        predictor.stream("hear", seed=seed)  # at the call, not at the first token
    assert predictor.continuation("hear", seed=2**64 - 1) == predictor.continuation("hear", seed=2**64 - 1)


def test_sampling_settings_must_be_a_sampling_config(tiny_lm):
    with pytest.raises(TypeError, match="sampling must be a SamplingConfig .*got dict"):
        Predictor(tiny_lm).continuation("hear", {"temperature": 1})


def test_text_given_as_bytes_is_refused_as_not_str(tiny_lm):
    predictor = Predictor(tiny_lm)
    for call in (predictor.commit, predictor.suggest, predictor.distribution, predictor.reset):
        with pytest.raises(TypeError, match="(text|context) must be str, got bytes"):
            call(b"hi")


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_a_yes_or_no_argument_that_is_not_true_or_false_is_refused_before_anything_happens(tiny_lm, tmp_path, value):
    import autocomplete
    from autocomplete import checkpoint
    predictor = Predictor(tiny_lm)
    before = predictor.context_length
    calls = {
        "learn": lambda: predictor.commit("hear me\n", learn=value),
        "words_only": lambda: predictor.suggest("hear ", words_only=value),
        "finished": lambda: predictor.stream("hear", finished=value),
        "nonempty": lambda: predictor.continuation("hear", nonempty=value),
        "quantize": lambda: Predictor(tiny_lm, quantize=value),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=f"^{name} must be True or False, got {re.escape(repr(value))}$"):
            call()
    assert predictor.context_length == before  # refused before the text was committed
    checkpoint.save(tiny_lm, tmp_path / "m.pt")
    for name in ("quantize", "learn", "save"):
        with pytest.raises(TypeError, match=f"^{name} must be True or False"):
            autocomplete.load(tmp_path / "m.pt", **{name: value})


@pytest.mark.parametrize("model", [5, b"m.pt", ["m.pt"]])
def test_the_front_door_says_a_model_must_be_a_path(model):
    import autocomplete

    with pytest.raises(TypeError, match=f"model must be a path \\(str or pathlib.Path\\), got {type(model).__name__}"):
        autocomplete.load(model)


@pytest.mark.parametrize("threads", [1.5, 0, os.cpu_count() + 1, "2", True])
def test_the_front_door_refuses_thread_counts_the_cli_refuses_and_leaves_the_setting_alone(tiny_lm, tmp_path, threads):
    import autocomplete
    from autocomplete import checkpoint

    checkpoint.save(tiny_lm, tmp_path / "m.pt")
    before = torch.get_num_threads()
    with pytest.raises(ConfigError, match=f"threads must be an integer from 1 to {os.cpu_count()}"):
        autocomplete.load(tmp_path / "m.pt", threads=threads, learn=False)
    assert torch.get_num_threads() == before


def test_a_huge_thread_count_is_an_error_not_a_crash(tiny_lm, tmp_path):
    from autocomplete import checkpoint

    checkpoint.save(tiny_lm, tmp_path / "m.pt")
    code = (
        "import autocomplete\n"
        "try:\n"
        f"    autocomplete.load({str(tmp_path / 'm.pt')!r}, threads=100000, learn=False)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # it was killed by a segmentation fault (-11)
    assert result.stdout.startswith("threads must be an integer from 1 to ")


@pytest.mark.parametrize("device", ["bogus", "meta", "tpu", "cuda:x", "CPU", ""])
def test_the_front_door_refuses_an_unknown_device_before_reading_the_model(tmp_path, device):
    import autocomplete

    expected = f"^unknown device {re.escape(repr(device))}; expected auto, cpu, cuda, cuda:N or mps$"
    with pytest.raises(ConfigError, match=expected):
        autocomplete.load(tmp_path / "missing.pt", device=device, learn=False)  # not "no such model file"


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3", "mps"])
def test_a_gpu_this_machine_lacks_is_one_line_that_says_what_to_use(tiny_lm, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=rf"^device '{device}' asked for, but no .* is available \(use device='cpu'\)$"):
        Predictor(tiny_lm, device=device)


@pytest.mark.parametrize("device", [5, None, 1.5, True])
def test_a_device_that_is_neither_text_nor_a_torch_device_is_a_type_error(tiny_lm, tmp_path, device):
    import autocomplete

    message = f"^device must be str or torch.device, got {type(device).__name__}$"
    with pytest.raises(TypeError, match=message):
        Predictor(tiny_lm, device=device)
    with pytest.raises(TypeError, match=message):
        autocomplete.load(tmp_path / "missing.pt", device=device, learn=False)


def test_a_device_may_be_a_torch_device_or_auto(tiny_lm, tmp_path, monkeypatch):
    import autocomplete
    from autocomplete import checkpoint

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Predictor(tiny_lm, device=torch.device("cpu")).device == torch.device("cpu")
    checkpoint.save(tiny_lm, tmp_path / "m.pt")
    predictor = autocomplete.load(tmp_path / "m.pt", device="auto", learn=False)
    assert predictor.device == torch.device("cpu") and predictor.suggest("hear ")


def test_insertion_and_candidates_refuse_what_is_not_text_or_a_suggestion_at_the_call(tiny_lm):

    predictor = Predictor(tiny_lm)
    word = predictor.suggest("hear ")[0]
    calls = [
        (lambda: predictor.insertion(None, word), "^text must be str, got NoneType$"),
        (lambda: predictor.insertions(123, [word]), "^text must be str, got int$"),
        (lambda: predictor.candidates(None), "^partial must be str, got NoneType$"),  # was: every word's id
        (lambda: predictor.candidates(5), "^partial must be str, got int$"),
        (lambda: predictor.insertion("Hello,", "how"), "^suggestion must be a Suggestion .*got str$"),
        (lambda: predictor.insertions("Hello,", word), "^suggestions must be a list of Suggestion .*got Suggestion$"),
        (lambda: predictor.insertions("Hello,", [word, None]), r"^suggestions\[1\] must be a Suggestion .*NoneType$"),
    ]
    for call, message in calls:
        with pytest.raises(TypeError, match=message):
            call()
    assert predictor.insertion("Hello,", word) == " " + word.word


@pytest.mark.parametrize("token_id", [10**9, -1, 1.5, "3", None])
def test_a_suggestion_whose_token_id_is_not_in_the_vocabulary_is_a_value_error(tiny_lm, token_id):
    from autocomplete.predictor import Suggestion

    message = f"^suggestion has token id {re.escape(repr(token_id))}, not one of this model's"
    with pytest.raises(ValueError, match=message):
        Predictor(tiny_lm).insertion("Hello,", Suggestion("x", 0.1, token_id))


def test_a_generator_that_is_no_torch_generator_is_refused_when_sampling_is_asked_for(tiny_lm):
    predictor = Predictor(tiny_lm)
    for call in (predictor.stream, predictor.continuation):
        with pytest.raises(TypeError, match="^generator must be a torch.Generator or None, got str$"):
            call("hear", generator="x")  # stream: at the call, not at the first token
    generator = torch.Generator().manual_seed(3)
    assert predictor.continuation("hear", generator=generator, max_words=3).words <= 3


@pytest.mark.parametrize("copy_it", [copy.copy, copy.deepcopy, pickle.dumps])
def test_a_predictor_is_not_copied_but_points_at_session(tiny_lm, copy_it):
    with pytest.raises(TypeError, match=r"^a Predictor cannot be copied or pickled: predictor.session\(\) gives"):
        copy_it(Predictor(tiny_lm))
