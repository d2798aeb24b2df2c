#!/usr/bin/env bash
# session 17 run A (trimmed to the device time left): the warp kernel with subgroup barriers (does a
# workgroup barrier make NVIDIA wait for the loads in flight?), split attention's pass breakdown and knobs
# at the new defaults, OpenCL at group 64 (split, one block per step).
B=build-gpu
source bench/h200_env.sh
sw() { echo "== $1 $2 $3 $4 $5"; timeout ${7:-60} $B/pkv-attn-sweep --backend $1 --batch $2 --context $3 --mode $4 --bits $5 --data bench --variants "$6" 2>&1 | grep -vE "^patternkv warning|^#|^variant" | cut -c1-120; }
{
echo "== test_attention vulkan, warp kernel (subgroup barriers)"
PKV_TEST_BACKEND=vulkan PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0 timeout 40 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL|rel err" | tail -6
sw vulkan 8 32768 pattern 2 ";PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0 PKV_ATTN_DEBUG=22;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0 PKV_ATTN_PREFETCH=0;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0 PKV_ATTN_GROUPS=4224;PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=2;PKV_ATTN_DEBUG=4;PKV_ATTN_DEBUG=6;PKV_ATTN_LPC=4;PKV_ATTN_GROUPS=2112;PKV_ATTN_PREFETCH=0" 80
sw vulkan 8 32768 direct 2 ";PKV_ATTN_PREFETCH=0;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0 PKV_ATTN_DEBUG=18;PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256"
sw vulkan 1 32768 pattern 2 ";PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0"
sw vulkan 8 32768 pattern 4 ";PKV_ATTN_PREFETCH=0;PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0"
sw vulkan 8 4096 pattern 2 ";PKV_ATTN_WARP=1 PKV_ATTN_SPLIT=0"
sw opencl 8 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw opencl 8 4096 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
sw opencl 8 32768 pattern 4 ";PKV_ATTN_SPLIT=1;PKV_ATTN_STEP_BLOCKS=1"
} > $OUT/log.txt 2>&1
cat $OUT/log.txt
