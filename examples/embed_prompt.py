"""A prompt_toolkit program of your own with autocomplete's suggestions: grey ghost text, a menu with probabilities,
and the keys (Right accepts, Alt-F one word, Alt-N/Alt-P alternatives, Ctrl-T samples, Tab walks the menu).

    python examples/embed_prompt.py [--model PATH]

Ctrl-C clears the line and Ctrl-D (or /quit) leaves, as in a shell: no traceback either way.
"""

import argparse
import sys

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggest, Suggestion
from prompt_toolkit.completion import WordCompleter, merge_completers

import autocomplete
from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, follow_learning, key_bindings
from autocomplete.errors import AutocompleteError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="model file (default: the shipped model)")
args = parser.parse_args()

try:
    predictor = autocomplete.load(args.model)  # one predictor, shared by everything below
except KeyboardInterrupt:  # Ctrl-C while the model loads
    sys.exit(130)
except AutocompleteError as e:  # a missing or broken model file: one line, not a traceback
    sys.exit(f"embed_prompt: {e}")


COMMANDS = ["/send", "/draft", "/quit"]  # your program's own commands


def prose(document):  # what the model reads; None on a line of your own commands: they are left to your completer
    return None if document.text.startswith("/") else document.text_before_cursor


class CommandSuggest(AutoSuggest):  # the grey text on a command line: the command it starts, for Right to accept
    def get_suggestion(self, buffer, document):
        found = [c for c in COMMANDS if c.startswith(document.text) and c != document.text]
        return Suggestion(found[0][len(document.text):]) if len(found) == 1 else None


suggest = LanguageModelAutoSuggest(predictor, context=prose, fallback=CommandSuggest())
commands = WordCompleter(COMMANDS, sentence=True)  # your own completions still work
session = PromptSession(
    "note> ",
    completer=merge_completers([commands, LanguageModelCompleter(predictor, context=prose, suggest=suggest)]),
    auto_suggest=suggest,
    key_bindings=key_bindings(suggest),
    complete_while_typing=True,
)
# a line learned in the background shows in the grey text as soon as it is learned
follow_learning(session.app, session.default_buffer, suggest)
while True:
    try:
        line = session.prompt()
    except KeyboardInterrupt:  # Ctrl-C: drop the line, ask again
        continue
    except EOFError:  # Ctrl-D on an empty line
        break
    command = line.strip()  # "/quit " too: a word accepted from the grey text comes with its space
    if command == "/quit":
        break
    if command.startswith("/"):  # your program's own commands: run them, never learn them as text
        print(f"(your program would {command[1:]} the note here)" if command in COMMANDS else f"no command {command}")
        continue
    predictor.commit(line + "\n")  # what was written conditions the next suggestions, and is learned
    print(f"saved: {line}")
