#!/usr/bin/env bash
# Session 16 run A. From the repository root on the GPU machine, carry ["build-gpu/pkv",
# "build-gpu/pkv-attn-sweep", "build-gpu/tests/test_attention", "build-gpu/runS16A.sh", ".gl"]
# (build-gpu/ = this commit's Release binaries). Nothing is built there.
#   part 1: issue 11's pkv bench reports (Vulkan, OpenCL; batch 1 and 8; 4K and 32K; 2 and 4 bits; all modes)
#   part 2: issue 14's question: PATTERN decode speed with group 64 and banks frozen at 24 against the default
#   part 3: session 15's unrun part 2 (split widths, coopmat at 8 x 4K, split knobs)
B=build-gpu
source bench/h200_env.sh
PART=${1:-1}
run() { echo "== $1 $2 $3 $4"; timeout 100 $B/pkv-attn-sweep --backend vulkan --batch $1 --context $2 --mode $3 --bits $4 --data bench --variants "$5" 2>&1 | tail -n +3 | cut -c1-120; }
if [ "$PART" = 1 ]; then
  for be in vulkan opencl; do for b in 1 8; do
    echo "== pkv bench $be batch $b"
    timeout 140 $B/pkv bench --backend $be --synthetic --no-fidelity --no-throughput --bits 2,4 --batch $b \
      --speed-contexts 4096,32768 --json $OUT/${be}_b$b.json > $OUT/${be}_b$b.txt 2>&1
    echo "rc $?"; grep -E "^ *(pattern|direct|fp16)|ms" $OUT/${be}_b$b.txt | tail -30
  done; done
elif [ "$PART" = 2 ]; then
  for b in 1 8; do
    echo "== vulkan batch $b group 64 frozen 24"
    timeout 140 $B/pkv bench --backend vulkan --synthetic --no-fidelity --no-throughput --modes pattern --bits 2,3,4 --batch $b \
      --speed-contexts 4096,32768 --group 64 --patterns 24 --bank 24 --json $OUT/g64_b$b.json > $OUT/g64_b$b.txt 2>&1
    echo "rc $?"; tail -25 $OUT/g64_b$b.txt
    echo "== vulkan batch $b default geometry, pattern 3-bit"
    timeout 100 $B/pkv bench --backend vulkan --synthetic --no-fidelity --no-throughput --modes pattern --bits 3 --batch $b \
      --speed-contexts 4096,32768 --json $OUT/g128_p3_b$b.json > $OUT/g128_p3_b$b.txt 2>&1
    echo "rc $?"; tail -12 $OUT/g128_p3_b$b.txt
  done
else
  run 8 32768 pattern 4 ";PKV_ATTN_COOPMAT=1;PKV_ATTN_SPLIT=0"
  run 8 32768 direct 4 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
  run 8 32768 pattern 8 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
  run 8 4096 pattern 2 ";PKV_ATTN_SPLIT=1;PKV_ATTN_SPLIT=1 PKV_ATTN_COOPMAT=1"
  run 8 32768 pattern 2 ";PKV_ATTN_DEBUG=128;PKV_ATTN_DEBUG=256;PKV_ATTN_DEBUG=22;PKV_ATTN_LPC=4;PKV_ATTN_VCH=4;PKV_ATTN_VCH=16"
fi
