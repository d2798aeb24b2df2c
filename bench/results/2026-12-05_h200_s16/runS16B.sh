#!/usr/bin/env bash
# Session 16 run B: issue 11's pkv bench reports with the new library defaults (PATTERN G 64, window 128,
# banks frozen at 24 mined patterns), Vulkan and OpenCL, batch 1 and 8. Carry as runS16A.sh.
B=build-gpu
source bench/h200_env.sh
for be in vulkan opencl; do for b in 8 1; do
  echo "== pkv bench $be batch $b"
  timeout 140 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
    --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1
  echo "rc $?"; grep -E "^cache|^  (pattern|direct|fp16) .*[0-9]x$" $OUT/${be}_b$b.txt
done; done
run() { echo "== $1 $2 $3 $4"; timeout 100 $B/pkv-attn-sweep --backend vulkan --batch $1 --context $2 --mode $3 --bits $4 --data bench --variants "$5" 2>&1 | tail -n +3 | cut -c1-120; }
# FP16 mode (its target is a read-bandwidth one): split attention and workgroup counts
run 8 32768 fp16 16 ";PKV_ATTN_SPLIT=1;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112;PKV_ATTN_SPLIT=1 PKV_ATTN_GROUPS=2112"
# the new default PATTERN cache (G 64, 24 frozen): the two passes apart, and one-pass
run 8 32768 pattern 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_SPLIT=0"
