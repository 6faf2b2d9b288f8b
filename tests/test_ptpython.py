"""The ptpython plugin, in a real ptpython in a real terminal (tmux), on the small test model."""

import sys
import time

import pytest

from .conftest import Tmux, needs_tmux, saved_words, wait_for

pytest.importorskip("ptpython")

CONFIG = """\
import autocomplete.ptpython


def configure(repl):
    autocomplete.ptpython.configure(repl)
"""


def last_prompt_line(screen):
    return next((line for line in reversed(screen.splitlines()) if line.startswith(">>>")), "")


@needs_tmux
def test_ptpython_shows_the_model_in_a_comment_and_ctrl_c_prints_no_traceback(tmp_path, trained_model_path):
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "ptpython", "--config-file", str(config), "--history-file", str(tmp_path / "h")]
    term = Tmux(command, {"AUTOCOMPLETE_MODEL": str(trained_model_path), "TERM": "xterm-256color"})
    try:
        term.wait(lambda s: s.startswith(">>>") and "[F2] Menu" in s)
        term.send("-l", "x = 1  # hear me ")
        screen = term.wait(lambda s: len(last_prompt_line(s).rstrip()) > len(">>> x = 1  # hear me"))
        ghost = last_prompt_line(screen)[len(">>> x = 1  # hear me ") :].rstrip()
        term.send("Right")
        term.send("-l", "X")
        screen = term.wait(lambda s: "X" in last_prompt_line(s))
        assert last_prompt_line(screen).startswith(f">>> x = 1  # hear me {ghost} X")
        term.send("C-c")  # ptpython clears the line after its application has ended
        screen = term.wait(lambda s: last_prompt_line(s).rstrip() == ">>>")
        term.send("-l", "print(6 * 7)")
        term.send("Enter")
        screen = term.wait(lambda s: "42" in s)
        assert "Traceback" not in screen and "RuntimeError" not in screen
    finally:
        term.close()


@needs_tmux
def test_ptpython_with_a_missing_model_says_so_in_one_line_and_starts_without_the_plugin(tmp_path):
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    missing = tmp_path / "missing.pt"
    command = [sys.executable, "-m", "ptpython", "--config-file", str(config), "--history-file", str(tmp_path / "h")]
    env = {"AUTOCOMPLETE_MODEL": str(missing), "TERM": "xterm-256color"}
    term = Tmux(command, env, width=250)  # wide enough for the error line not to wrap
    try:
        screen = term.wait(lambda s: ">>>" in s and "[F2] Menu" in s)
        assert screen.splitlines()[0] == f"autocomplete: error: {missing}: no such model file"
        assert "Traceback" not in screen and "Press ENTER" not in screen
        term.send("-l", "print(6 * 7)")
        term.send("Enter")
        screen = term.wait(lambda s: "42" in s)
        assert "Traceback" not in screen
    finally:
        term.close()


def start_ptpython(tmp_path, model_path):
    """ptpython in tmux with the plugin configured, on the model at ``model_path``, at its first prompt."""
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "ptpython", "--config-file", str(config), "--history-file", str(tmp_path / "h")]
    env = {"AUTOCOMPLETE_MODEL": str(model_path), "AUTOCOMPLETE_DATA_DIR": str(tmp_path), "TERM": "xterm-256color"}
    term = Tmux(command, env)
    term.wait(lambda s: s.startswith(">>>") and "[F2] Menu" in s)
    return term


def run_input(term, line):
    """Type ``line``, press Enter and wait for the next empty prompt."""
    term.send("-l", line)
    term.send("Enter")
    term.wait(lambda s: last_prompt_line(s).rstrip() == ">>>")


@needs_tmux
def test_a_name_written_in_one_inputs_comment_is_offered_in_the_next(tmp_path, trained_model_path):
    term = start_ptpython(tmp_path, trained_model_path)
    try:
        run_input(term, "x = 1  # I met Zorblax at the harbour")
        term.send("-l", "y = 2  # then Zorb")
        term.wait(lambda s: last_prompt_line(s).rstrip() == ">>> y = 2  # then Zorblax")  # grey "lax"
    finally:
        term.close()


@needs_tmux
def test_what_a_ptpython_learned_is_saved_when_its_terminal_window_is_closed(tmp_path, trained_model_path):
    term = start_ptpython(tmp_path, trained_model_path)
    try:
        run_input(term, "x = 1  # I met Zorblax at the harbour")
        time.sleep(1.0)  # the input's prose is learned in a thread of its own
    finally:
        term.close()  # the window closes: ptpython gets SIGHUP, long before its next minute's save
    wait_for(lambda: "Zorblax" in saved_words(tmp_path))


@needs_tmux
def test_ptpythons_guest_says_its_usage_as_a_call_since_ptpython_has_no_magics(tmp_path, trained_model_path):
    config = tmp_path / "config.py"
    config.write_text(CONFIG.replace("    autocomplete.ptpython.configure(repl)",
                                     "    import builtins\n    builtins.guest = autocomplete.ptpython.configure(repl)"))
    command = [sys.executable, "-m", "ptpython", "--config-file", str(config), "--history-file", str(tmp_path / "h")]
    term = Tmux(command, {"AUTOCOMPLETE_MODEL": str(trained_model_path), "TERM": "xterm-256color"})
    try:
        term.wait(lambda s: s.startswith(">>>") and "[F2] Menu" in s)
        term.send("-l", "print(guest.command('bogus'))")
        term.send("Enter")
        screen = term.wait(lambda s: "usage:" in s)
        assert 'usage: guest.command("on|off|temp T|learn [on|off]|forget|status")' in screen
    finally:
        term.close()
