#!/usr/bin/env bash
# The model card's quality numbers: run from the repository root with ../shared/data next to it.
set -euo pipefail
data=${DATA:-../shared/data}
model=${1:-models/default.pt}
echo "== held-out books (not trained on): Ethan Frome, The Man Who Was Thursday"
autocomplete eval --model "$model" "$data/books/ethan_frome_4517.txt" "$data/books/man_who_was_thursday_1695.txt" \
  -k 3 -k 5 --ksr-words 2000 --no-quantize "${@:2}"
echo "== dialogues/sgd_dev.txt (the SGD dev split; training used sgd_train.txt)"
autocomplete eval --model "$model" "$data/dialogues/sgd_dev.txt" -k 3 -k 5 --ksr-words 2000 --no-quantize "${@:2}"
