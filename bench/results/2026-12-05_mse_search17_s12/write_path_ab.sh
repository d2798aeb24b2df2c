#!/bin/sh
# Write-path A/B of bench/RESULTS.md 2026-12-05: best of N interleaved one-layer runs (PATTERN 2-bit,
# 1024-token prompt, 8 kv heads x d 128, CPU backend, T threads) of two pkv binaries, min-max and auto.
#   OLD=/path/to/pkv_before NEW=build/pkv bench/results/2026-12-05_mse_search17_s12/write_path_ab.sh 7 1
N=${1:-7}; T=${2:-1}
for i in $(seq "$N"); do for b in old new; do for q in minmax auto; do
  if [ $b = old ]; then bin=$OLD; else bin=$NEW; fi
  "$bin" bench --backend cpu --threads "$T" --synthetic --no-fidelity --speed-contexts none --no-throughput \
    --modes pattern --bits 2 --write-path --wp-layers 1 --wp-prompt 1024 --quantizer $q 2>&1 |
    grep -E '^  pattern +2 +[0-9.]+ +[0-9.]+ +[0-9.e+]+ ' | awk -v k="$b $q" '{print k, $3, $6}'
done; done; done | awk '{k=$1" "$2; if(!(k in p)||$3<p[k])p[k]=$3; if(!(k in f)||$4<f[k])f[k]=$4; n[k]++}
  END{for(k in p) printf "%s: prefill %.1f ms, flush %.3f ms/win (best of %d)\n", k, p[k], f[k], n[k]}' | sort
