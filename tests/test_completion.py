"""The embeddable prompt_toolkit API, driven through real prompt_toolkit sessions on a pipe (no terminal)."""

import asyncio
import threading
import time

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.application.current import set_app
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, WordCompleter, merge_completers
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.keys import Keys
from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from prompt_toolkit.layout import BufferControl, HSplit, Layout, Window
from prompt_toolkit.layout.processors import AppendAutoSuggestion
from prompt_toolkit.output import DummyOutput

from autocomplete.completion import (
    LanguageModelAutoSuggest,
    LanguageModelCompleter,
    SamplingSettings,
    _answer,
    follow_learning,
    key_bindings,
    load_predictor,
    python_prose,
)
from autocomplete.display import percent
from autocomplete.predictor import Predictor
from autocomplete.settings import SamplingConfig

from .conftest import ALT_F, ALT_N, ALT_P, BACKSPACE, CTRL_T, ENTER, ESC, RIGHT, SHIFT_TAB, TAB, wait_for

class Driver:
    """Runs a PromptSession on a pipe and types into it from a helper thread, waiting for the model between keys."""

    def __init__(self, predictor, settings=None, follow=False, **options):
        self.suggest = LanguageModelAutoSuggest(predictor, settings)
        self.completer = LanguageModelCompleter(predictor, self.suggest.settings, suggest=self.suggest)
        self.predictor = predictor
        self.follow = follow  # follow_learning on the application
        self.options = {"complete_while_typing": False, **options}

    def run(self, script):
        with create_pipe_input() as pipe:
            session = PromptSession(
                input=pipe, output=DummyOutput(), completer=self.completer, auto_suggest=self.suggest,
                key_bindings=key_bindings(self.suggest), **self.options,
            )
            self.buffer = session.default_buffer
            stop = follow_learning(session.app, session.default_buffer, self.suggest) if self.follow else (lambda: None)
            errors = []

            def typist():
                try:
                    script(pipe, self)
                except BaseException as e:  # noqa: BLE001 - reported below
                    errors.append(e)
                    pipe.send_text(ENTER)

            thread = threading.Thread(target=typist)
            thread.start()
            result = session.prompt()
            thread.join()
            stop()
            if errors:
                raise errors[0]
            return result

    def suggestion(self):
        return self.buffer.suggestion.text if self.buffer.suggestion else None

    def type(self, pipe, text):
        pipe.send_text(text)
        wait_for(lambda: self.buffer.text.endswith(text.rstrip("\x7f")) and self.buffer.suggestion is not None)


@pytest.fixture
def predictor(trained_lm):
    return Predictor(trained_lm)


def test_the_completer_offers_the_likeliest_words_with_probabilities(predictor):
    completions = list(LanguageModelCompleter(predictor).get_completions(Document("hear me s"), CompleteEvent()))
    assert completions and all(c.text.lower().startswith("s") and c.start_position == -1 for c in completions)
    assert all(c.display_meta_text.endswith("%") for c in completions)
    expected = [s.word for s in predictor.suggest("hear me s")]
    assert [c.display_text for c in completions] == expected
    assert [c.display_meta_text for c in completions] == [percent(s.probability) for s in predictor.suggest("hear me s")]


