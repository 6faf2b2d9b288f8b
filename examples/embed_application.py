"""The same behaviour in a bare prompt_toolkit Application (no PromptSession): a one-line editor that prints the
text when you press Enter (Ctrl-C leaves without printing it).

    python examples/embed_application.py [--model PATH]
"""

import argparse
import sys

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from prompt_toolkit.layout import BufferControl, HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.processors import AppendAutoSuggestion

import autocomplete
from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, key_bindings
from autocomplete.errors import AutocompleteError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="model file (default: the shipped model)")
args = parser.parse_args()

try:
    predictor = autocomplete.load(args.model)
except KeyboardInterrupt:  # Ctrl-C while the model loads
    sys.exit(130)
except AutocompleteError as e:  # a missing or broken model file: one line, not a traceback
    sys.exit(f"embed_application: {e}")
suggest = LanguageModelAutoSuggest(predictor)
buffer = Buffer(completer=LanguageModelCompleter(predictor), auto_suggest=suggest, multiline=False)
keys = KeyBindings()


@keys.add("enter")
@keys.add("c-d")
def _done(event):
    event.app.exit(result=buffer.text)


@keys.add("c-c")
def _cancel(event):
    event.app.exit(result=None)


def toolbar():
    words = suggest.alternatives(buffer, update=True)
    return "  ".join(f"{w.word} {autocomplete.percent(w.probability)}" for w in words) or "…"


app = Application(
    layout=Layout(
        HSplit(
            [
                Window(BufferControl(buffer, input_processors=[AppendAutoSuggestion()]), height=1),
                Window(FormattedTextControl(toolbar), height=1, style="reverse"),
            ]
        )
    ),
    key_bindings=merge_key_bindings([key_bindings(suggest), keys]),
    erase_when_done=True,  # the editor and its grey text go; the text is printed below
)
text = app.run()
if text is not None:
    print(text)
