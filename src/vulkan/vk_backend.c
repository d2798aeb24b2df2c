#define _XOPEN_SOURCE 700
/* The Vulkan backend's table (src/core/backend.h): create/destroy and the buffer functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "profile.h"
#include "vk_bench.h"
#include "vk_internal.h"

static void vk_destroy(pkv_backend *be)
{
    if (!be) return;
    pkv_vk *vk = pkv_vk_of(be);
    if (vk) {
        if (vk->device) {
            if (vk->recording) pkv_vk_finish(vk); /* deferred window writes */
            pkv_vk_pipelines_destroy(vk);
            pkv_vk_memory_destroy(vk);
        }
        pkv_vk_close(vk);
        pthread_mutex_destroy(&vk->lock);
        pthread_mutex_destroy(&vk->pipe_lock);
        pthread_cond_destroy(&vk->pipe_done);
        free(vk);
    }
    free(be);
}

static pkv_status vk_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out)
{
    pkv_vk *vk = pkv_vk_of(be);
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_buf_alloc(vk, bytes, out);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

static void vk_buf_free(pkv_backend *be, pkv_buf *b)
{
    pkv_vk *vk = pkv_vk_of(be);
    pthread_mutex_lock(&vk->lock);
    /* deferred writes may target this range or its page: run them first */
    if (vk->recording && pkv_vk_finish(vk) != PKV_OK)
        pkv_log(NULL, PKV_LOG_WARN, "vulkan: deferred writes failed: %s", pkv_last_error());
    pkv_vk_buf_free(vk, b);
    pthread_mutex_unlock(&vk->lock);
}

static pkv_status check_range(const pkv_buf *b, size_t off, size_t n, const char *what)
{
    if (!b || off > b->size || n > b->size - off)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "vulkan: %s out of bounds", what);
    return PKV_OK;
}

/* Writes are recorded (the data is already copied into the staging ring) and submitted with the
 * next op, read or copy: one submit for the many small window writes of an append, not one each. */
