#!/usr/bin/env bash
# Session 16 run B: issue 11's pkv bench reports with the new library defaults (PATTERN G 64, window 128,
# banks frozen at 24 mined patterns), Vulkan and OpenCL, batch 1 and 8. Carry as runS16A.sh.
B=build-gpu
source bench/h200_env.sh
for be in vulkan opencl; do for b in 1 8; do
  echo "== pkv bench $be batch $b"
  timeout 140 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
    --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1
  echo "rc $?"; grep -E "^cache|^  (pattern|direct|fp16) .*[0-9]x$" $OUT/${be}_b$b.txt
done; done
