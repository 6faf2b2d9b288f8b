#!/usr/bin/env bash
# Reproduces models/default.pt (models/README.md): novels, dialogues and modern technical English, one style token
# per domain, interleaved. Run from the repository root with ../shared/data next to it (or DATA=...):
#
#   models/train-default.sh RUN_FOLDER/model.pt [extra autocomplete-train flags, e.g. --resume]
#   cp RUN_FOLDER/model.pt models/default.pt
#
# The training mix and the held-out texts are laid out first in RUN_FOLDER/data by models/prepare-modern-data.py
# (deterministic; it says which lines are held out); the token cache goes to RUN_FOLDER/token-cache. Keep
# RUN_FOLDER out of git. The run saves its resume state every 300 s; continue an interrupted run with --resume.
set -euo pipefail
data=${DATA:-../shared/data}
out=${1:?usage: models/train-default.sh RUN_FOLDER/model.pt [extra train flags]}
run=$(dirname "$out")
mix=$run/data
if [ ! -f "$mix/heldout/tldr.txt" ]; then
  python3 "$(dirname "$0")/prepare-modern-data.py" "$data" "$mix"
fi
exec autocomplete train --interleave --breaks line \
  "$mix/train/prose=prose" "$mix/train/dialogue=dialogue" "$mix/train/tech=tech" \
  -o "$out" --name default --vocab-size 40000 --min-count 2 --cache-dir "$run/token-cache" \
  --embedding-dim 256 --hidden-dim 768 --layers 2 --dropout 0.2 --adaptive 2000,10000 \
  --epochs 3 --batch-size 32 --bptt 35 --optimizer adamw --lr 2e-3 --schedule cosine --warmup 100 --seed 1 \
  --valid-fraction 0.02 --int8 --save-every 300 --threads 2 "${@:2}"
