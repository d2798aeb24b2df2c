#!/usr/bin/env bash
# session 14 run A: NVIDIA parity of the 2-bit threshold search (vulkan and opencl in parallel)
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh
for be in vulkan opencl; do
  (PKV_CACHE_DIR=/tmp/pkv-cache-$be PKV_TEST_BACKEND=$be timeout 300 $B/tests/test_parity > /tmp/par_$be.txt 2>&1; echo "rc $?" >> /tmp/par_$be.txt) &
done
wait
{ for be in vulkan opencl; do echo "== test_parity $be"; grep -E "PASSED|FAILED|FAIL|differ|rc " /tmp/par_$be.txt | head -8; done; } > $L
cp /tmp/par_*.txt $OUT/
cat $L
