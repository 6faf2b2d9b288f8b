"""The IPython plugin, in a real IPython in a real terminal (tmux), on the small test model."""

import shlex
import subprocess
import sys
import time

import pytest

from .conftest import Tmux, needs_tmux, saved_words, wait_for

pytest.importorskip("IPython")


def start_ipython(tmp_path, model_path, *options):
    folder = tmp_path / "ipython"
    folder.mkdir()
    command = [sys.executable, "-m", "IPython", f"--ipython-dir={folder}", "--no-banner", "--colors=nocolor", *options]
    env = {"AUTOCOMPLETE_MODEL": str(model_path), "AUTOCOMPLETE_DATA_DIR": str(tmp_path), "TERM": "xterm-256color"}
    term = Tmux(command, env)
    term.wait(lambda s: "In [1]:" in s)
    return term


@pytest.fixture
def term(tmp_path, trained_model_path):
    """IPython in tmux with the plugin loaded (``--ext``) on the test model; closed after the test."""
    term = start_ipython(tmp_path, trained_model_path, "--ext", "autocomplete.ipython")
    yield term
    term.close()


def line_of(screen, start):
    """The last line of the screen that starts with ``start`` ("" if none yet)."""
    return next((line for line in reversed(screen.splitlines()) if line.startswith(start)), "")


def run_cell(term, line: str, prompt: int) -> str:
    """Type ``line``, press Enter and wait for the prompt ``In [prompt]:``; the screen then."""
    term.send("-l", line)
    term.send("Enter")
    return term.wait(lambda s: f"In [{prompt}]:" in s)



@needs_tmux
def test_ipython_shows_the_model_in_a_comment_and_its_own_history_in_code(term):
    run_cell(term, "import os", 2)
    term.send("-l", "x = 1  # hear me ")
    screen = term.wait(lambda s: len(line_of(s, "In [2]:").rstrip()) > len("In [2]: x = 1  # hear me"))
    ghost = line_of(screen, "In [2]:")[len("In [2]: x = 1  # hear me ") :].rstrip()
    term.send("Right")
    term.send("-l", "X")
    screen = term.wait(lambda s: "X" in line_of(s, "In [2]:"))
    assert line_of(screen, "In [2]:").startswith(f"In [2]: x = 1  # hear me {ghost} X")
    term.send("C-c")
    term.wait(lambda s: "X" not in line_of(s, "In [2]:"))
    term.send("-l", "impo")  # code: IPython's history suggestion, not English words
    screen = term.wait(lambda s: line_of(s, "In [2]:").rstrip() == "In [2]: import os")


@needs_tmux
def test_ipython_tab_still_indents_and_the_plugin_survives_a_new_suggestion_provider(term):
    run_cell(term, "%config TerminalInteractiveShell.autosuggestions_provider = 'AutoSuggestFromHistory'", 2)
    term.send("-l", "def f():")
    term.send("Enter")
    term.send("-l", '"""Hear me ')
    screen = term.wait(lambda s: len(line_of(s, "   ...:").rstrip()) > len('   ...:     """Hear me'))
    term.send("Enter")
    term.send("Tab")  # leading whitespace in a docstring: IPython indents, no word menu
    term.send("-l", "x")
    screen = term.wait(lambda s: line_of(s, "   ...:").rstrip().endswith("x"))
    assert line_of(screen, "   ...:").rstrip() == "   ...:         x"
    term.send("C-c")
    term.send("-l", "%autocomplete off")
    term.send("Enter")
    screen = term.wait(lambda s: "autocomplete: off" in s)
    term.send("-l", "# hear me ")
    term.wait(lambda s: line_of(s, "In [").rstrip().endswith("# hear me"))
    time.sleep(1.0)  # the model answers in a few milliseconds: no grey text by now means none
    assert line_of(term.screen(), "In [").rstrip().endswith("# hear me")
    assert "autocomplete: temperature = 0.5" in run_magic(term, "%autocomplete temp 0.5")
    assert "autocomplete: temperature must be" in run_magic(term, "%autocomplete temp hot")
    assert "autocomplete: on" in run_magic(term, "%autocomplete on")
    run_cell(term, "%unload_ext autocomplete.ipython", 7)  # IPython's own everything back
    term.send("-l", "# hear me ")
    term.wait(lambda s: line_of(s, "In [7]:").rstrip().endswith("# hear me"))
    time.sleep(1.0)
    assert line_of(term.screen(), "In [7]:").rstrip().endswith("# hear me")


def run_magic(term, line):
    term.send("C-c")
    term.send("-l", line)
    term.send("Enter")
    screen = term.wait(lambda s: f"{line}\nautocomplete:" in s)
    return screen.split(f"{line}\n")[-1].splitlines()[0]


