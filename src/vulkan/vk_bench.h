/* Internal probes of the Vulkan backend for the bench (not public API). `be` must be a Vulkan
 * backend (pkv_context's be with info.backend == PKV_BACKEND_VULKAN). */
#ifndef PKV_VK_BENCH_H
#define PKV_VK_BENCH_H

#include <stddef.h>
#include <sys/resource.h>

#include "backend.h"

/* Device read bandwidth in GB/s (1e9 bytes/s): a plain streaming-read kernel over `bytes` of
 * device-local memory, timed with device timestamps (host time if the queue has none); best of 5. */
pkv_status pkv_vulkan_measure_read_gbps(pkv_backend *be, size_t bytes, double *gbps);

/* Pipeline creation so far in this context: total milliseconds, pipelines created, and whether
 * the on-disk pipeline cache was found valid and used (warm) or not (cold). */
void pkv_vulkan_pipeline_stats(const pkv_backend *be, double *ms, unsigned *count, int *warm);

/* Pipelines still being created on background threads (PKV_VULKAN_EAGER_PIPELINES). */
unsigned pkv_vulkan_pipelines_pending(const pkv_backend *be);

/* Device time of the last pkv_attention call's dispatches (qc, split, reduce) in milliseconds,
 * from timestamps; negative when the queue has no timestamps. */
double pkv_vulkan_last_attention_ms(const pkv_backend *be);

/* Submits what is recorded and not yet submitted (a synchronous append's window writes wait for the
 * next op: vk_ops.c) and waits for the queue: *drain_ms its host time; then an empty submission and
 * its wait: *round_trip_ms (the driver's and the GPU's latency for one synchronous op). */
pkv_status pkv_vulkan_drain(pkv_backend *be, double *drain_ms, double *round_trip_ms);

/* Page faults and context switches summed over timed spans (issue 13's diagnostics of the decode
 * step's recording: pkv bench PKV_BENCH_RUSAGE=1 and pkv-record-cost). */
typedef struct pkv_rusage_sum {
    long minflt, majflt, nvcsw, nivcsw;
} pkv_rusage_sum;
/* Adds what the process did between two getrusage(RUSAGE_SELF) readings. */
void pkv_rusage_add(pkv_rusage_sum *sum, const struct rusage *before, const struct rusage *after);

/* The command probe (issue 13's diagnostics: pkv bench --decode-step's command counts, pkv-record-cost
 * PKV_RECORD_COST_DRIVER=0): while on, the vkCmd* functions the recorded calls use are counted; with
 * skip, they are not passed to the driver at all, so that a recording costs only the library's work
 * (and the calls into the probe): the command buffer then holds nothing of it and must not be
 * submitted. For tools: one probe at a time, no other thread recording on the context meanwhile. */
typedef struct pkv_vk_cmd_probe {
    uint64_t dispatches, barriers, transfers, binds, pushes;
} pkv_vk_cmd_probe;
struct pkv_vk;
void pkv_vk_cmd_probe_on(struct pkv_vk *vk, int skip);
void pkv_vk_cmd_probe_off(struct pkv_vk *vk, pkv_vk_cmd_probe *got);
static inline uint64_t pkv_vk_cmd_probe_commands(const pkv_vk_cmd_probe *p)
{
    return p->dispatches + p->barriers + p->transfers + p->binds + p->pushes;
}

/* Where this context keeps its pipeline cache file ("" when nowhere). */
const char *pkv_vulkan_pipeline_cache_path(const pkv_backend *be);

#endif

/* pkv bench --decode-step on Vulkan (vk_bench_step.c). One decode step of a model: for every layer
 * of the cache, one token appended to each of the n_seqs sequences and attention over them (q_len 1,
 * n_q_heads), with K, V, q and out in device buffers. Timed two ways over `steps` steps (after two
 * warm-up steps; medians), each step appending one token per layer and sequence:
 * - recorded: every layer's pkv_vulkan_cmd_append_batch (all sequences) / pkv_vulkan_cmd_attention in one command buffer
 *   of the context's queue family, submitted once: recorded_ms is its device time (timestamps at its
 *   start and end; NAN without timestamps), recorded_host_ms the host's record + submit + wait,
 *   record_us_per_layer the host time of the library's recording calls (every layer's append and
 *   attention; not vkBegin/EndCommandBuffer) divided by the layers. The recorded steps run back to
 *   back (record, submit, wait), the synchronous ones after them (PKV_BENCH_STEP_INTERLEAVE=1: one
 *   of each in turn, the order before session 8; docs/BENCH.md);
 * - synchronous: the same calls through pkv_vulkan_append_batch / pkv_vulkan_attention: synchronous_ms is
 *   the host wall time of the step, attention_kernels_ms the sum of its attention ops' device times
 *   (pkv_last_op_time after each attention: the kernels alone).
 * per_layer counts the commands of the last warm-up step's recording (the flush of a filling window
 * included when one falls into it), divided by the layers. */
typedef struct pkv_vk_step_times {
    double recorded_ms, recorded_host_ms, record_us_per_layer, synchronous_ms, attention_kernels_ms;
    /* what the recorded calls put into the command buffer per layer (the last step's, counted): compute
     * dispatches, pipeline barriers, transfers (copy, update, fill), and every command (those plus
     * pipeline and descriptor-set binds and push constants) */
    struct { double dispatches, barriers, transfers, commands; } per_layer;
} pkv_vk_step_times;
pkv_status pkv_vulkan_bench_decode_step(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t n_q_heads,
                                        uint32_t steps, pkv_vk_step_times *t);
