#!/usr/bin/env bash
# The model card's per-domain numbers (models/README.md): run from the repository root, after
# models/prepare-modern-data.py has laid out RUN_FOLDER/data (models/train-default.sh does it):
#
#   python3 models/prepare-modern-data.py ../shared/data RUN_FOLDER/data
#   models/evaluate-default.sh models/default.pt RUN_FOLDER/data [extra autocomplete-eval flags, e.g. --json]
#
# Each held-out text (~20,000 words; which lines: models/prepare-modern-data.py) is read in its domain's style
# (a model without styles ignores it and says so): perplexity and top-1/3/5 accuracy over the whole text, keystroke
# savings with 6 suggestions over its first 2,000 tokens; float weights (--no-quantize).
set -euo pipefail
model=${1:?usage: models/evaluate-default.sh MODEL RUN_FOLDER/data [extra eval flags]}
mix=${2:?usage: models/evaluate-default.sh MODEL RUN_FOLDER/data [extra eval flags]}
for pair in novels:prose dialogues:dialogue tech:tech tldr:tech; do
  name=${pair%%:*}
  echo "== held-out $name ($mix/heldout/$name.txt), style ${pair#*:}"
  autocomplete eval --model "$model" "$mix/heldout/$name.txt" --breaks line -k 6 --ksr-words 2000 --no-quantize \
    --style "${pair#*:}" --quiet "${@:3}" 2>&1
done
