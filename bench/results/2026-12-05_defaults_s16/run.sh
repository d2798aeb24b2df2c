#!/bin/bash
# Session 16: the new defaults (PATTERN G 64, window 128, banks frozen at M) over the 11 windows per model of
# session 15, for M = 16, 24, 32. usage: run.sh  (from anywhere; writes next to itself)
cd "$(dirname "$0")/../../.."
D=bench/results/2026-12-05_defaults_s16
for m in 1 2; do
  extra=""; [ $m = 2 ] && extra="--model data/tinyllm2/model.bin --text data/tinyllm2/heldout.txt"
  for M in 16 24 32; do
    for off in 0 4096 8192 12288 16384 20480 24576 28672 32768 36864 40960; do
      ./build/pkv eval-model $extra --backend cpu --threads 2 --no-progress --offset $off --patterns $M \
        --modes fp16,pattern2,pattern3,pattern4 --json $D/m${m}_M${M}_$off.json > $D/m${m}_M${M}_$off.log 2>&1
    done
  done
done
