#!/usr/bin/env bash
# session 14 run B: split attention (attn_logits + attn_values) against the one-pass kernel; NVIDIA parity
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh
run() { echo "== $1 $2 $3 $4"; timeout 100 $B/pkv-attn-sweep --backend vulkan --batch $1 --context $2 --mode $3 --bits $4 --data bench --variants "$5" 2>&1 | tail -n +3 | cut -c1-110; }
{
echo "== test_attention vulkan"; PKV_TEST_BACKEND=vulkan timeout 150 $B/tests/test_attention 2>&1 | grep -iE "PASSED|FAIL|rel err" | head -40
PKV_VULKAN_PIPELINE_STATS=1 timeout 100 $B/pkv-attn-sweep --backend vulkan --batch 8 --context 32768 --mode pattern --bits 2 --data bench --variants ";PKV_ATTN_SPLIT=0;PKV_ATTN_DEBUG=16;PKV_ATTN_DEBUG=2;PKV_ATTN_DEBUG=4;PKV_ATTN_TPT=1;PKV_ATTN_TPT=4;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112" 2>&1 | grep -iE "attn_|regist|variant|PKV|default" | cut -c1-150 | head -40
run 1 32768 pattern 2 ";PKV_ATTN_SPLIT=0;PKV_ATTN_GROUPS=528;PKV_ATTN_GROUPS=2112"
run 8 32768 direct 2 ";PKV_ATTN_SPLIT=0"
run 1 32768 direct 2 ";PKV_ATTN_SPLIT=0"
run 8 32768 pattern 4 ";PKV_ATTN_SPLIT=0;PKV_ATTN_VCH=8"
run 1 32768 pattern 4 ";PKV_ATTN_SPLIT=0"
run 8 4096 pattern 2 ";PKV_ATTN_SPLIT=0"
run 8 32768 direct 4 ";PKV_ATTN_SPLIT=0"
run 8 32768 pattern 8 ";PKV_ATTN_SPLIT=0"
} > $L 2>&1
for be in vulkan opencl; do
  (PKV_CACHE_DIR=/tmp/pkv-cache-$be PKV_TEST_BACKEND=$be timeout 250 $B/tests/test_parity > /tmp/par_$be.txt 2>&1; echo "rc $?" >> /tmp/par_$be.txt) &
done
wait
{ for be in vulkan opencl; do echo "== test_parity $be"; grep -E "PASSED|FAILED|FAIL|differ|rc " /tmp/par_$be.txt | head -8; done; } >> $L
cp /tmp/par_*.txt $OUT/
cat $L
