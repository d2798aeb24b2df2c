# The GPU machine's environment for a batch (the device tool), sourced by bench/h200_run.sh and by the
# per-session run scripts in bench/results/*/: unpacks the carried .deb files (.gl/: libvulkan1,
# libglvnd0, libegl1, ocl-icd-libopencl1, libcmocka0), points the Vulkan loader and libglvnd at NVIDIA's
# driver files, and OpenCL's ICD loader at NVIDIA's library only (the image's own PoCL asserts while
# compiling our kernels: a PoCL bug of that version; Debian 12's PoCL, which CI uses, compiles them).
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done
ldconfig
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$nv_icd" ] && export VK_DRIVER_FILES=$nv_icd __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/pkv-icd && echo libnvidia-opencl.so.1 >/tmp/pkv-icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/pkv-icd
export CI=true PKV_CACHE_DIR=/tmp/pkv-cache
