#!/bin/sh
# bench/RESULTS.md 2026-12-05 "AUTO clips K too": PATTERN by quantizer at 2, 3 and 4 bits over 11 disjoint windows of
# each model (made by: pkv eval-model [--model data/tinyllm2/model.bin --text data/tinyllm2/heldout.txt] --window 128
#  --backend cpu --threads 1 --no-progress --offset B --json bW_mM_B.json --modes ... for B in 0 4096 ... 40960;
#  plain patternW items were MSE_V then, the default before this change)
here=$(dirname "$0")
s="$here/../../../tools/eval_summary.py"
for w in 2 3 4; do for m in 1 2; do
  python3 "$s" $(for b in 0 4096 8192 12288 16384 20480 24576 28672 32768 36864 40960; do echo "$here/b${w}_m${m}_$b.json"; done)
  echo
done; done
# equal memory: DIRECT with smaller groups (modes fp16,direct2:g32,direct2:g32:qmse,direct2:g64:qmse; files eqmem_mM_B)
for m in 1 2; do
  python3 "$s" $(for b in 0 4096 8192 12288 16384 20480 24576 28672 32768 36864 40960; do echo "$here/eqmem_m${m}_$b.json"; done)
  echo
done