static pkv_status vk_buf_write(pkv_backend *be, pkv_buf *b, size_t off, const void *src, size_t n)
{
    pkv_status s = check_range(b, off, n, "write");
    if (s != PKV_OK || !n) return s;
    pkv_vk *vk = pkv_vk_of(be);
    pthread_mutex_lock(&vk->lock);
    s = pkv_vk_stage_settle(vk);
    if (s == PKV_OK) s = pkv_vk_upload(vk, b, off, src, n);
    if (s == PKV_OK) pkv_vk_barrier(vk);
    else pkv_vk_abandon(vk);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

static pkv_status vk_buf_read(pkv_backend *be, pkv_buf *b, size_t off, void *dst, size_t n)
{
    pkv_status s = check_range(b, off, n, "read");
    if (s != PKV_OK || !n) return s;
    pkv_vk *vk = pkv_vk_of(be);
    pthread_mutex_lock(&vk->lock);
    s = pkv_vk_stage_settle(vk);
    if (s == PKV_OK) s = pkv_vk_download(vk, b, off, dst, n);
    s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

static pkv_status vk_buf_copy(pkv_backend *be, pkv_buf *dst, size_t doff, pkv_buf *src, size_t soff, size_t n)
{
    pkv_status s = check_range(dst, doff, n, "copy destination");
    if (s == PKV_OK) s = check_range(src, soff, n, "copy source");
    if (s != PKV_OK || !n) return s;
    pkv_vk *vk = pkv_vk_of(be);
    pthread_mutex_lock(&vk->lock);
    VkDeviceSize a = src->off + soff, b = dst->off + doff;
    int overlap = src->page == dst->page && a < b + n && b < a + n;
    s = pkv_vk_stage_settle(vk); /* a recorded append's K/V, before anything else uses scratch */
    if (s == PKV_OK && overlap) { /* Vulkan forbids overlapping copies: go through the scratch buffer */
        s = pkv_vk_scratch_reserve(vk, n);
        pkv_vk_scratch_written(vk);
        if (s == PKV_OK) s = pkv_vk_begin(vk);
        if (s == PKV_OK) {
            VkBufferCopy c1 = {a, vk->scratch->off, n}, c2 = {vk->scratch->off, b, n};
            vk->f.vkCmdCopyBuffer(vk->cb, src->page->buf, vk->scratch->page->buf, 1, &c1);
            pkv_vk_barrier(vk);
            vk->f.vkCmdCopyBuffer(vk->cb, vk->scratch->page->buf, dst->page->buf, 1, &c2);
        }
    } else if (s == PKV_OK) {
        s = pkv_vk_begin(vk);
        if (s == PKV_OK) {
            VkBufferCopy c = {a, b, n};
            vk->f.vkCmdCopyBuffer(vk->cb, src->page->buf, dst->page->buf, 1, &c);
        }
    }
    if (s == PKV_OK) pkv_vk_barrier(vk);
    s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

static pkv_status vk_measure_read(pkv_backend *be, uint64_t bytes, double *gbps)
{
    return pkv_vulkan_measure_read_gbps(be, (size_t)bytes, gbps);
}

static double vk_last_op_ms(pkv_backend *be) { return pkv_vk_of(be)->last_op_ms; }

static const pkv_backend_iface vk_iface = {
    .destroy = vk_destroy,
    .buf_alloc = vk_buf_alloc,
    .buf_free = vk_buf_free,
    .buf_write = vk_buf_write,
    .buf_read = vk_buf_read,
    .buf_copy = vk_buf_copy,
    .quantizers = (1u << PKV_QUANTIZER_MSE) | (1u << PKV_QUANTIZER_MSE_K) | (1u << PKV_QUANTIZER_MSE_V),
    .mine = pkv_vk_mine,
    .flush = pkv_vk_flush,
    .write_window = pkv_vk_write_window,
    .attention = pkv_vk_attention,
    .resident_tables = 1,
    .measure_read = vk_measure_read,
    .last_op_ms = vk_last_op_ms,
    .prepare = pkv_vk_prepare,
    .prewarm = pkv_vk_prewarm,
};

static pkv_status vk_create(const pkv_context_params *p, pkv_backend **out, char *why, size_t why_len)
{
    *out = NULL;
    pkv_backend *be = calloc(1, sizeof *be);
    pkv_vk *vk = calloc(1, sizeof *vk);
    if (!be || !vk) {
        free(be);
        free(vk);
        snprintf(why, why_len, "out of host memory");
        return PKV_ERR_OUT_OF_HOST_MEMORY;
    }
    /* recursive: a recorded call (vk_external_io.c) holds it around the ops, which take it too */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&vk->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_mutex_init(&vk->pipe_lock, NULL);
    pthread_cond_init(&vk->pipe_done, NULL);
    be->iface = &vk_iface;
    be->impl = vk;
    const int prof = pkv_prof_enabled();
    const double t0 = pkv_clock_s();
    pkv_status s = pkv_vk_open(vk, p, &be->info, why, why_len);
    double t1 = pkv_clock_s(), t2 = t1;
    be->driver_ms = (t1 - t0) * 1e3;
    if (s == PKV_OK) {
        /* attention's pipelines started in the background when a cache is created (vk_ops.c,
         * prepare): off unless PKV_VULKAN_EAGER_PIPELINES=1. On the H200 the 8 variants compiled
         * alongside the write path's 11 pipelines slowed those to 64-74 ms, where alone they take
         * 24-26 and the first attention then compiles its own two in ~13: start-up to a first result
         * 151-178 ms eager, 129-145 not (bench/RESULTS.md, session 9). pkv_prewarm builds them on
         * request. */
        const char *eager = getenv("PKV_VULKAN_EAGER_PIPELINES");
        vk->eager_attention = eager && *eager && *eager != '0';
        /* the pool's buffers: bound whole as storage buffers, each its own allocation when large */
        VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
        VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
        vk->f.vkGetPhysicalDeviceProperties2(vk->phys, &p2);
        be->max_buffer_bytes = vk->props.limits.maxStorageBufferRange;
        if (m3.maxMemoryAllocationSize && m3.maxMemoryAllocationSize < be->max_buffer_bytes)
            be->max_buffer_bytes = m3.maxMemoryAllocationSize;
        s = pkv_vk_memory_init(vk, p);
        t2 = prof ? pkv_prof_start() : 0;
        if (s == PKV_OK) s = pkv_vk_pipelines_init(vk, p);
        if (s != PKV_OK) snprintf(why, why_len, "%s", pkv_last_error());
    }
    if (prof && s == PKV_OK) /* the start-up's split (PKV_PROFILE) */
        fprintf(stderr, "pkv profile: vulkan context: instance and device %.3f ms, memory %.3f ms (staging ring of %llu KiB "
                "(grows to %llu on need) %.3f, first page and first submission %.3f), shader modules and pipeline cache file %.3f ms (%s)\n",
                (t1 - t0) * 1e3, (t2 - t1) * 1e3, (unsigned long long)(vk->ring_size >> 10),
                (unsigned long long)(vk->ring_target >> 10), vk->ring_ms,
                (t2 - t1) * 1e3 - vk->ring_ms, (pkv_prof_start() - t2) * 1e3, vk->cache_loaded ? "loaded" : "none");
    if (s != PKV_OK) {
        vk_destroy(be);
        return s;
    }
    *out = be;
    return PKV_OK;
}

const pkv_backend_entry pkv_vulkan_backend_entry = {
    .kind = PKV_BACKEND_VULKAN,
    .list = pkv_vk_list,
    .create = vk_create,
};
