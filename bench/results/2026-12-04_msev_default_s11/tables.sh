#!/bin/sh
# The fidelity tables of bench/RESULTS.md (2026-12-04, "MSE_V the default"): this directory's eval-model runs.
here=$(dirname "$0")
python3 "$here/../../../tools/eval_summary.py" "$here"/m1_0.json "$here"/m1_12288.json "$here"/m1_24576.json "$here"/m1_36864.json
echo
python3 "$here/../../../tools/eval_summary.py" "$here"/m2_0.json "$here"/m2_12288.json
