#!/usr/bin/env bash
# Prepared in session 16 for the next device session (not run). From the repository root on the GPU machine,
# carry ["build-gpu/pkv", "build-gpu/pkv-attn-sweep", "build-gpu/tests/test_attention", "build-gpu/runS17A.sh", ".gl"]
# after rebuilding build-gpu from the commit you run (build/pkv, build/bench/pkv-attn-sweep, build/tests/test_attention).
# 1. OpenCL at the new default (PATTERN group 64, banks frozen at 24) lost 41% at 8 x 32K (session 16, run B):
#    its split twin and one block per step; its split's correctness on NVIDIA first.
# 2. The FP16 mode's variants (Vulkan): split, workgroup counts.
# 3. OpenCL batch 1 report (run B stopped before it).
B=build-gpu
source bench/h200_env.sh
sw() { echo "== $1 $2 $3 $4 $5"; timeout 100 $B/pkv-attn-sweep --backend $1 --batch $2 --context $3 --mode $4 --bits $5 --data bench --variants "$6" 2>&1 | tail -n +3 | cut -c1-120; }
echo "== test_attention opencl, split forced"
PKV_TEST_BACKEND=opencl PKV_ATTN_SPLIT=1 timeout 150 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL" | tail -4
sw opencl 8 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1;PKV_ATTN_SPLIT=1 PKV_ATTN_CHUNKS_PER_ITEM=2"
sw opencl 8 32768 pattern 4 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw opencl 8 4096 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw vulkan 8 32768 fp16 16 ";PKV_ATTN_SPLIT=1;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112;PKV_ATTN_SPLIT=1 PKV_ATTN_GROUPS=2112"
sw vulkan 8 32768 pattern 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_SPLIT=0"
echo "== pkv bench opencl batch 1"
timeout 140 $B/pkv bench --backend opencl --synthetic --no-fidelity --no-throughput --bits 2,4 --batch 1 \
  --speed-contexts 4096,32768 --json $OUT/opencl_b1.json > $OUT/opencl_b1.txt 2>&1
echo "rc $?"; grep -E "^cache|^  (pattern|direct|fp16) .*[0-9]x$" $OUT/opencl_b1.txt
