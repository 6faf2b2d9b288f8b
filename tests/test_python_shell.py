"""What the IPython and ptpython plugins share: a guest per shell that learns the prose of what the shell ran."""

import pytest

from autocomplete import checkpoint, python_shell
from autocomplete.personal import model_hash, state_path
from autocomplete.python_shell import start_guest

from .conftest import held_by_another_program


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test is a new process as far as the plugins know: no model loaded yet."""
    monkeypatch.setattr(python_shell, "_loaded", {})
    monkeypatch.setattr(python_shell, "_guests", {})


def open_guest(model_path, **options):
    guest = start_guest(model_path, **options)
    assert guest is not None
    return guest


def offered(guest, text):
    return [s.word for s in guest.predictor.suggest(text, 5)]


def test_a_shell_learns_the_prose_of_what_it_ran_and_never_its_code(trained_model_path):
    guest = open_guest(trained_model_path)
    try:
        assert "Zorblax" not in offered(guest, " and then Zo")
        guest.ran('zorvath_total = 1  # I met Zorblax at the harbour\nprint("Quuxly said hello to them")\n'
                  '# df = pd.read_csv(path_to_file, sep=sep_char)\nh = {"Authorization": "Bearer sk_live_9f8e7d6c5b4aQ"}\n')
        guest.wait()
        counts = guest.predictor.personal.counts
        assert {"Zorblax", "Quuxly", "harbour"} <= set(counts)
        assert not {"zorvath_total", "print", "zorvath", "total", "read_csv", "Bearer", "sk_live_9f8e7d6c5b4aQ"} & set(counts)
        assert "Zorblax" in offered(guest, " and then Zo")
    finally:
        guest.predictor.personal.close()


def test_what_a_shell_learned_is_saved_and_offered_in_the_next_one(trained_model_path):
    guest = open_guest(trained_model_path)
    guest.ran("# I met Zorblax at the harbour\n")
    guest.wait()
    guest.predictor.personal.close()  # the shell ends
    python_shell._loaded.clear()
    again = open_guest(trained_model_path)
    try:
        assert again.predictor.personal.saving
        assert "Zorblax" in offered(again, " and then Zo")
    finally:
        again.predictor.personal.close()


def test_an_input_that_starts_with_a_space_or_runs_while_learning_is_off_is_not_learned(trained_model_path):
    guest = open_guest(trained_model_path)
    personal = guest.predictor.personal
    try:
        guest.ran(" # my password is Zorblax\n")
        assert guest.command("learn off").startswith("autocomplete: learning off (what was learned still helps): 0 ")
        guest.ran("# I met Quuxly today\n")
        guest.wait()
        assert personal.words == 0
        assert guest.command("learn on").startswith("autocomplete: learning on: 0 words")
        guest.command("off")  # the plugin switched off: the shell is left alone, nothing is learned either
        guest.ran("# I met Quuxly today\n")
        assert guest.command("learn").endswith("(autocomplete is off in this shell: nothing is learned until it is on)")
        assert guest.command("off now") == guest.command("status twice") == python_shell.USAGE
        guest.command("on")
        guest.ran("# I met Quuxly today\n")
        guest.wait()  # the status says at once what is still queued, without waiting for it
        status = guest.command("learn")
        assert status.startswith("autocomplete: learning on: 4 words (")  # one line, counted once
        assert status.endswith(f"kept in {personal.path} (saved within a minute, and at exit)")
        assert guest.command("forget") == "autocomplete: forgot everything learned from you; the model is as shipped"
        assert personal.words == 0 and not personal.path.exists()
        assert guest.command("learn sometimes") == "usage: %autocomplete learn [on|off]"
    finally:
        personal.close()


def test_a_shell_started_with_learn_off_reads_its_prose_as_context_and_holds_nothing(trained_model_path):
    guest = open_guest(trained_model_path, learn=False)
    try:
        before = guest.predictor.context_length
        guest.ran("# I met Zorblax at the harbour\n")
        guest.wait()
        assert guest.predictor.context_length > before  # the next input's prose reads on from this one
        assert guest.predictor.personal.words == 0 and not guest.predictor.personal.saving
        assert guest.command("learn") == "autocomplete: this shell learns nothing (started with learn=False)"
    finally:
        guest.predictor.personal.close()


def test_a_shell_says_in_one_line_when_another_program_holds_the_state_and_learns_in_memory(trained_model_path, capsys):
    state = state_path(checkpoint.load(trained_model_path), model_hash(trained_model_path))
    state.parent.mkdir(parents=True, exist_ok=True)
    with held_by_another_program(state) as pid:
        guest = open_guest(trained_model_path)
        second = start_guest(trained_model_path)  # another shell of the same process: said once
        try:
            out = capsys.readouterr().out
            assert out.startswith(f"autocomplete: warning: another autocomplete session or program (process {pid})")
            assert out.count("\n") == 1 and out.endswith("what is learned here is handed over to it\n")
            guest.ran("# I met Zorblax at the harbour\n")
            guest.wait()
            assert "Zorblax" in offered(second, " and then Zo")  # one personal state per process
            assert guest.command("learn").endswith(f"handed over to another autocomplete session or program (process {pid}), which saves it")
            assert guest.command("forget").startswith("autocomplete: another autocomplete session or program")
            assert "Zorblax" in offered(guest, " and then Zo")  # a refused forget erases nothing
        finally:
            guest.predictor.personal.close()
    assert not state.exists()


def test_a_pasted_book_is_read_only_up_to_the_bound_on_one_inputs_prose(trained_model_path):
    guest = open_guest(trained_model_path, learn=False)
    try:
        before = guest.predictor.context_length
        guest.ran('text = """' + "the king is here. " * 10_000 + '"""\n')  # 180,000 characters
        guest.wait()
        read = guest.predictor.context_length - before
        assert python_shell.PROSE_PER_INPUT // 5 <= read <= python_shell.PROSE_PER_INPUT // 3  # 18 characters: 5 tokens
    finally:
        guest.predictor.personal.close()


def test_running_an_input_never_waits_for_the_model_to_read_its_prose(trained_model_path):
    import threading

    guest = open_guest(trained_model_path, learn=False)
    release, read = threading.Event(), []

    def slow_commit(text, learn=True):  # a long docstring being read by the model
        release.wait(30)
        read.append(text)

    guest.predictor.commit = slow_commit
    try:
        guest.ran("# I met Zorblax at the harbour\n")  # returns while the model is still reading
        assert read == []
        release.set()
        guest.wait()
        assert read == ["I met Zorblax at the harbour\n"]
    finally:
        release.set()
        guest.predictor.personal.close()


def test_the_last_shell_done_with_the_model_saves_its_state_and_lets_it_go(trained_model_path):
    first, second = open_guest(trained_model_path), open_guest(trained_model_path)
    personal = first.predictor.personal
    first.ran("# I met Zorblax at the harbour\n")
    first.close()  # %unload_ext in one shell: the other still learns into the state
    assert personal.saving
    second.close()  # the last: saved, and free for a session or `autocomplete forget`
    assert not personal.saving and personal.path.exists() and not python_shell._loaded
    again = open_guest(trained_model_path)
    try:
        assert again.predictor.personal.saving and "Zorblax" in offered(again, " and then Zo")
    finally:
        again.close()


@pytest.mark.parametrize("arg", [None, 5, b"off"])
def test_a_command_that_is_not_text_is_a_type_error_that_names_the_commands(trained_model_path, arg):
    guest = open_guest(trained_model_path, learn=False)
    try:
        with pytest.raises(TypeError, match=rf"^command must be str \(one of on\|off\|.*\), got {type(arg).__name__}$"):
            guest.command(arg)
        assert guest.command("status").startswith("autocomplete: on, model")
    finally:
        guest.predictor.personal.close()


def test_the_usage_line_says_how_the_host_gives_a_command(trained_model_path):
    from autocomplete import ptpython

    guest = open_guest(trained_model_path, learn=False, asked=ptpython.ASKED)  # ptpython has no %magics
    try:
        assert guest.command("bogus") == 'usage: guest.command("on|off|temp T|learn [on|off]|forget|status")'
        assert guest.command("learn sometimes") == 'usage: guest.command("learn [on|off]")'
        assert guest.command("temp 0.7 0.8") == 'usage: guest.command("on|off|temp T|learn [on|off]|forget|status")'
        assert guest.command("temp") == "autocomplete: temperature = 0.8"  # alone: the current one
        assert guest.command("temp 0.5") == "autocomplete: temperature = 0.5"
    finally:
        guest.predictor.personal.close()
    python_shell._loaded.clear()
    ipython = open_guest(trained_model_path, learn=False)
    try:
        assert ipython.command("bogus") == "usage: %autocomplete on|off|temp T|learn [on|off]|forget|status"
    finally:
        ipython.predictor.personal.close()


def test_the_status_line_shows_a_model_name_holding_a_newline_on_its_one_line(tiny_lm):
    from autocomplete.predictor import Predictor

    tiny_lm.metadata["name"] = "name\nline2"
    guest = python_shell.PythonGuest(Predictor(tiny_lm, quantize=False), learn=False)
    assert guest.command("status") == "autocomplete: on, model name\\nline2, temperature 0.8"
