#!/usr/bin/env bash
# session 13 run D: 2-bit thresholds in the GPU range search
B=build-gpu
L=$OUT/log.txt
source bench/h200_env.sh # (the environment these ran with, now in one file)
{
for be in vulkan opencl; do for qz in auto minmax; do
  timeout 60 $B/pkv bench --backend $be --synthetic --no-fidelity --speed-contexts none --no-throughput --modes pattern --bits 2 --write-path --quantizer $qz --json /tmp/wp_${be}_${qz}_2.json > /tmp/wp.txt 2>&1
  echo "== write path $be $qz 2 rc $?"; grep -A2 -i "^write path" /tmp/wp.txt | tail -1
done; done
for be in vulkan opencl; do echo "== test_parity $be"; PKV_TEST_BACKEND=$be timeout 100 $B/tests/test_parity 2>&1 | grep -E "PASSED|FAIL|differ" | head -4; done
} > $L 2>&1
cd /tmp && tar czf $OUT/wp_json.tgz wp_*.json
cat $L
