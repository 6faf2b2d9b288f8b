"""readline completion, driven through a real pseudo-terminal: a cmd.Cmd program and a plain input() loop."""

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import sys
import termios
import time

import pytest

from autocomplete.errors import ConfigError

from .conftest import personal_info

pty = pytest.importorskip("pty")
readline = pytest.importorskip("readline")

NOTES = """
import cmd, sys
import autocomplete, autocomplete.readline

# the base model: its answers change only with the context, so the count of computations is exact
completer = autocomplete.readline.install(autocomplete.load(sys.argv[1], threads=None, learn=False))

class Notes(cmd.Cmd):
    prompt = "notes> "

    def default(self, line):
        print("saved:", line)

    def completedefault(self, text, line, begidx, endidx):
        return completer.matches(text, line, begidx, endidx)

    def do_quit(self, arg):
        print("computed", completer.computed, "context", completer.predictor.context_length, "done")
        return True

    def do_open(self, arg):
        print("opened:", arg)

    def complete_open(self, text, line, begidx, endidx):  # the program's own completion: 150 names, unsorted
        return [name for name in (f"report_{i:03d}.txt" for i in reversed(range(150))) if name.startswith(text)]

Notes().cmdloop()
"""

INPUT_LOOP = """
import sys
import autocomplete, autocomplete.readline

autocomplete.readline.install(autocomplete.load(sys.argv[1], threads=None))
while (line := input("> ")) != "quit":
    print("got:", repr(line))
"""


