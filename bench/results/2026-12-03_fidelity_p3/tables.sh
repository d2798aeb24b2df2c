#!/bin/bash
# The tables of bench/RESULTS.md "phase 3" from the runs' JSON in this folder (run from the folder).
set -e
S=../../../tools/eval_summary.py
for w in 0 12288 24576 36864; do
  [ -f m1_v_$w.json ] || continue
  python3 merge.py m1_v_$w.json $(ls m1_x_$w.json m1_b_$w.json m1_kv_$w.json m1_v34_$w.json m1_g32_$w.json 2>/dev/null) > m1_merged_$w.json
done
for w in 0 12288; do python3 merge.py m2_v_$w.json $(ls m2_x_$w.json m2_kv_$w.json m2_v34_$w.json 2>/dev/null) > m2_merged_$w.json; done
python3 $S m1_merged_*.json
echo
python3 $S m2_merged_*.json
