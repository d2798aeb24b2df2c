#!/bin/sh
# The fidelity tables of bench/RESULTS.md (2026-12-05, "a 17-candidate range search"): this directory's
# eval-model runs, the 17-candidate search (m*.json) and main e5c6f64's 64-candidate one (before64_m*.json).
here=$(dirname "$0")
s="$here/../../../tools/eval_summary.py"
for run in "" before64_; do
  echo "== ${run:-17-candidate search}"
  python3 "$s" "$here"/${run}m1_0.json "$here"/${run}m1_12288.json "$here"/${run}m1_24576.json "$here"/${run}m1_36864.json
  echo
  python3 "$s" "$here"/${run}m2_0.json "$here"/${run}m2_12288.json
  echo
done
