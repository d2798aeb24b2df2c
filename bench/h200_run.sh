#!/usr/bin/env bash
# One batch on the GPU machine (the device tool): nothing is built there. Carry a folder (first
# argument) holding pkv, pkv-attn-sweep, the test binaries in tests/, and this script, plus .gl/ (the
# .deb files of libvulkan1, libglvnd0, libegl1, ocl-icd-libopencl1 and libcmocka0, unpacked here).
# Runs the Vulkan and OpenCL tests on the NVIDIA drivers ("notests" as second argument skips them),
# then the runs listed in $PKV_RUNS (below). Results land in $OUT.
set -u
B=${1:-build-gpu}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source bench/h200_env.sh # (run from the repository root)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
# clocks through the whole run, to read each measurement's conditions from (smi.csv in $OUT)
nvidia-smi --query-gpu=timestamp,pstate,clocks.sm,clocks.mem,utilization.gpu,power.draw --format=csv,noheader -lms 200 \
  >"$OUT/smi.csv" 2>/dev/null &
"$B/pkv" devices --verbose >/tmp/devices.txt 2>&1
if [ "${2:-tests}" != notests ]; then
  t=$B/tests
  run() { local name=$1; shift; (env "$@" >"$OUT/t_$name.log" 2>&1; echo "$name exit $?" >>"$OUT/tests.txt") & }
  : >"$OUT/tests.txt"
  for be in vulkan opencl; do
    for s in attention sequences io errors parity append_layers; do run ${s}_$be PKV_TEST_BACKEND=$be "$t/test_$s"; done
  done
  run parity_vulkan_nosub PKV_TEST_BACKEND=vulkan PKV_VULKAN_NO_SUBGROUPS=1 "$t/test_parity"
  run vulkan_device "$t/test_vulkan_device"
  run opencl_device PKV_TEST_CACHE_DIR=/tmp/pkv-cache "$t/test_opencl_device"
  wait
  sort "$OUT/tests.txt"
  grep -h "FAILED\|Failure\|rel err\|rel diff" "$OUT"/t_*.log | sort | uniq -c | sort -rn | head -12
fi
# $PKV_RUNS: one run a line, "bench|backend|args" (pkv bench) or "sweep|backend|args|variants" (pkv-attn-sweep);
# each stopped after $PKV_RUN_TIMEOUT seconds (default 600), so that one slow run leaves time for the rest.
i=0
while IFS='|' read -r what be args variants; do
  [ -n "$what" ] || continue
  i=$((i + 1))
  if [ "$what" = bench ]; then
    echo "== bench $i $be $args ($(date +%T))"
    timeout "${PKV_RUN_TIMEOUT:-600}" "$B/pkv" bench --backend "$be" $args --json "$OUT/bench_${i}_$be.json" >/tmp/bench_${i}.txt 2>&1
    echo "exit $? ($(date +%T))"
    # PKV_PROFILE=1 in the environment: every call's host split (docs/ARCHITECTURE.md), kept in $OUT
    [ -n "${PKV_PROFILE:-}" ] && grep "^pkv profile:" /tmp/bench_${i}.txt >"$OUT/profile_${i}_$be.txt"
    grep -A16 "^Decode attention speed" /tmp/bench_${i}.txt | grep -v "^  The batch\|^  cache that\|GB/s = \|host ms:\|^$"
    grep -A4 "^Write path" /tmp/bench_${i}.txt
    grep -A6 "^Decode step" /tmp/bench_${i}.txt
  else
    echo "== sweep $i $be $args ($(date +%T))"
    timeout "${PKV_RUN_TIMEOUT:-600}" "$B/pkv-attn-sweep" --backend "$be" $args --variants "$variants" 2>&1
  fi
done <<<"${PKV_RUNS:-}"
