#!/usr/bin/env bash
# session 13 run D: 2-bit thresholds in the GPU range search
B=build-gpu
L=$OUT/log.txt
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export CI=true PKV_CACHE_DIR=/tmp/pkv-cache
mkdir -p /tmp/pkv-icd && echo libnvidia-opencl.so.1 >/tmp/pkv-icd/nvidia.icd; export OCL_ICD_VENDORS=/tmp/pkv-icd
{
for be in vulkan opencl; do for qz in auto minmax; do
  timeout 60 $B/pkv bench --backend $be --synthetic --no-fidelity --speed-contexts none --no-throughput --modes pattern --bits 2 --write-path --quantizer $qz --json /tmp/wp_${be}_${qz}_2.json > /tmp/wp.txt 2>&1
  echo "== write path $be $qz 2 rc $?"; grep -A2 -i "^write path" /tmp/wp.txt | tail -1
done; done
for be in vulkan opencl; do echo "== test_parity $be"; PKV_TEST_BACKEND=$be timeout 100 $B/tests/test_parity 2>&1 | grep -E "PASSED|FAIL|differ" | head -4; done
} > $L 2>&1
cd /tmp && tar czf $OUT/wp_json.tgz wp_*.json
cat $L
