#!/usr/bin/env bash
# session 13 run A: main 3e6741a (Vulkan MSE search kernel, test_vulkan_record tolerance): write path by quantizer, tests on NVIDIA
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh # (the environment these ran with, now in one file)
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for be in vulkan opencl; do for qz in minmax auto; do for bb in 2 4; do
  timeout 120 $B/pkv bench --backend $be --synthetic --no-fidelity --speed-contexts none --no-throughput --modes pattern --bits $bb --write-path --quantizer $qz --json $OUT/wp_${be}_${qz}_$bb.json > /tmp/wp.txt 2>&1
  echo "== write path $be $qz $bb rc $?"; grep -A6 -i "^write path" /tmp/wp.txt | head -8
done; done; done
echo "== test_vulkan_record"; timeout 150 $B/tests/test_vulkan_record 2>&1 | grep -E "PASSED|FAIL|OK|relative" | head -20
for be in vulkan opencl; do
  echo "== test_parity $be"; PKV_TEST_BACKEND=$be timeout 250 $B/tests/test_parity 2>&1 | grep -E "PASSED|FAIL|differ|mismatch" | head -8
  echo "== test_quantizer $be"; PKV_TEST_BACKEND=$be timeout 60 $B/tests/test_quantizer 2>&1 | grep -E "PASSED|FAIL" | head -5
  echo "== test_k_assign $be"; PKV_TEST_BACKEND=$be timeout 60 $B/tests/test_k_assign 2>&1 | grep -E "PASSED|FAIL" | head -5
done
echo "== test_attention vulkan"; PKV_TEST_BACKEND=vulkan timeout 150 $B/tests/test_attention 2>&1 | grep -E "PASSED|FAIL" | head -5
echo "== P3 1x4K teams"; timeout 60 $B/pkv-attn-sweep --backend vulkan --batch 1 --context 4096 --mode pattern --bits 3 --data bench --variants ";PKV_ATTN_TEAMS=2" 2>&1 | tail -n 3 | cut -c1-120
} > $L 2>&1
cat $L
