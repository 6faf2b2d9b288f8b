#!/usr/bin/env bash
# Reproduces models/default.pt: run from the repository root with ../shared/data next to it.
# Two whole novels are held out of training (they are the model card's "held-out book text"):
#   man_who_was_thursday_1695.txt, ethan_frome_4517.txt
set -euo pipefail
data=${DATA:-../shared/data}
out=${1:-models/default.pt}
books=()
for f in "$data"/books/*_[0-9]*.txt; do
  case "$(basename "$f")" in
    man_who_was_thursday_1695.txt|ethan_frome_4517.txt) ;;
    *) books+=("$f") ;;
  esac
done
exec autocomplete train "${books[@]}" "$data/dialogues/sgd_train.txt" "$data/dialogues/tm4_coffee_dialogs.txt" \
  -o "$out" --name default --vocab-size 20000 --min-count 2 \
  --embedding-dim 256 --hidden-dim 512 --layers 2 --dropout 0.2 --adaptive 2000,8000 --no-tie \
  --epochs 3 --batch-size 32 --bptt 35 --optimizer adamw --lr 2e-3 --schedule cosine --seed 1 \
  --valid-fraction 0.02 --half --save-every 300 "${@:2}"
