"""A full-screen editor (prompt_toolkit's TextArea) with autocomplete's grey text, word menu and keys, and a toolbar
with the candidates for the word at the cursor. Ctrl-Q leaves and prints what was written.

    python examples/embed_textarea.py [--model PATH]
"""

import argparse
import sys

from prompt_toolkit.application import Application
from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from prompt_toolkit.layout import Float, FloatContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.widgets import TextArea

import autocomplete
from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, key_bindings
from autocomplete.errors import AutocompleteError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="model file (default: the shipped model)")
args = parser.parse_args()

try:
    predictor = autocomplete.load(args.model).session()  # a context of its own for this editor
except KeyboardInterrupt:  # Ctrl-C while the model loads
    sys.exit(130)
except AutocompleteError as e:  # a missing or broken model file: one line, not a traceback
    sys.exit(f"embed_textarea: {e}")
suggest = LanguageModelAutoSuggest(predictor)
editor = TextArea(
    completer=LanguageModelCompleter(predictor, suggest.settings, suggest=suggest),
    auto_suggest=suggest,  # TextArea draws the grey text at the end of the text
    complete_while_typing=True,
    scrollbar=True,
)


def toolbar() -> str:
    words = suggest.alternatives(editor.buffer, update=True)  # the word at the cursor, computed off the UI thread
    shown = "  ".join(f"{w.word} {autocomplete.percent(w.probability)}" for w in words)
    return f" Ctrl-Q quits │ {shown or '…'}"


keys = KeyBindings()


@keys.add("c-q")
def _quit(event):
    event.app.exit(result=editor.text)


body = FloatContainer(
    HSplit([editor, Window(FormattedTextControl(toolbar), height=1, style="reverse")]),
    floats=[Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=8))],  # the word menu
)
app = Application(
    layout=Layout(body, focused_element=editor),
    key_bindings=merge_key_bindings([key_bindings(suggest), keys]),
    full_screen=True,
)
print(app.run())
