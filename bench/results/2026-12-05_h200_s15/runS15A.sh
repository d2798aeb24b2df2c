#!/usr/bin/env bash
# Session 15 run A (prepared, NOT run: no device was lent in session 15). Run from the repository root
# on the GPU machine with carry ["build-gpu", ".gl"], after rebuilding build-gpu from this commit
# (see the session 14 summary in bench/RESULTS.md). First split attention on cooperative matrices
# (attn_split_cm.glsl, opt-in PKV_ATTN_COOPMAT=1): never run on a device with them yet, so its test
# comes first; then session 14's unmeasured split changes (runS14C.sh, trimmed).
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh
run() { echo "== $1 $2 $3 $4"; timeout 100 $B/pkv-attn-sweep --backend vulkan --batch $1 --context $2 --mode $3 --bits $4 --data bench --variants "$5" 2>&1 | tail -n +3 | cut -c1-120; }
PART=${1:-1} # two calls of < 600 s: 1, then 2
{
if [ "$PART" = 1 ]; then
echo "== test_attention vulkan (coopmat split, then all)"
PKV_TEST_FILTER="*split*" PKV_TEST_BACKEND=vulkan timeout 150 $B/tests/test_attention 2>&1 | grep -iE "rel err|PASSED|FAIL|OK \]" | tail -20
# cooperative matrices in split attention against the portable split (rel diff column = against the first variant)
PKV_VULKAN_PIPELINE_STATS=1 run 8 32768 pattern 2 ";PKV_ATTN_COOPMAT=1;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=128;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=256;PKV_ATTN_COOPMAT=1 PKV_ATTN_LPC=4;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=4;PKV_ATTN_SPLIT=0" 2>&1 | grep -E "^[(P=]|kernel (1[89]|2[0-9])" | cut -c1-120
run 1 32768 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1 PKV_ATTN_CHUNKS_PER_ITEM=2"
run 8 32768 direct 2 ";PKV_ATTN_COOPMAT=1;PKV_ATTN_SPLIT=0"
elif [ "$PART" = 3 ]; then # after run A1: the hi/lo fix's test, and where the cooperative-matrix passes spend their time
PKV_TEST_FILTER="*split*" PKV_TEST_BACKEND=vulkan timeout 150 $B/tests/test_attention 2>&1 | grep -iE "rel err|PASSED|FAIL" | tail -12
run 8 32768 pattern 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_COOPMAT=1;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=128;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=144;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=256;PKV_ATTN_COOPMAT=1 PKV_ATTN_DEBUG=258"
else
run 8 32768 pattern 4 ";PKV_ATTN_COOPMAT=1;PKV_ATTN_SPLIT=0"
run 8 32768 direct 4 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
run 8 32768 pattern 8 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
run 8 4096 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
# session 14's portable split: breakdown by pass and knobs
run 8 32768 pattern 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=22;PKV_ATTN_LPC=4;PKV_ATTN_VCH=4;PKV_ATTN_VCH=16"
fi
} > $L 2>&1
cat $L
# Next call (the reports, ~6 min):
#   for be in vulkan opencl; do for b in 1 8; do
#     timeout 140 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
#       --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1; done; done
# (with PKV_ATTN_COOPMAT=1 too if run A shows it faster), and OpenCL's split twin:
#   pkv-attn-sweep --backend opencl ... --variants ";PKV_ATTN_SPLIT=1" (8 x 32K P2/P4/D2, 1 x 32K and 8 x 4K P2),
#   PKV_TEST_BACKEND=opencl PKV_ATTN_SPLIT=1 PKV_ATTN_CHUNKS_PER_ITEM=2 tests/test_attention.