class Terminal:
    """A program on a pseudo-terminal; ``send`` types and waits until the screen output settles."""

    def __init__(self, program: str, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the program under test, on a screen 80 columns wide
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            os.environ["TERM"] = "xterm"
            os.environ.pop("INPUTRC", None)
            os.execv(sys.executable, [sys.executable, "-c", program, *args])
        self.output = ""

    def read_until(self, text: str, timeout: float = 60.0, start: int = 0) -> str:
        """The output from ``start`` on, once ``text`` has appeared in it."""
        deadline = time.monotonic() + timeout
        while text not in self.output[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in:\n{self.output}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
        return self.output[start:]

    def send(self, keys: str, until: str) -> str:
        """Type ``keys``; the output they caused, once it shows ``until``."""
        start = len(self.output)
        os.write(self.fd, keys.encode())
        return self.read_until(until, start=start)

    def close(self) -> None:
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def notes(trained_model_path):
    terminal = Terminal(NOTES, str(trained_model_path))
    terminal.read_until("notes> ")
    yield terminal
    terminal.close()


def test_tab_completes_a_word_with_its_space_and_lists_candidates_by_rank_with_probabilities(notes, trained_lm):
    from autocomplete.predictor import Predictor

    expected = Predictor(trained_lm).suggest("hear me ", 5, partial="s")
    listing = notes.send("hear me s\t\t", until="%")
    listing += notes.read_until("notes> hear me s", start=len(notes.output) - len(listing))
    shown = [line for line in listing.splitlines() if "%" in line][-1]
    words = [piece.split()[0] for piece in shown.split("   ") if piece.strip()]
    assert words == [s.word for s in expected]  # the model's order, not readline's alphabetical one
    assert len(expected) > 1 and words != sorted(words)
    notes.send("\x15" + "Before we proceed any furth\t", until="further ")
    notes.send("\r", until="saved: Before we proceed any further")  # the completion brought its space


def test_the_programs_own_completions_are_listed_as_readline_lists_them_in_columns_that_fit_the_screen(notes):
    start = len(notes.output)
    notes.send("open report_\t\t", until="report_149.txt")
    notes.read_until("notes> open report_", start=notes.output.index("report_149.txt", start))  # the line again
    listing = notes.output[start:]
    assert "Display all 150 possibilities? (y or n)" in listing  # readline's question before a long list
    rows = [row for row in listing.splitlines() if re.fullmatch(r"(report_\d{3}\.txt *)+", row)]
    assert len(rows) > 1 and all(len(row) <= 80 for row in rows)  # columns, not one line the screen wraps
    table = [row.split() for row in rows]
    down_the_columns = [table[r][c] for c in range(len(table[0])) for r in range(len(table)) if c < len(table[r])]
    assert down_the_columns == [f"report_{i:03d}.txt" for i in range(150)]  # whole, sorted as readline sorts
    notes.send("\x15say hear me s\t\t", until="%")  # the completer's own candidates are still ranked


def test_apostrophes_stay_inside_the_word_being_completed(notes):
    notes.send("I ne'\t", until="ne'er ")
    notes.send("\r", until="saved: I ne'er")


def test_candidates_are_computed_once_per_line_and_lines_become_context(notes):
    notes.send("hear me s\t\t", until="%")
    notes.send("\t\t", until="%")
    notes.send("\t\t", until="%")
    notes.send("\r", until="saved:")
    notes.send("hear me s\t\t", until="%")  # the same words on the next line: the context has changed
    report = notes.send("\x15quit\r", until=" done")
    computed = int(report.split("computed")[-1].split()[0])
    context = int(report.split("context")[-1].split()[0])
    assert computed == 2  # once per line: the repeated Tabs were answered from the cache
    assert context == 1 + 3 + 1  # the first line ("hear me s") and its end were committed as context


def test_plain_input_gets_the_same_completion(trained_model_path):
    terminal = Terminal(INPUT_LOOP, str(trained_model_path))
    try:
        terminal.read_until("> ")
        terminal.send("I ne'\t", until="ne'er ")
        terminal.send("\r", until="got: \"I ne'er \"")
    finally:
        terminal.close()


def test_the_completer_offers_a_word_in_the_case_it_is_typed_in(cased_lm):
    from autocomplete.predictor import Predictor
    from autocomplete.readline import ReadlineCompleter

    completer = ReadlineCompleter(Predictor(cased_lm))
    assert sorted(completer.matches("yo", "how are yo", 8, 10)) == ["you ", "young "]
    assert completer.matches("xxx", "how are xxx", 8, 11) == ["xxxviii "]


def test_uninstall_puts_back_what_install_replaced(trained_lm):
    import autocomplete.readline as rl
    from autocomplete.predictor import Predictor

    def previous(text, state):
        return None

    readline.set_completer(previous)
    readline.set_completer_delims(" ")
    completer = rl.install(Predictor(trained_lm), tab=False)
    try:
        assert readline.get_completer() is completer and "'" not in readline.get_completer_delims()
        assert completer.matches("sp", "hear me sp", 8, 10)[0].endswith(" ")
    finally:
        rl.uninstall()
    assert readline.get_completer() is previous and readline.get_completer_delims() == " "


def test_the_lines_read_after_the_last_tab_are_learned_when_the_program_exits(trained_model_path, tmp_path):
    import subprocess

    script = "import readline, autocomplete.readline\nautocomplete.readline.install()\n" \
             "readline.add_history('my friend Zorblax')  # a line input() read; no Tab after it\n"
    env = {**os.environ, "AUTOCOMPLETE_MODEL": str(trained_model_path), "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    assert personal_info(trained_model_path, tmp_path)["new_words"] == 1  # Zorblax


def test_a_readline_program_says_so_when_a_session_holds_the_state_it_would_learn_into(trained_model_path, tmp_path):
    import subprocess

    from autocomplete import checkpoint
    from autocomplete.personal import model_hash, state_path

    from .conftest import held_by_another_program

    state = state_path(checkpoint.load(trained_model_path), model_hash(trained_model_path))
    state.parent.mkdir(parents=True, exist_ok=True)
    script = "import autocomplete.readline\nautocomplete.readline.install()\n"
    env = {**os.environ, "AUTOCOMPLETE_MODEL": str(trained_model_path)}
    with held_by_another_program(state):
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.startswith("autocomplete: warning: another autocomplete session")
    assert "is handed over to it" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("loaded", ["my friend Zorblax\nwe met Quuxly\n", "my friend Zorblax\n"])
def test_a_history_file_the_program_loads_is_not_learned_again_only_the_lines_typed(
    trained_model_path, tmp_path, monkeypatch, loaded
):

    history = tmp_path / "history"
    history.write_text(loaded)  # typed, and learned, in earlier runs (one line too: nothing is typed before it)
    program = INPUT_LOOP.replace(
        "autocomplete.readline.install(autocomplete.load(sys.argv[1], threads=None))",
        "autocomplete.readline.install(autocomplete.load(sys.argv[1]))\n"
        "import readline; readline.read_history_file(sys.argv[2])",
    )
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path))
    term = Terminal(program, str(trained_model_path), str(history))
    term.read_until("> ")
    term.send("hello there\r", until="got:")
    os.write(term.fd, b"quit\r")
    os.waitpid(term.pid, 0)  # it ends, learning what it read
    os.close(term.fd)
    personal = personal_info(trained_model_path, tmp_path)
    assert personal["lines"] == 2 and personal["words"] == 3  # "hello there" and "quit"; not Zorblax, Quuxly


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_readline_program_whose_terminal_closes_saves_the_lines_it_read(trained_model_path, tmp_path):
    import subprocess

    script = ("import readline, sys, autocomplete.readline\nautocomplete.readline.install()\n"
              "readline.add_history('my friend Zorblax')\nprint('ready', flush=True)\nsys.stdin.readline()\n")
    env = {**os.environ, "AUTOCOMPLETE_MODEL": str(trained_model_path), "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGHUP)  # its terminal window is closed
    assert child.wait(timeout=120) == 128 + signal.SIGHUP
    child.stdin.close()
    child.stdout.close()
    assert personal_info(trained_model_path, tmp_path)["new_words"] == 1  # Zorblax


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"learn": "no"}, TypeError, "learn must be True or False, got 'no'"),
        ({"learn": None}, TypeError, "learn must be True or False, got None"),
        ({"tab": 1}, TypeError, "tab must be True or False, got 1"),
        ({"k": 0}, ConfigError, "k must be an integer ≥ 1, got 0"),
        ({"k": None}, ConfigError, "k must be an integer ≥ 1, got None"),
        ({"k": 2.5}, ConfigError, "k must be an integer ≥ 1, got 2.5"),
        ({"completer_delims": None}, TypeError, "completer_delims must be str, got NoneType"),
        ({"predictor": "mine.pt"}, TypeError, "predictor must be a Predictor or None (load it first"),
    ],
)
def test_install_refuses_a_bad_argument_with_one_clear_error_before_changing_readline(arguments, error, message):
    import autocomplete.readline as rl

    def previous(text, state):
        return None

    readline.set_completer(previous)
    readline.set_completer_delims(" ")
    predictor = arguments.pop("predictor", None)
    with pytest.raises(error, match=re.escape(message)):
        rl.install(predictor, **arguments)  # checked before the shipped model would be loaded
    assert readline.get_completer() is previous and readline.get_completer_delims() == " "
    assert rl._saved is None  # nothing half-installed for uninstall() to undo


