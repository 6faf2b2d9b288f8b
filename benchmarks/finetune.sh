#!/usr/bin/env bash
# Fine-tuning against the base model and against training from scratch, on a "user's text" the base model never saw:
# the first 50 K words of the Rust book (and of tldr-pages), evaluated on their last 20 K words, which no model
# trains on (early stopping uses the tail of the training part only). BENCHMARKS.md, section "Fine-tuning".
# TEXTS=thursday: a novel the shipped model never saw (today's default was trained on most of the Rust book): the
# rest of *The Man Who Was Thursday* from word 20,000 (~38 K words) as the user's text, its first 20,000 words (the
# learning benchmark's slice) as the test, also replayed with learning while typing (--learn), 6 suggestions.
# Run from the repository root with ../shared/data next to it:  benchmarks/finetune.sh [OUT_DIR]
set -euo pipefail
data=${DATA:-../shared/data}
out=${1:-runs/finetune}
base=${BASE:-models/default.pt}
mkdir -p "$out"
head -n 2058 "$data/modern/rust_book.txt" > "$out/rust_train.txt"   # 50,012 words
tail -n 776 "$data/modern/rust_book.txt" > "$out/rust_test.txt"     # 20,024 words
head -n 8957 "$data/modern/tldr.txt" > "$out/tldr_train.txt"        # 50,046 words
tail -n 3599 "$data/modern/tldr.txt" > "$out/tldr_test.txt"         # 20,009 words
AUTOCOMPLETE_BENCH_DATA="$data" python - "$out" <<'PY'
import sys
from pathlib import Path
from benchmarks.learning import TUNING, Text, slice_text
out = Path(sys.argv[1])
for part, text in (("train", TUNING), ("test", Text("thursday test", TUNING.path, 0, TUNING.start))):
    slice_text(text, out).rename(out / f"thursday_{part}.txt")
PY
for text in ${TEXTS:-rust tldr}; do
  autocomplete train "$out/${text}_train.txt" --from "$base" -o "$out/${text}_finetuned.pt" -q
  autocomplete train "$out/${text}_train.txt" -o "$out/${text}_scratch.pt" -q
  for model in "$base" "$out/${text}_scratch.pt" "$out/${text}_finetuned.pt"; do
    echo "== $model on $out/${text}_test.txt"
    if [ "$text" = thursday ]; then
      autocomplete eval --model "$model" "$out/${text}_test.txt" -k 6 --learn
    else
      autocomplete eval --model "$model" "$out/${text}_test.txt" -k 3 -k 5 --ksr-words 2000
    fi
  done
  # perplexity where all three know the next word (their vocabularies differ: see the module's docstring)
  python -m benchmarks.shared_words "$out/${text}_test.txt" "$base" "$out/${text}_scratch.pt" "$out/${text}_finetuned.pt"
done