def test_the_menu_and_the_grey_text_complete_a_word_in_the_case_it_is_typed_in(cased_lm):
    predictor = Predictor(cased_lm)
    completer = LanguageModelCompleter(predictor)

    def menu(text):
        return [c.display_text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert sorted(menu("how are yo")) == ["you", "young"]  # you, You and YOU are one word
    assert menu("how are xxx") == ["xxxviii"]
    assert LanguageModelAutoSuggest(predictor).compute(Buffer(), Document("how are xxx")).text.startswith("viii")


def test_the_completer_composes_with_merge_completers(predictor):
    merged = merge_completers([WordCompleter(["sparrow"]), LanguageModelCompleter(predictor)])
    texts = [c.text for c in merged.get_completions(Document("hear me sp"), CompleteEvent())]
    assert texts[0] == "sparrow" and len(texts) > 1


def test_grey_text_completes_the_word_and_adds_the_next_one(predictor):
    suggest = LanguageModelAutoSuggest(predictor, SamplingSettings(ghost_words=2))
    buffer = Buffer()
    ghost = suggest.compute(buffer, Document("hear me sp")).text
    first = predictor.suggest("hear me sp")[0]
    completion = first.completion_for("sp")
    greedy = predictor.continuation("hear me sp" + completion, max_words=1, temperature=0, stop_at="sentence", finished=True)
    assert ghost == completion + greedy.text
    assert suggest.compute(buffer, Document("hear me ")).text.startswith(predictor.suggest("hear me ")[0].word)


def test_right_arrow_accepts_the_whole_suggestion(predictor):
    driver = Driver(predictor)

    def script(pipe, d):
        d.type(pipe, "hear me ")
        d.expected = d.suggestion()
        pipe.send_text(RIGHT)
        wait_for(lambda: d.buffer.text != "hear me ")
        pipe.send_text(ENTER)

    line = driver.run(script)
    assert line.rstrip() == ("hear me " + driver.expected).rstrip()


@pytest.mark.parametrize("key", [ALT_F, TAB], ids=["alt-f", "menu"])
@pytest.mark.parametrize("typed, kept", [(" x", " x"), ("  x", "  x"), (".", "."), (" .", " ."), (" " + BACKSPACE, "")])
def test_a_space_or_punctuation_typed_right_after_an_accepted_word_takes_the_place_of_its_space(
    predictor, key, typed, kept
):
    # sweeps j and m: Alt-F or a word picked in the menu, then Space, gave two spaces ("know  x"); a second space is
    # typed as usual, and Backspace after the space taken deletes the word's space (not the whole acceptance)
    driver = Driver(predictor)

    def script(pipe, d):
        d.type(pipe, "hear me ")
        pipe.send_text(key)
        wait_for(lambda: d.buffer.text.endswith(" ") and d.buffer.text != "hear me ")
        d.accepted = d.buffer.text
        pipe.send_text(typed)
        wait_for(lambda: d.buffer.text == d.accepted[:-1] + kept)
        pipe.send_text(ENTER)

    line = driver.run(script)
    assert driver.accepted.endswith(" ") and line == driver.accepted[:-1] + kept


def multi_word_context(predictor, settings):
    suggest = LanguageModelAutoSuggest(predictor, settings)
    for text in ("hear me ", "I am ", "What is ", "The ", "You are ", "and the ", "of the "):
        if len(suggest.compute(Buffer(), Document(text)).text.split()) >= 2:
            return text
    pytest.fail("the test model never suggests two words")


def test_alt_f_accepts_one_word_and_keeps_the_rest(predictor):
    settings = SamplingSettings(ghost_words=3)
    driver = Driver(predictor, settings)
    text = multi_word_context(predictor, settings)

    def script(pipe, d):
        d.type(pipe, text)
        d.expected = d.suggestion()
        pipe.send_text(ALT_F)
        wait_for(lambda: d.buffer.text != text)
        d.rest = d.suggestion()
        pipe.send_text(ENTER)

    line = driver.run(script)
    first = driver.expected.split()[0]
    assert line == text + first + " "
    assert driver.rest == driver.expected[len(first):].lstrip()


def test_alt_n_and_alt_p_cycle_through_the_alternatives(predictor):
    driver = Driver(predictor, SamplingSettings(ghost_words=1))
    alternatives = [s.word for s in predictor.suggest("hear me ")]

    def script(pipe, d):
        d.type(pipe, "hear me ")
        d.seen = [d.suggestion()]
        for key in (ALT_N, ALT_N, ALT_P):
            before = d.suggestion()
            pipe.send_text(key)
            wait_for(lambda: d.suggestion() not in (None, before))
            d.seen.append(d.suggestion())
        pipe.send_text(ENTER)

    driver.run(script)
    assert driver.seen == [alternatives[0], alternatives[1], alternatives[2], alternatives[1]]


def showing_its_sample(d):
    """Whether the grey text is the sample drawn (sampling() is true a moment before the grey text is replaced)."""
    sample = d.suggest.state(d.buffer).sample
    return d.suggest.sampling(d.buffer) and sample is not None and d.suggestion() == sample.continuation


def test_ctrl_t_samples_a_continuation_that_can_be_accepted_or_dismissed(predictor):
    driver = Driver(predictor, SamplingSettings(SamplingConfig(temperature=1.5, max_words=6), ghost_words=1))

    def script(pipe, d):
        d.type(pipe, "hear me ")
        greedy = d.suggestion()
        pipe.send_text(CTRL_T)
        wait_for(lambda: showing_its_sample(d))
        d.sample = d.suggestion()
        pipe.send_text(ESC)
        wait_for(lambda: not d.suggest.sampling(d.buffer) and d.suggestion() == greedy)
        pipe.send_text(CTRL_T)
        wait_for(lambda: showing_its_sample(d))  # not the greedy grey text still, which a race once read
        d.accepted = d.suggestion()
        pipe.send_text(RIGHT + ENTER)

    line = driver.run(script)
    # a sample that starts with punctuation that joins the word before takes the typed space away ("hear me!")
    joined = ("hear me" + driver.accepted).rstrip()
    assert line.rstrip() == ("hear me " + driver.accepted).rstrip() or line.rstrip() == joined and not joined[7].isalnum()
    assert driver.sample


def test_ctrl_t_closes_the_menu_so_that_a_sample_that_wraps_below_the_line_is_not_covered(predictor):
    driver = Driver(predictor, SamplingSettings(SamplingConfig(max_words=6)), complete_while_typing=True)

    def script(pipe, d):
        pipe.send_text("hear me ")
        wait_for(lambda: d.buffer.complete_state is not None and d.buffer.complete_state.completions)
        pipe.send_text(CTRL_T)
        wait_for(lambda: d.suggest.sampling(d.buffer))
        d.menu = d.buffer.complete_state
        pipe.send_text(ENTER)

    assert driver.run(script).startswith("hear me ") and driver.menu is None


def sampled(suggest, text):
    """A buffer holding ``text`` whose grey text is a Ctrl-T sample (computed as the key would, with no terminal)."""
    buffer = Buffer(document=Document(text))
    suggest.get_suggestion(buffer, buffer.document)  # watches the buffer, as the first key of a session does
    buffer.suggestion = suggest.compute(buffer, buffer.document, sample=True)
    assert suggest.sampling(buffer)
    return buffer


def test_a_sample_is_dropped_once_a_line_is_committed_even_where_the_same_text_comes_back(predictor):
    suggest = LanguageModelAutoSuggest(predictor, SamplingSettings(SamplingConfig(temperature=1.5)))
    buffer = sampled(suggest, "hear me ")
    predictor.commit("The ship sailed at dawn.\n")
    assert not suggest.sampling(buffer)
    buffer.suggestion = suggest.compute(buffer, buffer.document)
    assert not suggest.sampling(buffer)
    assert buffer.suggestion.text == LanguageModelAutoSuggest(predictor).compute(Buffer(), buffer.document).text


def test_a_sample_is_dropped_when_its_line_is_cleared_and_the_same_text_is_typed_again(predictor):
    suggest = LanguageModelAutoSuggest(predictor, SamplingSettings(SamplingConfig(temperature=1.5)))
    buffer = sampled(suggest, "hear me ")
    buffer.document = Document("")  # Ctrl-C in a host that clears the line
    buffer.document = Document("hear me ")
    buffer.suggestion = suggest.compute(buffer, buffer.document)
    assert not suggest.sampling(buffer)


def test_a_sample_after_a_typed_space_that_starts_with_punctuation_takes_the_space_when_accepted(cased_lm):
    cased_lm.model.decoder.bias.data[cased_lm.vocab.itos.index(".")] = 50.0  # it always ends the sentence
    driver = Driver(Predictor(cased_lm), SamplingSettings(SamplingConfig(temperature=0)))

    def script(pipe, d):
        d.type(pipe, "how are you ")
        pipe.send_text(CTRL_T)
        wait_for(lambda: d.suggest.sampling(d.buffer))
        d.sample = d.suggestion()
        pipe.send_text(RIGHT)
        wait_for(lambda: d.buffer.text != "how are you ")
        d.accepted = d.buffer.text
        pipe.send_text(BACKSPACE)  # taken back: the space and the sample are back
        wait_for(lambda: d.buffer.text == "how are you " and d.suggest.sampling(d.buffer))
        pipe.send_text(RIGHT + ENTER)

    assert driver.run(script) == "how are you."
    assert (driver.sample, driver.accepted) == (".", "how are you.")


def test_backspace_after_accepting_brings_the_suggestion_back(predictor):
    driver = Driver(predictor)

    def script(pipe, d):
        d.type(pipe, "hear me ")
        d.expected = d.suggestion()
        pipe.send_text(RIGHT)
        wait_for(lambda: d.buffer.text != "hear me ")
        pipe.send_text(BACKSPACE)
        # the text and the grey text are put back one after the other, in the UI's thread: read both once both are
        wait_for(lambda: d.buffer.text == "hear me " and d.suggestion() is not None)
        d.after = d.suggestion()
        pipe.send_text(ENTER)

    assert driver.run(script) == "hear me "
    assert driver.after == driver.expected


def test_deleting_a_character_refreshes_the_suggestion(predictor):
    driver = Driver(predictor)

    def script(pipe, d):
        d.type(pipe, "hear me sp")
        pipe.send_text(BACKSPACE)
        wait_for(lambda: d.buffer.text == "hear me s" and d.suggestion() is not None)
        d.after = d.suggestion()
        pipe.send_text(ENTER)

    driver.run(script)
    assert ("hear me s" + driver.after).startswith("hear me " + predictor.suggest("hear me s")[0].word)


def test_temperature_keys_change_the_shared_settings(predictor):
    driver = Driver(predictor, SamplingSettings(SamplingConfig(temperature=0.8)))

    def script(pipe, d):
        pipe.send_text("\x1b+\x1b+\x1b-\x1b=")
        wait_for(lambda: abs(d.suggest.settings.temperature - 1.0) < 1e-9)
        pipe.send_text(ENTER)

    driver.run(script)
    assert driver.suggest.settings.temperature == pytest.approx(1.0)


def test_tab_opens_the_menu_and_inserts_the_first_candidate(predictor):
    driver = Driver(predictor)
    first = predictor.suggest("hear me s")[0].word

    def script(pipe, d):
        d.type(pipe, "hear me s")
        pipe.send_text(TAB)
        wait_for(lambda: d.buffer.complete_state is not None and d.buffer.text != "hear me s")
        pipe.send_text(ENTER)

    assert driver.run(script).strip() == "hear me " + first


def test_shift_tab_opens_the_menu_on_the_last_candidate_and_walks_back(predictor):
    driver = Driver(predictor)
    words = [s.word for s in predictor.suggest("hear me s")]
    assert len(words) >= 3

    def script(pipe, d):
        d.type(pipe, "hear me s")
        pipe.send_text(SHIFT_TAB)
        wait_for(lambda: d.buffer.text.rstrip() == "hear me " + words[-1])
        pipe.send_text(SHIFT_TAB)
        wait_for(lambda: d.buffer.text.rstrip() == "hear me " + words[-2])
        pipe.send_text(ENTER)

    assert driver.run(script).strip() == "hear me " + words[-2]


def test_one_predictor_serves_a_bare_application_too(predictor):
    suggest = LanguageModelAutoSuggest(predictor)
    buffer = Buffer(completer=LanguageModelCompleter(predictor), auto_suggest=suggest, multiline=False)
    done = KeyBindings()

    @done.add("enter")
    def _(event):
        event.app.exit(result=buffer.text)

    with create_pipe_input() as pipe:
        app = Application(
            layout=Layout(Window(BufferControl(buffer, input_processors=[AppendAutoSuggestion()]))),
            key_bindings=merge_key_bindings([key_bindings(suggest), done]),
            input=pipe, output=DummyOutput(),
        )

        def typist():
            pipe.send_text("hear me ")
            wait_for(lambda: buffer.suggestion is not None)
            typist.expected = buffer.suggestion.text
            pipe.send_text(RIGHT)
            wait_for(lambda: buffer.text != "hear me ")
            pipe.send_text(ENTER)

        thread = threading.Thread(target=typist)
        thread.start()
        result = app.run()
        thread.join()
    assert result.rstrip() == ("hear me " + typist.expected).rstrip()


def test_load_predictor_is_still_importable_from_the_adapters(trained_model_path):
    assert load_predictor(trained_model_path, threads=None).suggest("hear me ")


def test_candidates_are_recomputed_when_the_committed_context_changes(predictor):
    suggest = LanguageModelAutoSuggest(predictor)
    buffer = Buffer()
    suggest.compute(buffer, Document(""))
    predictor.commit("First Citizen:\n")
    suggest.compute(buffer, Document(""))
    after = [s.word for s in suggest.state(buffer).alternatives]
    assert after == [s.word for s in predictor.suggest("")]


def test_one_keystroke_asks_the_model_for_its_words_once_for_the_grey_text_and_the_menu(predictor, monkeypatch):
    suggest = LanguageModelAutoSuggest(predictor)
    completer = LanguageModelCompleter(predictor, suggest.settings)  # not linked to the suggester: one predictor
    fresh = {text: [c.text for c in LanguageModelCompleter(Predictor(predictor.lm)).get_completions(Document(text), CompleteEvent())]
             for text in ("hear me s", "hear me ", "hear me,")}
    asked = []
    for name in ("suggest", "insertions"):
        original = getattr(predictor, name)
        monkeypatch.setattr(predictor, name, lambda *a, _f=original, _n=name, **k: asked.append(_n) or _f(*a, **k))
    for text, expected in fresh.items():
        asked.clear()
        suggest.compute(Buffer(), Document(text))
        assert [c.text for c in completer.get_completions(Document(text), CompleteEvent())] == expected
        assert asked == ["suggest", "insertions"], text  # the menu reused the grey text's answer


def test_the_menu_follows_the_committed_context_and_what_was_learned_since_the_same_text_was_asked(trained_lm):
    from autocomplete.personal import LearnConfig, Personal

    predictor = Predictor(trained_lm, personal=Personal(trained_lm, LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0)))
    completer = LanguageModelCompleter(predictor)

    def menu(text):
        return [c.display_text for c in completer.get_completions(Document(text), CompleteEvent())]

    before = menu("")
    predictor.commit("First Citizen:\n", learn=False)
    assert menu("") == [s.word for s in predictor.suggest("")] != before
    assert menu("and then Ku") == []
    predictor.personal.learn("we run Kubernetes at work\n")  # learned, the context unchanged
    predictor.personal.wait()
    assert menu("and then Ku") == ["Kubernetes"]



