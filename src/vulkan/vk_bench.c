#define _POSIX_C_SOURCE 200809L
/* Bandwidth and timing probes for the bench. */
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "vk_bench.h"
#include "vk_internal.h"

static double host_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

pkv_status pkv_vulkan_measure_read_gbps(pkv_backend *be, size_t bytes, double *gbps)
{
    if (!be || be->info.backend != PKV_BACKEND_VULKAN || !gbps || bytes < 4096)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_vulkan_measure_read_gbps: needs a Vulkan backend and >= 4096 bytes");
    pkv_vk *vk = pkv_vk_of(be);
    if (bytes > vk->props.limits.maxStorageBufferRange) bytes = vk->props.limits.maxStorageBufferRange & ~(size_t)255;
    pthread_mutex_lock(&vk->lock);
    pkv_buf *src = NULL, *dst = NULL;
    pkv_status s = pkv_vk_buf_alloc(vk, bytes, &src);
    if (s == PKV_OK) s = pkv_vk_buf_alloc(vk, 256, &dst);
    VkPipeline pipe = VK_NULL_HANDLE;
    /* the probe: workgroups of 256 invocations, 4 loads in flight each; PKV_READ_BW_WG (32..1024),
     * PKV_READ_BW_LOADS (1..16) and PKV_READ_BW_PAD_KB (shared memory per workgroup, capping
     * occupancy) vary it (read_bw.comp) */
    uint32_t spec[PKV_VK_SPEC_MAX] = {256, 4, 0};
    const char *wg = getenv("PKV_READ_BW_WG"), *loads = getenv("PKV_READ_BW_LOADS"), *pad = getenv("PKV_READ_BW_PAD_KB");
    if (wg && atoi(wg) >= 32 && (uint32_t)atoi(wg) <= vk->props.limits.maxComputeWorkGroupSize[0]) spec[0] = (uint32_t)atoi(wg);
    if (loads && atoi(loads) >= 1 && atoi(loads) <= 16) spec[1] = (uint32_t)atoi(loads);
    if (pad && atoi(pad) >= 1 && (size_t)atoi(pad) * 1024 <= vk->props.limits.maxComputeSharedMemorySize) spec[2] = (uint32_t)atoi(pad);
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_READ_BW, spec, &pipe);
    uint32_t n_vec4 = (uint32_t)(bytes / 16);
    uint32_t groups = vk->props.limits.maxComputeWorkGroupCount[0] < 4096 ? vk->props.limits.maxComputeWorkGroupCount[0] : 4096;
    double best = 0;
    pkv_buf *bufs[4] = {src, dst, NULL, NULL};
    for (int rep = 0; s == PKV_OK && rep < 12; rep++) { /* the first runs also raise the clocks */
        s = pkv_vk_begin(vk);
        if (s == PKV_OK && vk->query_pool) {
            vk->f.vkCmdResetQueryPool(vk->cb, vk->query_pool, 0, 2);
            vk->f.vkCmdWriteTimestamp(vk->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->query_pool, 0);
        }
        double t0 = host_ms();
        if (s == PKV_OK) s = pkv_vk_dispatch(vk, pipe, bufs, &n_vec4, 4, groups, 1, 1);
        if (s == PKV_OK && vk->query_pool)
            vk->f.vkCmdWriteTimestamp(vk->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->query_pool, 1);
        s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
        double ms = host_ms() - t0;
        uint64_t ts[2];
        if (s == PKV_OK && vk->query_pool &&
            vk->f.vkGetQueryPoolResults(vk->device, vk->query_pool, 0, 2, sizeof ts, ts, 8,
                                        VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
            ms = (double)((ts[1] - ts[0]) & vk->ts_mask) * vk->props.limits.timestampPeriod * 1e-6;
        double g = ms > 0 ? (double)bytes / (ms * 1e-3) / 1e9 : 0;
        if (rep > 0 && g > best) best = g; /* the first run warms up */
    }
    if (src) pkv_vk_buf_free(vk, src);
    if (dst) pkv_vk_buf_free(vk, dst);
    pthread_mutex_unlock(&vk->lock);
    if (s == PKV_OK) *gbps = best;
    return s;
}

void pkv_rusage_add(pkv_rusage_sum *sum, const struct rusage *before, const struct rusage *after)
{
    sum->minflt += after->ru_minflt - before->ru_minflt, sum->majflt += after->ru_majflt - before->ru_majflt;
    sum->nvcsw += after->ru_nvcsw - before->ru_nvcsw, sum->nivcsw += after->ru_nivcsw - before->ru_nivcsw;
}

pkv_status pkv_vulkan_drain(pkv_backend *be, double *drain_ms, double *round_trip_ms)
{
    if (!be || be->info.backend != PKV_BACKEND_VULKAN || !drain_ms || !round_trip_ms)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_vulkan_drain: needs a Vulkan backend");
    pkv_vk *vk = pkv_vk_of(be);
    if (vk->external || vk->stage_pending)
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "pkv_vulkan_drain: not while a call is recorded");
    pthread_mutex_lock(&vk->lock);
    const double t0 = host_ms();
    pkv_status s = pkv_vk_finish(vk);
    const double t1 = host_ms();
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    if (s == PKV_OK) s = pkv_vk_finish(vk);
    *drain_ms = t1 - t0, *round_trip_ms = host_ms() - t1;
    pthread_mutex_unlock(&vk->lock);
    return s;
}

void pkv_vulkan_pipeline_stats(const pkv_backend *be, double *ms, unsigned *count, int *warm)
{
    const pkv_vk *vk = be->impl;
    if (ms) *ms = vk->pipeline_ms;
    if (count) *count = vk->pipelines_created;
    if (warm) *warm = vk->cache_loaded;
}

unsigned pkv_vulkan_pipelines_pending(const pkv_backend *be) { return pkv_vk_pipelines_pending(be->impl); }

double pkv_vulkan_last_attention_ms(const pkv_backend *be)
{
    const pkv_vk *vk = be->impl;
    return vk->query_pool ? vk->last_attention_ms : -1.0;
}

const char *pkv_vulkan_pipeline_cache_path(const pkv_backend *be)
{
    const pkv_vk *vk = be->impl;
    return vk->cache_path;
}
