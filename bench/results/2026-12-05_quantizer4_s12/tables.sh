#!/bin/sh
# bench/RESULTS.md 2026-12-05 "AUTO clips K at 4 bits": 4-bit PATTERN by quantizer over 11 disjoint windows of each model
# (made by: pkv eval-model [--model data/tinyllm2/model.bin --text data/tinyllm2/heldout.txt] --window 128 --backend cpu
#  --threads 1 --no-progress --offset B --json mM_B.json --modes fp16,pattern4,pattern4:qmse,pattern4:qmse-k,pattern4:qminmax,direct4
#  for B in 0 4096 ... 40960; pattern4 was MSE_V then, the default before this change)
here=$(dirname "$0")
s="$here/../../../tools/eval_summary.py"
for m in 1 2; do
  python3 "$s" $(for b in 0 4096 8192 12288 16384 20480 24576 28672 32768 36864 40960; do echo "$here/m${m}_$b.json"; done)
  echo
done
