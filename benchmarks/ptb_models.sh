#!/usr/bin/env bash
# The PTB-trained models behind BENCHMARKS.md's quality table (never shipped: PTB's licence forbids it).
# Run from the repository root with ../shared/data next to it; each writes runs/ptb/NAME.pt.
set -euo pipefail
ptb=${PTB:-../shared/data/ptb}
mkdir -p runs/ptb
common=(--valid "$ptb/valid.txt" --tokenizer whitespace --breaks line --vocab-size 10000 --min-count 1 --quiet)

case "${1:-all}" in
  small|all)  # the classic example's size: 2×200, tied
    autocomplete train "$ptb/train.txt" "${common[@]}" -o runs/ptb/small.pt --name ptb-small \
      --embedding-dim 200 --hidden-dim 200 --layers 2 --dropout 0.25 --input-dropout 0.1 --weight-dropout 0.1 \
      --epochs 12 --batch-size 32 --bptt 35 --optimizer adamw --lr 3e-3 --warmup 200 --seed 1 "${@:2}" ;;&
  budget|all)  # a 10-minute time budget on this machine's CPU: tied adaptive softmax, SGD annealed over the budget
    autocomplete train "$ptb/train.txt" "${common[@]}" -o runs/ptb/budget.pt --name ptb-10min \
      --embedding-dim 256 --hidden-dim 256 --layers 2 --dropout 0.25 --no-locked-dropout --adaptive 2000,5000 \
      --epochs 50 --max-time 600 --batch-size 20 --bptt 35 --optimizer sgd --lr 20 --schedule cosine --warmup 0 \
      --seed 1 "${@:2}" ;;
esac
