/* Internal probes of the Vulkan backend for the bench (not public API). `be` must be a Vulkan
 * backend (pkv_context's be with info.backend == PKV_BACKEND_VULKAN). */
#ifndef PKV_VK_BENCH_H
#define PKV_VK_BENCH_H

#include <stddef.h>

#include "backend.h"

/* Device read bandwidth in GB/s (1e9 bytes/s): a plain streaming-read kernel over `bytes` of
 * device-local memory, timed with device timestamps (host time if the queue has none); best of 5. */
pkv_status pkv_vulkan_measure_read_gbps(pkv_backend *be, size_t bytes, double *gbps);

/* Pipeline creation so far in this context: total milliseconds, pipelines created, and whether
 * the on-disk pipeline cache was found valid and used (warm) or not (cold). */
void pkv_vulkan_pipeline_stats(const pkv_backend *be, double *ms, unsigned *count, int *warm);

/* Device time of the last pkv_attention call's dispatches (qc, split, reduce) in milliseconds,
 * from timestamps; negative when the queue has no timestamps. */
double pkv_vulkan_last_attention_ms(const pkv_backend *be);

/* Where this context keeps its pipeline cache file ("" when nowhere). */
const char *pkv_vulkan_pipeline_cache_path(const pkv_backend *be);

#endif