def test_a_completer_made_directly_refuses_a_k_that_would_make_tab_do_nothing(trained_lm):
    from autocomplete.predictor import Predictor
    from autocomplete.readline import ReadlineCompleter

    with pytest.raises(ConfigError, match="k must be an integer ≥ 1, got 0"):
        ReadlineCompleter(Predictor(trained_lm), k=0)


def test_lines_read_after_uninstall_are_neither_context_nor_learned_and_those_before_it_are(trained_lm):
    import autocomplete.readline as rl
    from autocomplete.predictor import Predictor

    completer = rl.install(Predictor(trained_lm), tab=False)
    readline.add_history("hear me speak")  # a line input() read while the completer was in place
    rl.uninstall()
    context = completer.predictor.context_length
    assert context > 1  # taken in at uninstall(), not left for a later Tab
    readline.add_history("my password is swordfish")
    completer.matches("s", "s", 0, 1)  # a cmd.Cmd program may still route its completion here
    assert completer.predictor.context_length == context


def test_a_program_that_uninstalls_learns_nothing_it_reads_afterwards(trained_model_path, tmp_path):
    import subprocess

    script = ("import readline, autocomplete.readline\nautocomplete.readline.install()\n"
              "readline.add_history('my friend Zorblax')\nautocomplete.readline.uninstall()\n"
              "readline.add_history('my password is Quuxwobble')  # read after uninstall: private\n")
    env = {**os.environ, "AUTOCOMPLETE_MODEL": str(trained_model_path), "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    personal = personal_info(trained_model_path, tmp_path)
    assert personal["lines"] == 1 and personal["new_words"] == 1  # Zorblax's line; not Quuxwobble's


HOST_HOOK = """
import readline, sys
import autocomplete, autocomplete.readline

def prefill():  # the program's own pre-input hook: each line starts with a word in it
    readline.insert_text("well ")
    readline.redisplay()

if sys.argv[3] == "before":
    readline.set_pre_input_hook(prefill)
autocomplete.readline.install(autocomplete.load(sys.argv[1]))
readline.read_history_file(sys.argv[2])
if sys.argv[3] == "after":
    readline.set_pre_input_hook(prefill)
while (line := input("> ")) != "well quit":
    print("got:", repr(line))
    if line == "well uninstall":
        autocomplete.readline.uninstall()
"""


@pytest.mark.skipif("libedit" in (readline.__doc__ or ""), reason="libedit: install() takes the hook")
@pytest.mark.parametrize("host_sets_it", ["before", "after"])
def test_the_programs_own_pre_input_hook_keeps_running_and_its_history_file_is_still_not_learned(
    trained_model_path, tmp_path, monkeypatch, host_sets_it
):

    history = tmp_path / "history"
    history.write_text("my friend Zorblax\nwe met Quuxly\n")  # typed, and learned, in earlier runs
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path))
    term = Terminal(HOST_HOOK, str(trained_model_path), str(history), host_sets_it)
    term.read_until("> well ")
    term.send("hello there\r", until="got: 'well hello there'")  # the host's hook ran
    term.send("uninstall\r", until="got: 'well uninstall'")
    term.send("again\r", until="got: 'well again'")  # and still runs after uninstall()
    os.write(term.fd, b"quit\r")
    os.waitpid(term.pid, 0)
    os.close(term.fd)
    assert personal_info(trained_model_path, tmp_path)["lines"] == 2  # the two lines typed before uninstall(); no history


