"""The interactive session: type with ghost-text suggestions, or chat with the model.

Modes:

* **type** — Enter keeps the line; the model's state carries on into the next line.
* **chat** — Enter sends the line and the model answers, streamed word by word; the whole conversation conditions
  the next turn.

Commands start with ``:`` (see :data:`HELP`). A terminal that cannot run the full-screen prompt (no TTY, ``TERM=dumb``,
or ``--plain``) gets a line mode: each line typed gets its next-word predictions (type) or a reply (chat).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app_or_none
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit import search
from prompt_toolkit.filters import is_searching
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent, merge_key_bindings
from prompt_toolkit.output import Output
from prompt_toolkit.output.color_depth import ColorDepth
from prompt_toolkit.styles import BaseStyle, DynamicStyle, Style, merge_styles

from autocomplete.completion import (
    LanguageModelAutoSuggest,
    LanguageModelCompleter,
    SamplingSettings,
    follow_learning,
    key_bindings,
)
from autocomplete.display import percent
from autocomplete.errors import AutocompleteError, CheckpointError, ConfigError
from autocomplete.paths import data_dir, keep_private, private_folder
from autocomplete.personal import describe
from autocomplete.predictor import Predictor, load
from autocomplete.settings import LIMITS, SamplingConfig
from autocomplete.predictor import Suggestion as WordSuggestion
from autocomplete.tokenizer import printable, printable_word, without_controls
from autocomplete.styles import pick_style

KEYS = """\
Keys
  Right, Ctrl-E, Ctrl-F  accept the grey suggestion
  Alt-F, Ctrl-Right      accept one word of it
  Alt-N / Alt-P          next / previous alternative (also Ctrl-Down / Ctrl-Up)
  Tab / Shift-Tab        open and walk the candidate menu
  Ctrl-T                 sample a continuation (Right accepts, Esc dismisses)
  Alt-+ / Alt--          raise / lower the temperature
  Backspace              right after accepting: take it back
  Ctrl-R                 search the history
  Ctrl-C, Ctrl-D         clear the line (or stop a reply), quit
  Ctrl-Z                 suspend (fg in the shell resumes)
