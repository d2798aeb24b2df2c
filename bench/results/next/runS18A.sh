#!/usr/bin/env bash
# Prepared in session 17 for the next device session (not run). From the repository root on the GPU machine,
# carry ["build-gpu/pkv", "build-gpu/pkv-attn-sweep", "build-gpu/tests/test_attention", "build-gpu/runS18A.sh", ".gl"]
# after rebuilding build-gpu from the commit you run (build/pkv, build/bench/pkv-attn-sweep, build/tests/test_attention).
# Question: why is Vulkan's split attention 1.5x slower than the same design on NVIDIA's OpenCL (session 17)?
# 1. registers of both builds (OpenCL: ptxas's verbose build log, driver cache off; Vulkan: pipeline statistics);
# 2. Vulkan's values pass reading the logit records through a read-only alias (PKV_ATTN_DEBUG=512), the logits
#    pass's K loop unrolled as OpenCL's compiler may do (PKV_ATTN_KUNROLL=1);
# 3. Vulkan split's workgroup count (2112 was -5% at PATTERN 2-bit twice) on the other shapes;
# 4. the reports: Vulkan b8 and b1 on this main, OpenCL b1 with its new one-pass default at 1 x 4K.
B=build-gpu
source bench/h200_env.sh
sw() { echo "== $1 $2 $3 $4 $5"; timeout ${7:-60} $B/pkv-attn-sweep --backend $1 --batch $2 --context $3 --mode $4 --bits $5 --data bench --variants "$6" 2>&1 | grep -vE "^#|^variant" | sed -E 's/patternkv warning: vulkan: pipeline of kernel ([0-9]+) \(spec ([0-9 ]+)\): Register Count=([0-9]+).*/regs k\1 [\2] \3/' | cut -c1-120; }
{
CUDA_CACHE_DISABLE=1 PKV_OPENCL_BUILD_LOG=1 PKV_OPENCL_BUILD_OPTIONS=-cl-nv-verbose PKV_CACHE_DIR=/tmp/pkv-cold sw opencl 8 32768 pattern 2 "" 2>&1 | grep -iE "registers|ocl_attn|^\(default" | head -20
PKV_VULKAN_PIPELINE_STATS=1 sw vulkan 8 32768 pattern 2 ";PKV_ATTN_DEBUG=512;PKV_ATTN_KUNROLL=1;PKV_ATTN_KUNROLL=1 PKV_ATTN_TPT=2;PKV_ATTN_GROUPS=2112;PKV_ATTN_GROUPS=2112 PKV_ATTN_DEBUG=512"
sw vulkan 8 32768 pattern 4 ";PKV_ATTN_DEBUG=512;PKV_ATTN_GROUPS=2112"
sw vulkan 8 32768 direct 2 ";PKV_ATTN_DEBUG=512;PKV_ATTN_KUNROLL=1;PKV_ATTN_GROUPS=2112"
sw vulkan 8 4096 pattern 2 ";PKV_ATTN_GROUPS=2112;PKV_ATTN_SPLIT=1"
for be in vulkan opencl; do for b in 8 1; do
  [ $be = opencl ] && [ $b = 8 ] && continue
  echo "== pkv bench $be batch $b"
  timeout 140 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
    --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1
  echo "rc $?"; grep -E "^cache|^  (pattern|direct|fp16) .*[0-9]x$" $OUT/${be}_b$b.txt
done; done
} > $OUT/log.txt 2>&1
cat $OUT/log.txt
