/* Internal to the bench: the device's read bandwidth, measured with a plain streaming-read kernel
 * on the context's OpenCL device (the ceiling for memory-bound decode attention). */
#ifndef PKV_OCL_BENCH_H
#define PKV_OCL_BENCH_H

#include <stddef.h>

#include "patternkv.h"

/* Reads a `bytes` buffer five times (after one warm-up; `reps` is ignored) and returns the best
 * rate in GB/s (1e9 bytes per second), timed with OpenCL profiling events. The same as the public
 * pkv_measure_read_bandwidth on an OpenCL context. PKV_ERR_UNSUPPORTED when ctx is not on OpenCL. */
pkv_status pkv_opencl_read_bandwidth(pkv_context *ctx, size_t bytes, int reps, double *gbps);

#endif
