#!/usr/bin/env bash
# session 14 run C (prepared, NOT run: no device was lent after run B): split attention's breakdown and knobs
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh
run() { echo "== $1 $2 $3 $4"; timeout 150 $B/pkv-attn-sweep --backend vulkan --batch $1 --context $2 --mode $3 --bits $4 --data bench --variants "$5" 2>&1 | tail -n +3 | cut -c1-110; }
{
echo "== test_attention vulkan (LPC 4, TPT 2)"; PKV_ATTN_LPC=4 PKV_ATTN_TPT=2 PKV_TEST_BACKEND=vulkan timeout 150 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL" | head -5
PKV_VULKAN_PIPELINE_STATS=1 run 8 32768 pattern 2 ";PKV_ATTN_SPLIT=0;PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=22;PKV_ATTN_DEBUG=150;PKV_ATTN_DEBUG=278;PKV_ATTN_LPC=4;PKV_ATTN_LPC=16;PKV_ATTN_LPC=4 PKV_ATTN_DEBUG=256;PKV_ATTN_VCH=4;PKV_ATTN_VCH=16;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112;PKV_ATTN_GROUPS=4224" 2>&1 | grep -E "^[(P]|kernel 1[89]|kernel 2[01]" | cut -c1-120
run 8 32768 direct 2 ";PKV_ATTN_SPLIT=0;PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_LPC=4;PKV_ATTN_LPC=4 PKV_ATTN_DEBUG=256;PKV_ATTN_GROUPS=2112"
run 1 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_DEBUG=128;PKV_ATTN_SPLIT=1 PKV_ATTN_DEBUG=256;PKV_ATTN_SPLIT=1 PKV_ATTN_LPC=2"
run 8 32768 pattern 4 ";PKV_ATTN_SPLIT=0;PKV_ATTN_VCH=8;PKV_ATTN_VCH=8 PKV_ATTN_LPC=4;PKV_ATTN_DEBUG=256"
} > $L 2>&1
cat $L
# For the next session, after the lines above (they fit one 600 s call with the bench below only if
# the sweeps are trimmed): the reports with the new defaults,
#   for be in vulkan opencl; do for b in 1 8; do
#     timeout 200 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
#       --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1; done; done
# and OpenCL's split twin (opt-in, helper h14-ocl-split): pkv-attn-sweep --backend opencl --batch B --context C
# --mode M --bits b --data bench --variants ";PKV_ATTN_SPLIT=1" for 8 x 32K PATTERN 2/4-bit and DIRECT 2-bit,
# 1 x 32K and 8 x 4K PATTERN 2-bit (PATTERN 4-bit also with PKV_ATTN_VCH=4), and
# PKV_TEST_BACKEND=opencl PKV_ATTN_SPLIT=1 PKV_ATTN_CHUNKS_PER_ITEM=2 tests/test_attention.