def test_the_line_just_read_becomes_context_before_the_next_one_is_typed(trained_lm):
    from autocomplete.predictor import Predictor
    from autocomplete.readline import ReadlineCompleter

    completer = ReadlineCompleter(Predictor(trained_lm))
    completer.before_input()  # readline's pre-input hook, as the first line starts
    readline.add_history("hear me speak")  # the line input() just read
    completer.before_input()  # the hook again, as the next line starts: no Tab needed
    assert completer.predictor.context_length == 1 + 3 + 1


def test_commands_typed_at_the_debuggers_prompt_are_not_learned_and_the_programs_lines_around_them_are(
    trained_lm, monkeypatch
):
    import pdb

    from autocomplete.predictor import Predictor
    from autocomplete.readline import ReadlineCompleter

    readline.clear_history()
    completer = ReadlineCompleter(Predictor(trained_lm))
    committed = []
    monkeypatch.setattr(completer.predictor, "commit", committed.append)
    program = readline.get_completer()
    try:
        completer.before_input()  # the program reads a line
        readline.add_history("my friend Zorblax")
        readline.set_completer(pdb.Pdb().complete)  # breakpoint(): pdb's prompt, with its completer
        completer.before_input()
        readline.add_history("p Quuxwobble")
        completer.before_input()  # pdb reads its next command
        readline.add_history("c")
        readline.set_completer(program)  # the program reads again
        completer.before_input()
        readline.add_history("we met Quuxly")
        readline.set_completer(pdb.Pdb().complete)  # a second breakpoint, where the program ends
        completer.before_input()
        readline.add_history("q")
        completer._absorb_history()  # at exit
    finally:
        readline.set_completer(program)
    assert committed == ["my friend Zorblax\n", "we met Quuxly\n"]