def test_the_toolbar_candidates_follow_what_was_learned_since_the_same_text_was_asked(trained_lm):
    from autocomplete.personal import LearnConfig, Personal

    predictor = Predictor(trained_lm, personal=Personal(trained_lm, LearnConfig(window=0, lr=0.0, lr_bias=0.0, lr_top=0.0)))
    suggest, buffer = LanguageModelAutoSuggest(predictor), Buffer()
    suggest.compute(buffer, Document("and then Ku"))
    assert "Kubernetes" not in [s.word for s in suggest.state(buffer).alternatives]
    predictor.personal.learn("we run Kubernetes at work\n")  # learned, the context and the text unchanged
    predictor.personal.wait()
    suggest.compute(buffer, Document("and then Ku"))
    assert [s.word for s in suggest.state(buffer).alternatives] == ["Kubernetes"]  # as the menu shows it


def test_the_grey_text_the_menu_and_the_toolbar_asking_at_once_share_one_answer(predictor, monkeypatch):
    calls, original = [], predictor.suggest

    def slow(*args, **kwargs):
        calls.append(args[0])
        time.sleep(0.2)  # long enough for the other askers to arrive while it computes
        return original(*args, **kwargs)

    monkeypatch.setattr(predictor, "suggest", slow)
    answers = []
    askers = [threading.Thread(target=lambda: answers.append(_answer(predictor, "hear me ", 5))) for _ in range(3)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert calls == ["hear me "] and answers[0] is answers[1] is answers[2]
    for i in range(40):  # a burst of keys files an answer per text; the first is still there for a late asker
        _answer(predictor, "hear me " + "x" * i, 5)
    assert _answer(predictor, "hear me ", 5) is answers[0] and calls.count("hear me ") == 1

# ---- good guests: context, fallback, no tasks without an application, the UI thread never runs the model ---------


def test_a_host_changing_the_text_between_prompts_starts_no_background_task(predictor):
    driver = Driver(predictor, validate_while_typing=False)  # as ptpython's buffer (prompt_toolkit's validator
    # would start a task of its own)

    def script(pipe, d):
        d.type(pipe, "hear me sp")
        pipe.send_text(ENTER)

    driver.run(script)
    driver.buffer.text = "hear"  # ptpython clears the line like this after Ctrl-C, with no application running
    driver.buffer.text = ""
    assert driver.buffer.suggestion is None


def test_the_context_hook_decides_what_the_model_reads(predictor):
    suggest = LanguageModelAutoSuggest(predictor, context=python_prose)
    plain = LanguageModelAutoSuggest(predictor)
    in_comment = suggest.compute(Buffer(), Document("x = 1  # hear me "))
    assert in_comment is not None and in_comment.text == plain.compute(Buffer(), Document(" hear me ")).text
    assert suggest.compute(Buffer(), Document("import o")) is None


def history_buffer(*lines):
    history = InMemoryHistory()
    for line in lines:
        history.append_string(line)
    return Buffer(history=history)


def test_the_fallback_suggests_where_the_model_has_nothing_to_say(predictor):
    suggest = LanguageModelAutoSuggest(predictor, context=python_prose, fallback=AutoSuggestFromHistory())
    buffer = history_buffer("import os")
    assert suggest.get_suggestion(buffer, Document("import o")).text == "s"
    assert asyncio.run(suggest.get_suggestion_async(buffer, Document("import o"))).text == "s"
    in_comment = asyncio.run(suggest.get_suggestion_async(buffer, Document("# hear me ")))
    assert in_comment.text == LanguageModelAutoSuggest(predictor).compute(Buffer(), Document(" hear me ")).text


def test_a_synchronous_get_suggestion_answers_from_the_cache_and_never_runs_the_model(predictor, monkeypatch):
    suggest = LanguageModelAutoSuggest(predictor, fallback=AutoSuggestFromHistory())
    buffer = history_buffer("hear me out")
    document = Document("hear me ")
    assert suggest.get_suggestion(buffer, document).text == "out"  # not computed yet: the host's answer meanwhile
    computed = suggest.compute(buffer, document)
    calls = []
    for name in ("suggest", "continuation", "distribution", "insertion", "insertions"):
        monkeypatch.setattr(predictor, name, lambda *a, _name=name, **k: calls.append(_name))
    assert suggest.get_suggestion(buffer, document) == computed
    assert suggest.get_suggestion(buffer, Document("hear me o")).text == "ut" and calls == []


def test_the_completer_hands_code_to_the_host_completer(predictor):
    completer = LanguageModelCompleter(predictor, context=python_prose, fallback=WordCompleter(["import", "input"]))
    in_code = [c.text for c in completer.get_completions(Document("imp"), CompleteEvent())]
    assert in_code == ["import"]
    in_comment = list(completer.get_completions(Document("x = 1  # hear me s"), CompleteEvent()))
    assert [c.display_text for c in in_comment] == [s.word for s in predictor.suggest(" hear me s")]
    assert all(c.start_position == -1 for c in in_comment)


def test_key_bindings_are_claimed_only_where_the_host_says(predictor):
    suggest = LanguageModelAutoSuggest(predictor)
    assert not key_bindings(suggest, filter=False).bindings
    here = [False]
    served = Buffer(auto_suggest=suggest)
    with set_app(Application(layout=Layout(Window(BufferControl(served))), output=DummyOutput())):
        switched = key_bindings(suggest, filter=Condition(lambda: here[0]), tab=False)
        assert switched.bindings and not any(b.filter() for b in switched.bindings)
        no_tab = key_bindings(suggest, tab=False)
        tab_keys = {(Keys.ControlI,), (Keys.BackTab,)}
        assert {b.keys for b in no_tab.bindings if b.filter()} & tab_keys == set()
        assert {b.keys for b in key_bindings(suggest).bindings if b.filter()} >= tab_keys


def test_the_keys_stay_the_hosts_in_a_field_the_suggester_does_not_serve(predictor):
    suggest = LanguageModelAutoSuggest(predictor)
    typed = Buffer(auto_suggest=suggest, completer=LanguageModelCompleter(predictor, suggest=suggest))
    search = Buffer(multiline=False)  # the host's own field, no model
    done = KeyBindings()

    @done.add("enter")
    def _(event):
        event.app.exit(result=search.text)

    layout = Layout(HSplit([Window(BufferControl(typed, input_processors=[AppendAutoSuggestion()])),
                            Window(BufferControl(search))]), focused_element=search)
    with create_pipe_input() as pipe:
        app = Application(layout=layout, key_bindings=merge_key_bindings([key_bindings(suggest), done]),
                          input=pipe, output=DummyOutput())
        pipe.send_text("grep foo" + CTRL_T + RIGHT + TAB + ESC + "+" + ENTER)  # Alt-+ would warm the model
        result = app.run()
    assert result == "grep foo+" and search.suggestion is None  # (a bare application: Esc alone does nothing)
    assert suggest.settings.temperature == SamplingSettings().temperature
    assert not suggest.serves(search) and suggest.serves(typed)


# ---- keys and screen -------------------------------------------------------------------------------------------


def test_a_word_typed_out_in_full_keeps_showing_the_words_after_it(predictor):
    suggest = LanguageModelAutoSuggest(predictor, SamplingSettings(ghost_words=2))
    for context in ("hear me ", "I am ", "What is ", "You are ", "and the "):
        word = predictor.suggest(context)[0].word
        if predictor.suggest(context + word)[0].word == word:
            break
    else:
        pytest.fail("the test model never ranks a typed word first")
    text = context + word
    ghost = suggest.compute(Buffer(), Document(text))
    greedy = predictor.continuation(text, max_words=1, temperature=0, stop_at="sentence", finished=True).text
    assert greedy.strip() and ghost is not None and ghost.text == greedy


def test_tab_keeps_the_grey_text_after_the_menu_word(predictor):
    driver = Driver(predictor)

    def script(pipe, d):
        d.type(pipe, "hear me s")
        pipe.send_text(TAB)
        wait_for(lambda: d.buffer.complete_state is not None and d.buffer.text.endswith(" "))
        wait_for(lambda: d.suggestion())
        d.after = (d.buffer.text, d.suggestion())
        pipe.send_text(ENTER)

    driver.run(script)
    text, ghost = driver.after
    assert ghost == LanguageModelAutoSuggest(predictor).compute(Buffer(), Document(text)).text


def test_ctrl_down_and_ctrl_up_cycle_while_the_menu_is_open_and_the_menu_marks_the_shown_word(predictor):
    driver = Driver(predictor, SamplingSettings(ghost_words=1))
    CTRL_DOWN, CTRL_UP = "\x1b[1;5B", "\x1b[1;5A"

    def script(pipe, d):
        d.type(pipe, "hear me s")
        pipe.send_text(TAB)
        wait_for(lambda: d.buffer.complete_state is not None and d.buffer.text.endswith(" ") and d.suggestion())
        d.text = d.buffer.text
        d.seen = [d.suggestion()]
        for key in (CTRL_DOWN, CTRL_DOWN, CTRL_UP):
            before = d.suggestion()
            pipe.send_text(key)
            wait_for(lambda: d.suggestion() not in (None, before))
            d.seen.append(d.suggestion())
        d.menu_open = d.buffer.complete_state is not None
        pipe.send_text(ENTER)

    driver.run(script)
    words = [s.word for s in predictor.suggest(driver.text)]
    assert driver.seen == [words[0], words[1], words[2], words[1]] and driver.menu_open


def test_the_menu_marks_the_alternative_the_grey_text_shows(predictor):
    suggest = LanguageModelAutoSuggest(predictor, SamplingSettings(ghost_words=1))
    completer = LanguageModelCompleter(predictor, suggest.settings, suggest=suggest)
    buffer = Buffer()
    buffer.document = Document("hear me ")
    app = Application(layout=Layout(Window(BufferControl(buffer))), output=DummyOutput())
    buffer.suggestion = suggest.compute(buffer, buffer.document, cycle=1)  # Alt-N: the second alternative
    menu = list(completer.get_completions(buffer.document, CompleteEvent()))
    with set_app(app):
        marked = [c.display_text for c in menu if c.display_meta_text.endswith("◂")]
    assert marked == [predictor.suggest("hear me ")[1].word] == [buffer.suggestion.text]


def test_the_line_end_share_is_known_after_a_sentence(predictor):
    suggest = LanguageModelAutoSuggest(predictor)
    buffer = Buffer()
    buffer.document = Document("hear me speak. ")
    suggest.compute(buffer, buffer.document)
    expected = float(predictor.distribution("hear me speak. ")[1])  # the end-of-utterance token
    assert suggest.line_end(buffer) == pytest.approx(expected) and expected > 0


@pytest.mark.parametrize("follow", [True, False])
def test_an_embedding_that_follows_learning_shows_a_line_learned_meanwhile_without_a_key(trained_lm, follow):
    from autocomplete.personal import Personal

    personal = Personal(trained_lm)
    harness = Driver(Predictor(trained_lm, personal=personal), follow=follow)
    shown = []

    def script(pipe, h):
        pipe.send_text("I met Zo")
        wait_for(lambda: h.buffer.text == "I met Zo")
        time.sleep(0.3)  # the grey text for what was typed, before anything is learned
        before = h.buffer.suggestion.text if h.buffer.suggestion else ""
        personal.learn("I met Zorblax today\n", wait=True)  # the line before, learned in the background
        if follow:
            wait_for(lambda: h.buffer.suggestion is not None and h.buffer.suggestion.text.startswith("rblax"))
        else:
            time.sleep(1.0)
        shown.append((before, h.buffer.suggestion.text if h.buffer.suggestion else ""))
        pipe.send_text(ENTER)

    harness.run(script)
    (before, after), = shown
    assert not before.startswith("rblax")
    assert after.startswith("rblax") == follow  # without it, the grey text waits for the next key


def test_the_readmes_being_a_good_guest_snippet_runs_as_pasted(trained_model_path, monkeypatch):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    snippet = readme.split("**Being a good guest.**")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.setenv("AUTOCOMPLETE_MODEL", str(trained_model_path))  # its autocomplete.load(), without the shipped one
    names: dict[str, object] = {}
    exec(snippet, names)  # a NameError if it uses what nothing defines
    buffer = Buffer()
    with create_pipe_input() as pipe:
        app = Application(layout=Layout(Window(BufferControl(buffer))), input=pipe, output=DummyOutput(),
                          key_bindings=names["keys"])
        with set_app(app):
            buffer.document = Document("x = 1  # the weather is ni")
            assert names["in_prose"]() and not names["cursor_in_leading_whitespace"]()
            buffer.document = Document("    ")
            assert not names["in_prose"]() and names["cursor_in_leading_whitespace"]()


@pytest.mark.parametrize("suggestion, taken", [
    ("end, I", "end"), (", I said", ","), (" I said", " I"), ("don't know", "don't"), ("well-known fact", "well-known"),
    ("...", "..."), ("—", "—"), ("'t know", "'t"), ("'s room", "'s"), ("-known fact", "-known"), ("' said", "'"),
])
def test_alt_f_takes_the_next_word_without_the_punctuation_after_it(suggestion, taken):
    # "Hello my fri" + Alt-F: "end", not "end," (a user typing the comma next got "friend,,")
    from autocomplete.completion import _FIRST_WORD

    match = _FIRST_WORD.match(suggestion)
    assert match is not None and match.group() == taken
