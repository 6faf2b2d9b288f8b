"""A prompt_toolkit program of your own with autocomplete's suggestions: grey ghost text, a menu with probabilities,
and the keys (Right accepts, Alt-F one word, Alt-N/Alt-P alternatives, Ctrl-T samples, Tab walks the menu).

    python examples/embed_prompt.py [--model PATH]
"""

import argparse

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter, merge_completers

import autocomplete
from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, key_bindings

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="model file (default: the shipped model)")
args = parser.parse_args()

predictor = autocomplete.load(args.model)  # one predictor, shared by everything below
suggest = LanguageModelAutoSuggest(predictor)
commands = WordCompleter(["/send", "/draft", "/quit"], sentence=True)  # your own completions still work
session = PromptSession(
    "note> ",
    completer=merge_completers([commands, LanguageModelCompleter(predictor)]),
    auto_suggest=suggest,
    key_bindings=key_bindings(suggest),
    complete_while_typing=True,
)
while (line := session.prompt()) != "/quit":
    predictor.commit(line + "\n")  # what was written conditions the next suggestions
    print(f"saved: {line}")
