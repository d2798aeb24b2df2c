#!/usr/bin/env bash
# session 17 run A: split attention's knobs on Vulkan (never measured: session 14's run C did not run),
# the warp kernel with subgroup barriers, the pass breakdown at the new defaults, FP16 mode's variants, OpenCL at group 64 (split, one block per step).
B=build-gpu
source bench/h200_env.sh
sw() { echo "== $1 $2 $3 $4 $5"; timeout ${7:-90} $B/pkv-attn-sweep --backend $1 --batch $2 --context $3 --mode $4 --bits $5 --data bench --variants "$6" 2>&1 | grep -vE "^patternkv warning|^#|^variant" | cut -c1-120; }
{
echo "== test_attention vulkan, warp kernel (subgroup barriers)"
PKV_TEST_BACKEND=vulkan PKV_ATTN_WARP=1 timeout 60 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL|rel err" | tail -6
sw vulkan 8 32768 pattern 2 ";PKV_ATTN_WARP=1;PKV_ATTN_WARP=1 PKV_ATTN_DEBUG=22;PKV_ATTN_WARP=1 PKV_ATTN_PREFETCH=0;PKV_ATTN_WARP=1 PKV_ATTN_GROUPS=4224"
sw vulkan 8 32768 direct 2 ";PKV_ATTN_WARP=1;PKV_ATTN_WARP=1 PKV_ATTN_DEBUG=18"
sw vulkan 1 32768 pattern 2 ";PKV_ATTN_WARP=1"
sw vulkan 8 32768 pattern 4 ";PKV_ATTN_WARP=1"
sw vulkan 8 4096 pattern 2 ";PKV_ATTN_WARP=1"
PKV_VULKAN_PIPELINE_STATS=1 timeout 150 $B/pkv-attn-sweep --backend vulkan --batch 8 --context 32768 --mode pattern --bits 2 --data bench \
  --variants ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=2;PKV_ATTN_DEBUG=16;PKV_ATTN_DEBUG=4;PKV_ATTN_DEBUG=6;PKV_ATTN_DEBUG=134;PKV_ATTN_LPC=2;PKV_ATTN_LPC=4;PKV_ATTN_LPC=8;PKV_ATTN_TPT=2;PKV_ATTN_VCH=4;PKV_ATTN_VCH=16;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112;PKV_ATTN_GROUPS=4224;PKV_ATTN_SPLIT=0" 2>&1 \
  | sed -E 's/patternkv warning: vulkan: pipeline of kernel ([0-9]+) \(spec ([0-9 ]+)\): Register Count=([0-9]+).*/regs k\1 [\2] \3/' | grep -vE "^#|^variant" | cut -c1-120
sw vulkan 8 32768 direct 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=2;PKV_ATTN_DEBUG=130;PKV_ATTN_DEBUG=16;PKV_ATTN_LPC=4;PKV_ATTN_GROUPS=2112;PKV_ATTN_SPLIT=0"
sw vulkan 8 32768 pattern 4 ";PKV_ATTN_LPC=4;PKV_ATTN_VCH=4;PKV_ATTN_SPLIT=0;PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256"
sw vulkan 8 32768 fp16 16 ";PKV_ATTN_SPLIT=1;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112"
sw vulkan 1 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1;PKV_ATTN_GROUPS=528"
echo "== test_attention opencl, split forced"
PKV_TEST_BACKEND=opencl PKV_ATTN_SPLIT=1 timeout 100 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL" | tail -4
sw opencl 8 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1;PKV_ATTN_SPLIT=1 PKV_ATTN_CHUNKS_PER_ITEM=2"
sw opencl 8 32768 pattern 4 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw opencl 8 4096 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw opencl 1 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
} > $OUT/log.txt 2>&1
cat $OUT/log.txt
