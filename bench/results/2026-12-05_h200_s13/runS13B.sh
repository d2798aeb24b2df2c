#!/usr/bin/env bash
# session 13 run B: main after the OpenCL search kernel and Vulkan staging: write path by quantizer, tests on NVIDIA
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh # (the environment these ran with, now in one file)
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for be in vulkan opencl; do for qz in minmax auto; do for bb in 2 4; do
  [ $be = opencl ] && [ $bb = 4 ] && [ $qz = minmax ] && continue
  timeout 120 $B/pkv bench --backend $be --synthetic --no-fidelity --speed-contexts none --no-throughput --modes pattern --bits $bb --write-path --quantizer $qz --json /tmp/wp_${be}_${qz}_$bb.json > /tmp/wp.txt 2>&1
  echo "== write path $be $qz $bb rc $?"; grep -A6 -i "^write path" /tmp/wp.txt | head -8
done; done; done
for be in vulkan opencl; do
  echo "== test_parity $be"; PKV_TEST_BACKEND=$be timeout 250 $B/tests/test_parity 2>&1 | grep -E "PASSED|FAIL|differ|mismatch" | head -8
  echo "== test_quantizer $be"; PKV_TEST_BACKEND=$be timeout 60 $B/tests/test_quantizer 2>&1 | grep -E "PASSED|FAIL" | head -5
  echo "== test_k_assign $be"; PKV_TEST_BACKEND=$be timeout 60 $B/tests/test_k_assign 2>&1 | grep -E "PASSED|FAIL" | head -5
done
echo "== decode step"; timeout 120 $B/pkv bench --backend vulkan --synthetic --no-fidelity --speed-contexts none --no-throughput --decode-step --modes pattern --bits 2 --json $OUT/ds.json > /tmp/ds.txt 2>&1; echo rc $?; grep -A8 "^Decode step" /tmp/ds.txt | head -12
echo "== record cost"; timeout 60 $B/pkv-record-cost 32768 8 32 300 2>&1 | tail -3; PKV_RECORD_COST_DRIVER=0 timeout 60 $B/pkv-record-cost 32768 8 32 300 2>&1 | tail -3
} > $L 2>&1
mkdir -p $OUT/j; cd /tmp && tar czf $OUT/wp_json.tgz wp_*.json
cat $L
