#!/usr/bin/env bash
# One batch on the GPU machine (the device tool): nothing is built there. Carry the build folder
# (first argument) and .gl/ (libvulkan1, ocl-icd-libopencl1, libcmocka0 .deb files, unpacked here).
# Runs the Vulkan and OpenCL test suites on the NVIDIA drivers, lists devices, then the benches
# given as further arguments ("tests" to skip them: "notests"). Results land in $OUT.
set -u
B=${1:-build}
shift || true
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# The build folder's CTest files name /work/main; make that path lead here.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
# NVIDIA's Vulkan driver lives in the driver's folder and needs libglvnd (carried in .gl/).
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$nv_icd" ] && export VK_DRIVER_FILES=$nv_icd __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -e /etc/OpenCL/vendors/nvidia.icd ] || { mkdir -p /etc/OpenCL/vendors; echo libnvidia-opencl.so.1 >/etc/OpenCL/vendors/nvidia.icd; }
# Only NVIDIA's OpenCL: the image's own PoCL asserts while compiling our kernels (a PoCL bug of
# that version; Debian 12's PoCL, which CI uses, compiles them).
mkdir -p /tmp/pkv-icd && echo libnvidia-opencl.so.1 >/tmp/pkv-icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/pkv-icd  # a folder holding only NVIDIA's ICD
export CI=true PKV_CACHE_DIR=/tmp/pkv-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$B/pkv" devices --verbose 2>&1 | tee "$OUT/devices.txt"
if [ "${1:-tests}" != notests ]; then
  (cd "$B" && ctest -R "vulkan|opencl" -E "cli_bench" --output-on-failure -j4 --timeout 300) >"$OUT/tests.log" 2>&1
  grep -E "tests passed|Failed|\*\*\*|Passed" "$OUT/tests.log" | tail -30
fi
for backend in vulkan opencl; do
  "$B/pkv" bench --backend "$backend" ${PKV_BENCH_ARGS:-} --json "$OUT/bench_$backend.json" >"$OUT/bench_$backend.txt" 2>&1
  echo "== bench $backend (exit $?)"
  tail -${PKV_BENCH_TAIL:-45} "$OUT/bench_$backend.txt"
done