"""

COMMANDS = f"""\
Commands (alone, a setting shows its value)
  :temp T        sampling temperature, 0 (greedy) to {LIMITS["temperature"].high:g}
  :topk N        sample among the N likeliest words (0 = all)
  :len N         words in a sampled continuation or reply
  :k N           candidates shown (1 to {LIMITS["suggestions"].high:g})
  :mode chat     the model answers each line (:mode type: Enter keeps it)
  :style NAME    read and write in a style (auto: by the mode)
  :reset         forget the text so far
  :model PATH    switch to another model file
  :learn on|off  learn from your lines (never one that starts with a space)
  :forget        erase all it learned from you
  :help, :quit   this text; leave (or Ctrl-D)"""

HELP = KEYS + COMMANDS
LINE_MODE_HELP = """\
Line mode: each line gets its next words (a last word with no space after it
is completed); in chat mode the model answers. Ctrl-C drops the line, Ctrl-D
quits.
""" + COMMANDS.replace("(:mode type: Enter keeps it)", "(:mode type: next words)").replace(
    "learn from your lines (never one that starts with a space)", "learn from chat messages (lines are questions)"
)

STYLE = Style.from_dict(
    {
        "bottom-toolbar": "noreverse bg:#262626 #bcbcbc",
        "bottom-toolbar.key": "bold #ffffff",
        "bottom-toolbar.word": "#87d7ff",
        "bottom-toolbar.prob": "#808080",
        "bottom-toolbar.sample": "#ffd787",
        "prompt": "#5fafff bold",
        "reply": "#afd787",
        "auto-suggestion": "#6c6c6c",
        "completion-menu.meta.completion": "bg:#444444 #aaaaaa",
        "completion-menu.meta.completion.current": "bg:#00aaaa #000000",
    }
)

# Without colours (NO_COLOR, a monochrome terminal) grey is drawn as plain text: the ghost text is underlined there
# instead (prompt_toolkit renders attributes at every colour depth; underline is the one nearly every terminal shows).
MONOCHROME_STYLE = merge_styles([STYLE, Style.from_dict({"auto-suggestion": "underline"})])


def session_style(color_depth: Callable[[], ColorDepth]) -> BaseStyle:
    """:data:`STYLE`, or :data:`MONOCHROME_STYLE` while ``color_depth()`` is one bit."""
    return DynamicStyle(lambda: MONOCHROME_STYLE if color_depth() == ColorDepth.DEPTH_1_BIT else STYLE)


class SafeFileHistory(FileHistory):
    """File history that never stops the session: an unreadable file loads as empty, a failing write is skipped.

    Like :class:`FileHistory` it only ever appends, so a file it could not read is never overwritten with less. A path
    that exists but is no regular file (a folder, a named pipe, a device) is never opened: opening a FIFO waits for a
    writer, and the session hung at its first Enter. A missing file is made at once, so that a folder that cannot be
    written is found then too. Either is said once, when the history is made (before the prompt; said at the first
    Enter, it landed inside the prompt's line), and the session's lines are kept in memory only.

    The file holds every line typed: it is made readable by its user only (0600) and a missing folder 0700, as
    shells keep their history.
    """

    def __init__(self, filename: Path, warn: Callable[[str], None]) -> None:
        super().__init__(str(filename))
        self._file = Path(filename)
        self._warn = warn
        self._broken = False
        self._usable()

    def _usable(self) -> bool:
        """Whether the file may be opened; warns (once) and gives up on it if not."""
        if self._broken:
            return False
        try:
            mode = self._file.stat().st_mode
        except FileNotFoundError:  # not made yet (or a link to nowhere): made now, or said now why it cannot be
            try:
                self._create()
                return True
            except OSError as e:
                reason = f"could not be written ({e.strerror or e})"
        except OSError as e:
            reason = f"could not be read ({e.strerror or e})"
        else:
            if stat.S_ISREG(mode):
                if mode & 0o077:
                    keep_private(self._file)
                return True
            kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            reason = f"is {kind}, not a file"
        self._broken = True
        self._warn(f"history {self._file} {reason}; not saving")
        return False

    def _create(self) -> None:
        """The file, if it is missing, readable by its user only, in a folder readable by its user only."""
        private_folder(self._file.parent)
        # (never waits: a named pipe put there since the check fails at once instead of waiting for a reader)
        os.close(os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NONBLOCK", 0), 0o600))

    def load_history_strings(self) -> Iterable[str]:
        if not self._usable():
            return []
        try:
            return list(super().load_history_strings())
        except (OSError, ValueError) as e:
            self._broken = True
            self._warn(f"history {self._file} could not be read ({getattr(e, 'strerror', None) or e}); not saving")
            return []

    def store_string(self, string: str) -> None:
        if not self._usable():
            return
        try:
            super().store_string(string)  # (a file removed since was made again by _usable, never the umask's way)
        except OSError as e:
            self._broken = True
            self._warn(f"history {self._file} could not be written ({e.strerror or e}); not saving")


class IgnoreSpaceHistory(History):
    """``history`` without the lines that start with a space: as in a shell (``HISTCONTROL=ignorespace``), such a
    line is neither saved nor recalled, so a user can keep something out of the history by typing a space first."""

    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

    def load_history_strings(self) -> Iterable[str]:
        return self.history.load_history_strings()

    def store_string(self, string: str) -> None:
        self.history.store_string(string)

    def append_string(self, string: str) -> None:
        if not string.startswith(" "):
            super().append_string(string)


def history_for(path: Path | None, warn: Callable[[str], None]) -> History:
    """The session's history: in ``path`` (None: in memory only, gone at exit); lines led by a space kept out."""
    return IgnoreSpaceHistory(InMemoryHistory() if path is None else SafeFileHistory(path, warn))


@dataclass
class CommandResult:
    message: str | None = None
    quit: bool = False


def _not_a_command(document: Document) -> str | None:
    """The model reads the line up to the cursor, except in a command (``:temp 0.5``)."""
    return None if document.text.lstrip().startswith(":") else document.text_before_cursor


class Session:
    """State and behaviour of one interactive session, independent of how lines are read."""

    def __init__(
        self,
        predictor: Predictor,
        model_name: str,
        mode: str = "type",
        settings: SamplingSettings | None = None,
        echo: Callable[[str], None] | None = None,
        quantize: bool = True,
        style: str | None = None,
        learn: bool = True,
        save: bool = True,
    ) -> None:
        self.settings = settings or SamplingSettings()
        self.quantize = quantize  # how models switched to with :model are run
        self.learn = learn  # models switched to with :model get the user's personal state (False: --no-learn)
        self.save = save  # ... saved in the user data folder (False: --no-history, kept in memory only)
        self.mode = mode
        self.line_mode = False  # answering lines one by one (plain), without the full-screen prompt and its keys
        self.unsaved_why: str | None = None  # why the personal state was opened without saving, if not said otherwise
        self.style_asked: str | None = style  # --style / :style; None follows the mode (chat → dialogue, type → prose)
        self.model_name = printable_word(model_name)  # shown in one line: the toolbar's, a message's
        self.echo = echo or _print
        self.suggest = LanguageModelAutoSuggest(predictor, self.settings, _not_a_command)
        self.completer = LanguageModelCompleter(predictor, self.settings, _not_a_command, suggest=self.suggest)
        self.apply_style()

    @property
    def predictor(self) -> Predictor:
        return self.suggest.predictor

    def set_predictor(self, predictor: Predictor, name: str) -> None:
        self.apply_style(predictor)
        previous = self.predictor
        self.suggest.predictor = self.completer.predictor = predictor
        self.model_name = printable_word(name)
        if previous is not predictor and previous.personal is not None:
            previous.personal.close()  # what was learned with the previous model is saved with it

    def close(self) -> None:
        """Save what was learned (the session is ending)."""
        if self.predictor.personal is not None:
            self.predictor.personal.close()

    def apply_style(self, predictor: Predictor | None = None) -> None:
        """Give the predictor the style asked for, or the mode's; a model without styles ignores it."""
        predictor = predictor or self.predictor
        asked = self.style_asked if self.style_asked in predictor.styles else None  # another model may lack it
        predictor.set_style(pick_style(asked, self.mode, predictor.styles))

    # ---- lines ----------------------------------------------------------------------------------------------

    def handle(self, line: str, write: Callable[[str], None] | None = None) -> CommandResult:
        """Process one entered line: a command, a typed line, or a chat message (whose reply is written)."""
        if line.lstrip().startswith(":"):
            return self.command(line.strip())
        self.predictor.commit(line + "\n")
        if self.mode == "chat":
            self.reply(write or self.echo)
        return CommandResult()

    def reply(self, write: Callable[[str], None]) -> str:
        """Sample the model's answer to the conversation so far, writing it piece by piece; returns it. Ctrl-C stops
        it: what was written so far stays the model's turn, and the session goes on."""
        s = self.settings
        pieces: list[str] = []
        try:
            for _, piece in self.predictor.stream("", s.config, stop_at="utterance", nonempty=True):
                pieces.append(piece)
                write(piece)
        except KeyboardInterrupt:
            write(" (stopped)")
        text = "".join(pieces).strip()
        self.predictor.commit(text + "\n", learn=False)  # the model's own words are not the user's
        return text

    # ---- commands -------------------------------------------------------------------------------------------

    def command(self, line: str) -> CommandResult:
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        handler = _COMMANDS.get(name.lower())
        if handler is None:
            return CommandResult(f"unknown command :{name} (try :help)")
        if arg and handler in _NO_ARGUMENT:  # `:reset now` must not look as if `now` meant something
            return CommandResult(f":{name.lower()} takes no argument")
        try:
            return handler(self, arg)
        except AutocompleteError as e:
            return CommandResult(str(e))

    def _set_number(self, arg: str, usage: str, name: str) -> CommandResult:
        """Set the sampling field ``name`` from ``arg`` (none: say its value); its valid range comes from
        :data:`LIMITS` alone."""
        label = _LABELS[name]
        if not arg:
            return CommandResult(f"{label} = {_number(getattr(self.settings, name))} ({usage} to change it)")
        try:
            value = SamplingConfig.parse(name, arg)
        except ConfigError:
            return CommandResult(f"usage: {usage}, {LIMITS[name].describe()}")
        self.settings.update(**{name: value})
        return CommandResult(f"{label} = {_number(value)}")

    def toolbar(self, alternatives: list[WordSuggestion], line_end: float | None = None) -> FormattedText:
        """Model, temperature, mode and the candidates; ``line_end``, the chance that the line ends here, is shown
        in its rank (``↵ 61%`` after ``restaurant?``: why every word then looks unlikely). ``line_end`` is None while
        the candidates are being computed: no candidates then show ``…``, and once computed ``no suggestion`` (no
        word the model knows starts like the one typed), which must not look like a model still at work."""
        s = self.settings
        parts: list[tuple[str, str]] = [
            ("class:bottom-toolbar.key", f" {self.model_name} "),
            ("", f"│ temp {s.temperature:.2f} │ {self.mode}"
                 + (f" · {self.predictor.style}" if self.predictor.style else "") + " │ "),
        ]
        entries = [(w.word, w.probability) for w in alternatives]
        if alternatives and line_end is not None and line_end > alternatives[-1].probability:
            entries = sorted([*entries, ("↵", line_end)], key=lambda e: -e[1])[: len(alternatives)]
        for word, p in entries:
            parts.append(("class:bottom-toolbar.word", printable_word(word)))  # one row, whatever the vocabulary
            parts.append(("class:bottom-toolbar.prob", f" {percent(p)}  "))
        if not alternatives:
            parts.append(("class:bottom-toolbar.prob", "…" if line_end is None else "no suggestion"))
        return FormattedText(parts)


def _number(value: float | int) -> str:
    """A setting's value as the user would write it: a count in full (``1,000,000``, not ``1e+06``)."""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


_LABELS = {"temperature": "temperature", "top_k": "top-k", "max_words": "words per continuation",
           "suggestions": "candidates shown"}


def _cmd_temp(session: Session, arg: str) -> CommandResult:
    return session._set_number(arg, ":temp T", "temperature")


def _cmd_topk(session: Session, arg: str) -> CommandResult:
    return session._set_number(arg, ":topk N", "top_k")


def _cmd_len(session: Session, arg: str) -> CommandResult:
    return session._set_number(arg, ":len N", "max_words")


def _cmd_k(session: Session, arg: str) -> CommandResult:
    return session._set_number(arg, ":k N", "suggestions")


def _cmd_mode(session: Session, arg: str) -> CommandResult:
    if not arg:
        return CommandResult(f"mode = {session.mode} (:mode chat|type to change it)")
    if arg not in ("chat", "type"):
        return CommandResult("usage: :mode chat|type")
    session.mode = arg
    session.apply_style()
    return CommandResult(f"mode = {arg}" + (" (Enter sends; the model answers)" if arg == "chat" else ""))


def _cmd_style(session: Session, arg: str) -> CommandResult:
    styles = session.predictor.styles
    if not styles:
        return CommandResult(f"{session.model_name} was trained without styles")
    if not arg:
        how = "asked for" if session.style_asked else f"by the {session.mode} mode"
        return CommandResult(f"style = {session.predictor.style} ({how}); this model knows {', '.join(styles)}")
    if arg == "auto":
        session.style_asked = None
    elif arg in styles:
        session.style_asked = arg
    else:
        return CommandResult(f"usage: :style {'|'.join(styles)}|auto")
    session.apply_style()
    return CommandResult(f"style = {session.predictor.style}" + (" (by the mode)" if arg == "auto" else ""))


def _cmd_reset(session: Session, arg: str) -> CommandResult:
    session.predictor.reset()
    return CommandResult("context cleared")


def _cmd_model(session: Session, arg: str) -> CommandResult:
    if not arg:
        where = session.predictor.lm.path or "in memory"
        return CommandResult(f"model = {session.model_name} ({where}; :model PATH to switch)")
    try:
        path = Path(arg).expanduser()
    except RuntimeError:  # ~nosuchuser/x.pt
        return CommandResult(f"{arg}: no such user's home folder")
    try:
        predictor = load(path, quantize=session.quantize, threads=None, learn=session.learn, save=session.save)
    except KeyboardInterrupt:
        return CommandResult(f"loading {arg} was interrupted; still using {session.model_name}")
    session.set_predictor(predictor, predictor.lm.name)
    warning = predictor.personal.warning if predictor.personal is not None else None
    return CommandResult(f"model = {session.model_name} ({arg})" + (f"\nwarning: {warning}" if warning else ""))


def _cmd_learn(session: Session, arg: str) -> CommandResult:
    personal = session.predictor.personal
    if personal is None:
        return CommandResult("learning is off for this session (--no-learn)")
    if arg in ("on", "off"):
        personal.enabled = arg == "on"
    elif arg:
        return CommandResult("usage: :learn on|off")
    # never waits for the learner (a pasted 200 KB line took it 95 s): what is still queued is said instead
    said = describe(personal, "--no-history" if not session.save else session.unsaved_why, wait=False)
    if session.line_mode and session.mode == "type" and personal.enabled:
        said += "\nin line mode a line is a question: nothing is learned from it (a chat message is, in :mode chat)"
    return CommandResult(said)


def _cmd_forget(session: Session, arg: str) -> CommandResult:
    personal = session.predictor.personal
    if personal is None:
        return CommandResult("learning is off in this session (--no-learn), so it learned nothing; what other sessions"
                             " saved is left as it is (`autocomplete forget` erases it)")
    try:
        personal.forget()
    except CheckpointError:
        if personal.held_by is None:
            raise
        return CommandResult(f"another autocomplete session or program{personal.held_by} is learning into"
                             f" {personal.path}: use :forget in that one (or quit it, then :forget here)")
    return CommandResult("forgot everything learned from you; the model is as shipped")


def _cmd_help(session: Session, arg: str) -> CommandResult:
    return CommandResult(LINE_MODE_HELP if session.line_mode else HELP)


def _cmd_quit(session: Session, arg: str) -> CommandResult:
    return CommandResult(quit=True)


_COMMANDS: dict[str, Callable[[Session, str], CommandResult]] = {
    "temp": _cmd_temp,
    "temperature": _cmd_temp,
    "topk": _cmd_topk,
    "len": _cmd_len,
    "k": _cmd_k,
    "mode": _cmd_mode,
    "style": _cmd_style,
    "reset": _cmd_reset,
    "model": _cmd_model,
    "learn": _cmd_learn,
    "forget": _cmd_forget,
    "help": _cmd_help,
    "quit": _cmd_quit,
    "q": _cmd_quit,
    "exit": _cmd_quit,
}
_NO_ARGUMENT = frozenset({_cmd_reset, _cmd_forget, _cmd_help, _cmd_quit})


def _print(text: str) -> None:
    sys.stdout.write(printable(text))  # replies, names and messages come from a model file: never obey its escapes
    sys.stdout.flush()


def _tell(text: str) -> None:
    """A line for the person at the terminal, not for the program reading the output (a warning, line mode's
    greeting): on standard error, so that ``echo hi | autocomplete --mode chat > reply.txt`` gets the reply alone.
    Lost where standard error is closed or full: a message that cannot be said must not end the session."""
    if sys.stderr is None:
        return
    try:
        sys.stderr.write(printable(text))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _FittingPrompt(PromptSession[str]):
    """A prompt whose room kept free for the candidate menu fits the window: prompt_toolkit reserves that room under
    the line whatever the window's height, and a window of 6 rows or fewer showed nothing but "Window too small..."
    (a 6-row split is ordinary). The menu gets the rows left by the line and the toolbars; below that it has none."""

    @property
    def reserve_space_for_menu(self) -> int:
        taken = 3 if is_searching() else 2  # the line and the toolbar; the search line while Ctrl-R is open
        return max(0, min(self._menu_rows, self.app.output.get_size().rows - taken))

    @reserve_space_for_menu.setter
    def reserve_space_for_menu(self, rows: int) -> None:
        self._menu_rows = rows


def build_prompt(
    session: Session,
    history: History,
    input: Input | None = None,
    output: Output | None = None,
) -> PromptSession[str]:
    """The full-screen prompt_toolkit front end of ``session``."""
    repl_keys = KeyBindings()

    @repl_keys.add("enter", filter=is_searching)
    def _recall(event: KeyPressEvent) -> None:
        """Enter in Ctrl-R takes the line found, with the cursor at its end: where it goes on, with its grey text."""
        search.accept_search()
        buffer = prompt.default_buffer
        buffer.cursor_position = len(buffer.text)
        session.suggest.refresh(buffer)

    def message() -> FormattedText:
        return FormattedText([("class:prompt", "you › " if session.mode == "chat" else "› ")])

    def toolbar() -> FormattedText:
        buffer = prompt.default_buffer  # not the search field while Ctrl-R is open
        if session.suggest.sampling(buffer):
            return FormattedText(
                [("class:bottom-toolbar.key", f" {session.model_name} "),
                 ("class:bottom-toolbar.sample", f"│ sampled at temp {session.settings.temperature:.2f}: "
                  "Right accepts, Alt-F one word, Esc dismisses, Ctrl-T again")]
            )
        return session.toolbar(session.suggest.alternatives(buffer, update=True), session.suggest.line_end(buffer))

    prompt: PromptSession[str] = _FittingPrompt(
        message,
        history=history,
        completer=session.completer,
        auto_suggest=session.suggest,
        complete_while_typing=True,
        key_bindings=merge_key_bindings([key_bindings(session.suggest), repl_keys]),
        bottom_toolbar=toolbar,
        style=session_style(lambda: prompt.app.color_depth),
        input=input,
        output=output,
        reserve_space_for_menu=6,
        enable_history_search=False,
        enable_suspend=True,  # Ctrl-Z stops the session like any terminal program (where the platform can)
    )
    prompt.default_buffer.on_text_changed += _drop_controls
    # Esc (dismissing a sample) waited a second: Alt keys are Esc-prefixed, and prompt_toolkit waits 1 s for a key
    # after a lone Esc and 0.5 s for the rest of an escape sequence. A terminal sends Alt-F or an arrow key in one
    # piece, so a tenth of a second is plenty for both (vim's ttimeoutlen is 100 ms too).
    prompt.app.ttimeoutlen, prompt.app.timeoutlen = 0.1, 0.2
    return prompt


def _drop_controls(buffer: Buffer) -> None:
    """Control characters typed (Ctrl-V and a key; Ctrl-Z where nothing suspends) or pasted into the line are
    dropped as they come in: never shown, kept in the history or learned (a ``^Z`` taught the model ``fg``)."""
    text = buffer.text
    kept = without_controls(text)
    if kept != text:
        buffer.document = Document(kept, len(without_controls(text[: buffer.cursor_position])))


@contextlib.contextmanager
def no_echo(stream: TextIO) -> Iterator[None]:
    """The terminal does not echo keys typed between two prompts (while a line is handled, a reply streamed, the
    next prompt started): echoed there, they would land where the next prompt draws itself (``I I would like``).
    They stay in the input queue, as typed, and the next prompt reads them: the terminal's own line editing is off
    too, or it would take a Ctrl-D typed there as an end of file and drop it (Ctrl-C then Ctrl-D, typed quickly,
    did not quit), and Backspace or Ctrl-U would edit text the prompt never sees. Signals keep working (Ctrl-C stops
    a reply)."""
    try:
        import termios  # POSIX only
    except ImportError:
        yield
        return
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (AttributeError, OSError, ValueError, termios.error):  # not a terminal (a pipe, a test)
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


class HeldWhilePrompting:
    """Says warnings (``say``) at once, except those that come while a prompt is drawn (the history's file could not
    be written when Enter stored the line: written then, the warning landed inside the prompt's line): those are
    held until :meth:`release`, which the session calls once the prompt has returned."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._held: list[str] = []

    def __call__(self, message: str) -> None:
        app = get_app_or_none()
        if app is not None and app.is_running:
            self._held.append(message)
        else:
            self._say(message)

    def release(self) -> None:
        held, self._held = self._held, []
        for message in held:
            self._say(message)


def interactive(
    session: Session, prompt: PromptSession[str], write: Callable[[str], None] = _print,
    after_prompt: Callable[[], None] = lambda: None,
) -> int:
    """Read lines with the full-screen prompt until :quit or Ctrl-D; ``after_prompt`` runs each time the prompt has
    returned (to say what was held while it was drawn, :class:`HeldWhilePrompting`)."""
    with no_echo(sys.stdin):
        return _read_lines(session, prompt, write, after_prompt)


def _history_before_typeahead(prompt: PromptSession[str]) -> None:
    """Keys typed ahead of this prompt (read together with the previous line's Enter) wait for its history.

    prompt_toolkit feeds such keys before it first draws the prompt, and drawing is where a buffer starts loading its
    history: an Up or a Ctrl-R typed right after an Enter found no earlier line. Here (a ``pre_run`` hook, run before
    that feeding) the loading starts first and the keys are fed by a task created after it. Tasks take their first
    step in creation order, and the histories of :func:`history_for` load in their first step (they never wait)."""
    keys = get_typeahead(prompt.input)
    if not keys:
        return
    app = prompt.app
    prompt.default_buffer.load_history_if_not_yet_loaded()

    async def feed() -> None:
        app.key_processor.feed_multiple(keys)
        app.key_processor.process_keys()

    app.create_background_task(feed())


def _follow_learning(session: Session, prompt: PromptSession[str]) -> None:
    """What is learned shows as soon as it is learned (:func:`follow_learning`, for this prompt): the toolbar, an
    open menu that has no selection and the grey text always show the same numbers (before, the menu could keep its
    numbers from before the learning and the toolbar show the ones after it)."""

    async def follow() -> None:
        stop = follow_learning(prompt.app, prompt.default_buffer, session.suggest)
        try:
            await asyncio.Future()  # until the prompt ends and its tasks are cancelled
        finally:
            stop()

    prompt.app.create_background_task(follow())


def _before_prompt(session: Session, prompt: PromptSession[str]) -> None:
    _history_before_typeahead(prompt)
    _follow_learning(session, prompt)


def _read_lines(
    session: Session, prompt: PromptSession[str], write: Callable[[str], None], after_prompt: Callable[[], None]
) -> int:
    while True:
        try:
            line = prompt.prompt(pre_run=lambda: _before_prompt(session, prompt))
        except KeyboardInterrupt:
            continue  # Ctrl-C clears the line
        except EOFError:
            return 0
        finally:
            after_prompt()
        if session.mode == "chat" and not line.lstrip().startswith(":"):
            write("bot › ")
        try:
            result = session.handle(line, write)
        except KeyboardInterrupt:  # Ctrl-C while a long line is taken in: the session goes on, as at the prompt
            result = CommandResult()
        if session.mode == "chat" and not line.lstrip().startswith(":"):
            write("\n")
        if result.message:
            write(result.message + "\n")
        if result.quit:
            return 0


def _typed_lines(stream: TextIO, write: Callable[[str], None], limit: int = 1 << 20) -> Iterator[str]:
    """The lines of ``stream``; at a terminal, Ctrl-C drops the line being typed (as the session's prompt does)
    instead of ending line mode.

    Each line is read with a bound of ``limit`` characters, so that ``< /dev/zero`` or a stream without line breaks
    cannot fill the memory: a line longer than that, or one with a NUL byte (binary data, which every other command
    refuses too), raises :class:`ConfigError`."""
    number = 0
    while True:
        try:
            raw = stream.readline(limit + 1)
        except KeyboardInterrupt:
            if not stream.isatty():
                raise
            write("\n")
            continue
        if not raw:
            return
        number += 1
        if "\x00" in raw:
            raise ConfigError(f"standard input looks like binary data, not text (a NUL byte in line {number:,})")
        if len(raw) > limit and not raw.endswith("\n"):
            raise ConfigError(
                f"line {number:,} of standard input is longer than {limit:,} characters, the most line mode takes"
            )
        yield raw.rstrip("\n")


# what a key sends that is no text: CSI sequences (arrows: ESC [ D), SS3 ones (ESC O P), Alt-key pairs, one-byte CSI
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?|\x9b[0-?]*[ -/]*[@-~]", re.DOTALL)


def typed_text(line: str) -> str:
    """A line typed at a terminal without the escape sequences and control characters keys put into it (Left
    typed ``^[[D`` where nothing edits the line): none of them is text to predict from or learn."""
    return without_controls(_ESCAPE.sub("", line))


# Keys that GNU readline, where nothing binds them, leaves (a part of) in the line: F5 left ``~``, PageUp ``5~``,
# Shift-Left ``D``. Function keys, Insert, PageUp and PageDown, and Delete, the arrows, Home, End and F1-F4 with Shift,
# Alt or Ctrl held (xterm's codes, which most terminals send), in inputrc notation.
_KEYS_WITHOUT_TEXT = (
    [f"\\e[{n}~" for n in (2, 5, 6, 15, 17, 18, 19, 20, 21, 23, 24)]
    + [f"\\e[{n};{m}~" for n in (2, 3, 5, 6, 15, 17, 18, 19, 20, 21, 23, 24) for m in range(2, 9)]
    + [f"\\e[1;{m}{c}" for c in "ABCDHFPQRS" for m in range(2, 9)]
)


def _bind_keys_to_nothing(readline: Any) -> None:
    """Make the keys of :data:`_KEYS_WITHOUT_TEXT` do nothing, unless the user's inputrc (or the system's) binds
    them: it is read again after, so that its bindings (Ctrl-Left to backward-word) win. Insert does nothing either
    way: Debian binds it to quoted-insert, which made the next Enter a ``^M`` in the line, and a control character
    is dropped from the line anyway. GNU readline only: libedit reads other bindings."""
    if getattr(readline, "backend", "editline" if "libedit" in (readline.__doc__ or "") else "readline") != "readline":
        return
    for keys in _KEYS_WITHOUT_TEXT:
        readline.parse_and_bind(f'"{keys}": ""')  # an empty macro: the key is read whole and inserts nothing
    try:
        readline.read_init_file()
    except OSError:  # no inputrc at all
        pass
    readline.parse_and_bind('"\\e[2~": ""')


def _edited_lines(write: Callable[[str], None], stream: TextIO | None = None, limit: int = 1 << 20) -> Iterator[str]:
    """Lines typed at a terminal, read with :func:`input`: with the standard library's readline (where the platform
    has it) Left and Right move, Up recalls a line, as in a shell; whatever keys still put into a line is dropped
    (:func:`typed_text`). Ctrl-C drops the line being typed; a line longer than ``limit`` is refused as
    :func:`_typed_lines` refuses it. ``stream``: standard input as it is to be decoded (:func:`_utf8`), which
    :func:`input` is given as ``sys.stdin`` (it decodes what it reads with ``sys.stdin``'s encoding)."""
    try:
        import readline  # importing it is what gives input() its line editing and history
    except ImportError:
        pass
    else:
        readline.set_completer(lambda text, state: None)  # Tab would complete file names
        _bind_keys_to_nothing(readline)
    number = 0
    while True:
        given, sys.stdin = sys.stdin, stream or sys.stdin
        try:
            line = input()
        except KeyboardInterrupt:
            write("\n")
            continue
        except EOFError:
            return
        finally:
            sys.stdin = given
        number += 1
        if len(line) > limit:
            raise ConfigError(f"line {number:,} is longer than {limit:,} characters, the most line mode takes")
        yield typed_text(line)


def plain(session: Session, stream: TextIO, write: Callable[[str], None] = _print) -> int:
    """Line mode for pipes and dumb terminals: predictions (type) or replies (chat) after each line.

    In type mode each line is a question (its next words, or the completions of its last word) and conditions the
    next ones, but nothing is learned from it: ``how are yo`` asked ten times must not teach the model the word
    ``yo``. A chat message is the user's own text and is learned as in the session. At a terminal, lines are read
    with line editing (:func:`_edited_lines`); from a pipe, as they come (:func:`_typed_lines`)."""
    session.line_mode = True
    # input() needs standard error (it raises "lost sys.stderr" without one): started with it closed, lines are read
    # as from a pipe
    edited = stream.isatty() and sys.stderr is not None
    lines = _edited_lines(write, stream) if edited else _typed_lines(stream, write)
    try:
        for line in lines:
            if session.mode == "chat" and not line.lstrip().startswith(":"):
                session.predictor.commit(line + "\n")
                session.reply(write)
                write("\n")
                continue
            if line.lstrip().startswith(":"):
                result = session.command(line.strip())
                if result.message:
                    write(result.message + "\n")
                if result.quit:
                    return 0
                continue
            words = session.predictor.complete_or_next(line, session.settings.suggestions)
            write("  ".join(f"{printable_word(w.word)} {percent(w.probability)}" for w in words) + "\n")
            session.predictor.commit(line + "\n", learn=False)
        return 0
    finally:
        session.close()


def _utf8(stream: TextIO) -> TextIO:
    """``stream`` read as UTF-8 (undecodable bytes replaced), whatever the locale's encoding: piped text is UTF-8
    far more often than the locale says, and an ASCII locale must not end line mode on the first accented letter."""
    raw = getattr(stream, "buffer", None)
    if raw is None or (stream.encoding or "").lower().replace("-", "").replace("_", "") == "utf8":
        return stream
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", line_buffering=True)


def why_not_full_screen() -> str | None:
    """Why the full-screen prompt cannot run here (said to a person typing at a terminal), or None if it can."""
    if sys.stdin is None or not sys.stdin.isatty():
        return "standard input is not a terminal"
    if sys.stdout is None or not sys.stdout.isatty():
        return "standard output is not a terminal"
    term = os.environ.get("TERM", "")
    if term in ("dumb", "unknown"):
        return f"TERM={term}"
    return None


def can_run_full_screen() -> bool:
    return why_not_full_screen() is None


def run_session(
    model: Path | None = None,
    mode: str = "type",
    temperature: float = 0.8,
    plain_mode: bool = False,
    quantize: bool = True,
    learn: bool = True,
    on_ready: Callable[[], None] = lambda: None,
    threads: int | None = 1,
    save_history: bool = True,
    style: str | None = None,
) -> int:
    """Entry point of ``autocomplete`` without a subcommand; ``on_ready`` runs once the model is loaded;
    ``save_history``: keep the lines typed in ``history`` and what was learned from them in the user data folder
    (False: nothing of the session is written there; both are kept in memory only); ``style`` overrides the mode's
    style (see :mod:`autocomplete.styles`); ``learn``: the user's personal state (False: the model as shipped)."""
    if sys.stdin is None:  # started with standard input closed (`<&-`): no line will ever come
        raise ConfigError("standard input is closed: there is nothing to read")
    line_mode = plain_mode or not can_run_full_screen()
    # line mode in type mode answers questions and learns nothing: it does not hold the state a session or `learn`
    # may be saving into (`echo "how are" | autocomplete` while a session runs says nothing of it)
    saving = save_history and (mode == "chat" or not line_mode)
    predictor = load(model, quantize=quantize, threads=threads, learn=learn, save=saving)
    settings = SamplingSettings(SamplingConfig(temperature=temperature))
    if style is not None:
        pick_style(style, mode, predictor.styles)  # an unknown style is an error before the session starts
    session = Session(
        predictor, predictor.lm.name, mode, settings, quantize=quantize, style=style, learn=learn, save=save_history
    )
    if save_history and not saving:
        session.unsaved_why = "line mode started in type mode"
    on_ready()
    warn = lambda message: _tell(f"autocomplete: warning: {message}\n")  # noqa: E731
    if predictor.personal is not None and predictor.personal.warning:
        warn(predictor.personal.warning)
    if line_mode:
        if sys.stdin.isatty():  # someone types: say what this is (a pipe's reader wants the predictions only)
            why = None if plain_mode else why_not_full_screen()
            if why:
                _tell(f"{why}: line mode (no suggestions inline)\n")
            _tell(f"autocomplete · {session.model_name} · {mode} mode · line mode · :help for commands, Ctrl-D to "
                  "quit\n")
        return plain(session, _utf8(sys.stdin))
    held = HeldWhilePrompting(warn)
    history = history_for(data_dir() / "history" if save_history else None, held)
    _print(f"autocomplete · {session.model_name} · {mode} mode · :help for keys and commands, Ctrl-D to quit\n")
    try:
        return interactive(session, build_prompt(session, history), after_prompt=held.release)
    finally:
        session.close()
