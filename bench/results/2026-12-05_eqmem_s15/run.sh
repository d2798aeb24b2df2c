#!/bin/bash
# usage: run.sh tag "modes" [extra eval-model args]
tag=$1; modes=$2; shift 2
cd "$(dirname "$0")/../../.."
for off in 0 4096 8192 12288 16384 20480 24576 28672 32768 36864 40960; do
  ./build/pkv eval-model --window 128 --backend cpu --threads 2 --no-progress --offset $off --json bench/results/2026-12-05_eqmem_s15/${tag}_$off.json --modes $modes "$@" > bench/results/2026-12-05_eqmem_s15/${tag}_$off.log 2>&1
done