def test_under_simple_prompt_the_plugin_says_it_is_off_in_one_line(tmp_path, trained_model_path):
    folder = tmp_path / "ipython"
    folder.mkdir()
    env = {"AUTOCOMPLETE_MODEL": str(trained_model_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", f"--ipython-dir={folder}", "--simple-prompt", "--no-banner",
         "--ext", "autocomplete.ipython"],
        input="print('ran')\n", capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("autocomplete: this IPython has no prompt_toolkit prompt")
    assert "In [1]: ran" in proc.stdout.splitlines()


@needs_tmux
@pytest.mark.parametrize("run, output", [(["-c", "'import sys; print(6 * 7, \"torch\" in sys.modules)'"], ""),
                                         (["script.py"], "> out.txt")])
def test_a_script_run_by_an_ipython_with_the_plugin_in_its_profile_is_left_alone(
    tmp_path, trained_model_path, run, output
):
    # sweeps l and m: `ipython -c …` in a terminal loaded the model (seconds), took the personal state and said so in
    # the output; with its output in a file, a line of ours led the script's
    folder = tmp_path / "ipython"
    folder.mkdir()
    (tmp_path / "script.py").write_text("import sys\nprint(6 * 7, 'torch' in sys.modules)\n")
    data = tmp_path / "data"
    command = [sys.executable, "-m", "IPython", f"--ipython-dir={folder}", "--no-banner", "--colors=nocolor",
               "--ext", "autocomplete.ipython", *run]
    env = {"AUTOCOMPLETE_MODEL": str(trained_model_path), "AUTOCOMPLETE_DATA_DIR": str(data), "TERM": "xterm-256color"}
    term = Tmux(["sh", "-c", shlex.quote(f"cd {tmp_path} && {' '.join(command)} {output}; echo finished-$?; sleep 60")],
                env)
    try:
        screen = term.wait(lambda s: "finished-" in s)
    finally:
        term.close()
    shown = [line for line in screen.splitlines() if line.strip()]
    assert shown == (["42 False", "finished-0"] if not output else ["finished-0"])  # not even PyTorch imported
    assert not output or (tmp_path / "out.txt").read_text() == "42 False\n"
    assert not data.exists()  # no personal state held, nothing learned


@needs_tmux
def test_unloading_the_ipython_plugin_removes_its_magic_and_loading_it_again_works(term):
    run_cell(term, "%unload_ext autocomplete.ipython", 2)
    # the magic went with the extension: nothing can switch the model back on
    screen = run_cell(term, "%autocomplete on", 3)
    assert "UsageError: Line magic function `%autocomplete` not found" in screen
    assert "autocomplete: on" not in screen
    term.send("-l", "# hear me ")
    term.wait(lambda s: line_of(s, "In [3]:").rstrip().endswith("# hear me"))
    time.sleep(1.0)  # the model answers in a few milliseconds: no grey text by now means none
    assert line_of(term.screen(), "In [3]:").rstrip().endswith("# hear me")
    term.send("C-c")
    screen = run_cell(term, "%load_ext autocomplete.ipython", 4)  # and it loads again, magic and grey text included
    assert "already loaded" not in screen
    assert run_magic(term, "%autocomplete status").startswith("autocomplete: on, model")
    term.send("C-c")
    term.send("-l", "x = 1  # hear me ")
    term.wait(lambda s: len(line_of(s, "In [").rstrip()) > len("In [5]: x = 1  # hear me"))


@needs_tmux
def test_a_failed_ipython_load_says_why_in_one_line_and_load_ext_then_tries_again(tmp_path, trained_model_path):
    missing = tmp_path / "missing.pt"
    term = start_ipython(tmp_path, missing, "--ext", "autocomplete.ipython")
    try:
        screen = term.screen()
        # the terminal wraps the line wherever the path's length puts its edge (at a space, too)
        assert "".join(f"autocomplete: error: {missing}: no such model file".split()) in "".join(screen.split())
        assert "Traceback" not in screen
        run_cell(term, f"%env AUTOCOMPLETE_MODEL={trained_model_path}", 2)
        # no need for %reload_ext: the failed load did not count
        screen = run_cell(term, "%load_ext autocomplete.ipython", 3)
        assert "already loaded" not in screen
        assert run_magic(term, "%autocomplete status").startswith("autocomplete: on, model")
    finally:
        term.close()


@needs_tmux
def test_a_name_written_in_one_cells_comment_is_offered_in_the_next_and_saved(term, tmp_path):
    run_cell(term, "x = 1  # I met Zorblax at the harbour", 2)
    term.send("-l", "y = 2  # then Zorb")
    term.wait(lambda s: line_of(s, "In [2]:").rstrip() == "In [2]: y = 2  # then Zorblax")  # grey "lax"
    status = run_magic(term, "%autocomplete learn")
    assert status.startswith("autocomplete: learning on: 6 words (") and "kept in" in status
    term.send("-l", "exit")
    term.send("Enter")
    wait_for(lambda: list((tmp_path / "personal").glob("*.pt")))  # saved when IPython ends


@needs_tmux
def test_what_an_ipython_learned_is_saved_when_its_terminal_window_is_closed(term, tmp_path):
    run_cell(term, "x = 1  # I met Zorblax at the harbour", 2)
    time.sleep(1.0)  # the cell's prose is learned in a thread of its own
    term.close()  # the window closes: IPython gets SIGHUP, long before its next minute's save
    wait_for(lambda: "Zorblax" in saved_words(tmp_path))


@needs_tmux
def test_tab_in_a_dictionary_key_with_a_space_completes_the_key_as_ipython_does(term):
    run_cell(term, "dd = {'the_quokka'.replace('_', ' '): 1}", 2)  # a key with a space, and no prose to learn
    term.send("-l", "dd['the q")  # the model knows words in q (quick, question), none of them quokka
    term.wait(lambda s: line_of(s, "In [2]:").startswith("In [2]: dd['the q"))
    term.send("Tab")  # IPython's key completion, not a word of the model's
    term.wait(lambda s: line_of(s, "In [2]:").startswith("In [2]: dd['the quokka"))
