#!/usr/bin/env bash
# session 17 run B: OpenCL with split attention as its compressed modes' default (run A: 2.2-2.4x at
# 8 x 32K): split against one-pass at batch 1 and for DIRECT, then the pkv bench reports for
# OpenCL at batch 8 and 1, then Vulkan split's workgroup counts.
B=build-gpu
source bench/h200_env.sh
sw() { echo "== $1 $2 $3 $4 $5"; timeout ${7:-45} $B/pkv-attn-sweep --backend $1 --batch $2 --context $3 --mode $4 --bits $5 --data bench --variants "$6" 2>&1 | grep -vE "^patternkv warning|^#|^variant" | cut -c1-120; }
{
sw opencl 1 32768 pattern 2 ";PKV_ATTN_SPLIT=0"
sw opencl 1 4096 pattern 2 ";PKV_ATTN_SPLIT=0"
sw opencl 8 32768 direct 2 ";PKV_ATTN_SPLIT=0"
for b in 8 1; do
  echo "== pkv bench opencl batch $b"
  timeout 130 $B/pkv bench --backend opencl --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
    --speed-contexts 4096,32768 --json $OUT/opencl_b$b.json > $OUT/opencl_b$b.txt 2>&1
  echo "rc $?"; grep -E "^cache|^  (pattern|direct|fp16) .*[0-9]x$" $OUT/opencl_b$b.txt
done
sw vulkan 8 32768 pattern 2 ";PKV_ATTN_GROUPS=2112;PKV_ATTN_GROUPS=4224" 40
} > $OUT/log.txt 2>&1
cat $OUT/log.txt