def test_a_program_that_keeps_one_copy_of_each_line_in_its_history_has_each_line_it_reads_learned(trained_lm):
    from autocomplete.predictor import Predictor
    from autocomplete.readline import ReadlineCompleter

    readline.clear_history()
    completer = ReadlineCompleter(Predictor(trained_lm))
    completer.before_input()  # the first line starts
    try:
        for line in ["hear me speak", "good night", "hear me speak"]:
            readline.add_history(line)  # input() read it
            for number in range(readline.get_current_history_length() - 1, 0, -1):
                if readline.get_history_item(number) == line:  # the program drops the older copy
                    readline.remove_history_item(number - 1)
            completer.before_input()
        assert readline.get_current_history_length() == 2
        assert completer.predictor.context_length == 1 + (3 + 1) + (2 + 1) + (3 + 1)
    finally:
        readline.clear_history()


def test_a_program_whose_history_is_capped_still_learns_every_line_it_reads(trained_model_path, tmp_path, monkeypatch):

    program = INPUT_LOOP.replace(
        "autocomplete.readline.install(autocomplete.load(sys.argv[1], threads=None))",
        "import readline; readline.parse_and_bind('set history-size 2')  # as an inputrc may set it\n"
        "autocomplete.readline.install(autocomplete.load(sys.argv[1]))",
    )
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path))
    term = Terminal(program, str(trained_model_path))
    term.read_until("> ")
    for line in ["my friend Zorblax", "we met Quuxly", "at the Wobbleford inn", "hello there"]:
        term.send(line + "\r", until=f"got: {line!r}")
    os.write(term.fd, b"quit\r")
    os.waitpid(term.pid, 0)  # it ends, learning what it read
    os.close(term.fd)
    assert personal_info(trained_model_path, tmp_path)["lines"] == 5  # each line once, though the history holds two


def test_a_tab_after_a_word_is_learned_offers_it_though_the_line_and_cursor_are_the_same(trained_model_path):
    import autocomplete
    from autocomplete.readline import ReadlineCompleter

    predictor = autocomplete.load(trained_model_path)  # with the user's personal state (an empty, isolated one)
    completer = ReadlineCompleter(predictor.session())
    assert "Zorblax " not in completer.matches("Zo", "Later I saw Zo", 12, 14)
    predictor.commit("I met Zorblax at the station\n")  # learned from another session of the same user
    predictor.personal.wait()
    assert "Zorblax " in completer.matches("Zo", "Later I saw Zo", 12, 14)


KILLED_IN_ITS_HOOK = """
import atexit, os, readline, signal, sys
import autocomplete, autocomplete.readline

calls = []

def hook():  # the program's own pre-input hook, during which a kill arrives as the second line starts
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))

readline.set_pre_input_hook(hook)
autocomplete.readline.install(autocomplete.load(sys.argv[1]))
atexit.register(print, "the program's exit handlers ran")
while True:
    print("got:", repr(input("> ")))
"""


@pytest.mark.skipif("libedit" in (readline.__doc__ or ""), reason="libedit: install() takes the hook")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_kill_that_arrives_while_readline_runs_a_hook_ends_the_program_and_saves_what_it_read(
    trained_model_path, tmp_path, monkeypatch, name
):

    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path))
    term = Terminal(KILLED_IN_ITS_HOOK, str(trained_model_path), name)
    term.read_until("> ")
    term.send("my friend Zorblax\r", until="got:")  # then the hook of the next line gets the signal
    deadline = time.monotonic() + 60
    while not (ended := os.waitpid(term.pid, os.WNOHANG))[0] and time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            term.read_until("\0", timeout=0.5)  # what it writes meanwhile
    if not ended[0]:
        term.close()
        raise AssertionError(f"it went on reading lines, the kill lost in the hook:\n{term.output}")
    os.close(term.fd)
    assert os.waitstatus_to_exitcode(ended[1]) == 128 + getattr(signal, name)
    assert "the program's exit handlers ran" in term.output  # not ended by the guard that ends a program anyway
    assert "Exception ignored" not in term.output and "Traceback" not in term.output
    assert personal_info(trained_model_path, tmp_path)["new_words"] == 1  # Zorblax
