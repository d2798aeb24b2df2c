#define _POSIX_C_SOURCE 200809L
/* pkv bench --decode-step on Vulkan: a model's decode step recorded into one command buffer against
 * the same step through the synchronous calls (vk_bench.h). The bench plays the engine on the
 * context's own device: its command buffer comes from the context's queue family, its K/V/q/out
 * live in one device buffer of the context. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "patternkv_vulkan.h"
#include "vk_bench.h"
#include "vk_internal.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, uint32_t n)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct step_io {
    pkv_vk *vk;
    pkv_buf *buf;
    VkBuffer vb;
    VkDeviceSize base;
    size_t kv_bytes, q_bytes;  /* of one sequence's token of one layer; of one layer's q (all sequences) */
    uint32_t L, B;
} step_io;

static VkDeviceSize off_k(const step_io *io, uint32_t l, uint32_t b)
{
    return io->base + (VkDeviceSize)l * (2 * io->B * io->kv_bytes + 2 * io->q_bytes) + (VkDeviceSize)b * io->kv_bytes;
}
static VkDeviceSize off_v(const step_io *io, uint32_t l, uint32_t b) { return off_k(io, l, b) + io->B * io->kv_bytes; }
static VkDeviceSize off_q(const step_io *io, uint32_t l) { return off_k(io, l, 0) + 2 * io->B * io->kv_bytes; }
static VkDeviceSize off_out(const step_io *io, uint32_t l) { return off_q(io, l) + io->q_bytes; }

/* The command probe (vk_bench.h): the context's function table points at these wrappers while it is
 * on (one probe at a time, under no other recording thread). */
static struct {
    pkv_vk_funcs real;
    int skip;
    pkv_vk_cmd_probe got;
} g_probe;
/* Counts a command in `field`, then records it with the driver's function `call` unless skipping. */
#define PROBE(field, call)                                                                                             \
    do {                                                                                                             \
        g_probe.got.field++;                                                                                         \
        if (!g_probe.skip) call;                                                                                     \
    } while (0)
static VKAPI_ATTR void VKAPI_CALL count_dispatch(VkCommandBuffer cb, uint32_t x, uint32_t y, uint32_t z)
{
    PROBE(dispatches, g_probe.real.vkCmdDispatch(cb, x, y, z));
}
static VKAPI_ATTR void VKAPI_CALL count_barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkPipelineStageFlags dst,
                                                VkDependencyFlags dep, uint32_t nm, const VkMemoryBarrier *m, uint32_t nb,
                                                const VkBufferMemoryBarrier *b, uint32_t ni, const VkImageMemoryBarrier *im)
{
    PROBE(barriers, g_probe.real.vkCmdPipelineBarrier(cb, src, dst, dep, nm, m, nb, b, ni, im));
}
static VKAPI_ATTR void VKAPI_CALL count_copy(VkCommandBuffer cb, VkBuffer src, VkBuffer dst, uint32_t n, const VkBufferCopy *r)
{
    PROBE(transfers, g_probe.real.vkCmdCopyBuffer(cb, src, dst, n, r));
}
static VKAPI_ATTR void VKAPI_CALL count_update(VkCommandBuffer cb, VkBuffer dst, VkDeviceSize off, VkDeviceSize n, const void *p)
{
    PROBE(transfers, g_probe.real.vkCmdUpdateBuffer(cb, dst, off, n, p));
}
static VKAPI_ATTR void VKAPI_CALL count_fill(VkCommandBuffer cb, VkBuffer dst, VkDeviceSize off, VkDeviceSize n, uint32_t v)
{
    PROBE(transfers, g_probe.real.vkCmdFillBuffer(cb, dst, off, n, v));
}
static VKAPI_ATTR void VKAPI_CALL count_bind_pipeline(VkCommandBuffer cb, VkPipelineBindPoint bp, VkPipeline p)
{
    PROBE(binds, g_probe.real.vkCmdBindPipeline(cb, bp, p));
}
static VKAPI_ATTR void VKAPI_CALL count_bind_sets(VkCommandBuffer cb, VkPipelineBindPoint bp, VkPipelineLayout l, uint32_t first,
                                                  uint32_t n, const VkDescriptorSet *sets, uint32_t nd, const uint32_t *d)
{
    PROBE(binds, g_probe.real.vkCmdBindDescriptorSets(cb, bp, l, first, n, sets, nd, d));
}
static VKAPI_ATTR void VKAPI_CALL count_push(VkCommandBuffer cb, VkPipelineLayout l, VkShaderStageFlags st, uint32_t off,
                                             uint32_t n, const void *p)
{
    PROBE(pushes, g_probe.real.vkCmdPushConstants(cb, l, st, off, n, p));
}

void pkv_vk_cmd_probe_on(pkv_vk *vk, int skip)
{
    pthread_mutex_lock(&vk->lock);
    memset(&g_probe, 0, sizeof g_probe);
    g_probe.real = vk->f, g_probe.skip = skip;
    vk->f.vkCmdDispatch = count_dispatch, vk->f.vkCmdPipelineBarrier = count_barrier;
    vk->f.vkCmdCopyBuffer = count_copy, vk->f.vkCmdUpdateBuffer = count_update, vk->f.vkCmdFillBuffer = count_fill;
    vk->f.vkCmdBindPipeline = count_bind_pipeline, vk->f.vkCmdBindDescriptorSets = count_bind_sets;
    vk->f.vkCmdPushConstants = count_push;
    pthread_mutex_unlock(&vk->lock);
}

void pkv_vk_cmd_probe_off(pkv_vk *vk, pkv_vk_cmd_probe *got)
{
    pthread_mutex_lock(&vk->lock);
    vk->f = g_probe.real;
    pthread_mutex_unlock(&vk->lock);
    *got = g_probe.got;
}

/* One step of every layer through the recorded (cmd != NULL) or the synchronous calls; *attn_ms the
 * sum of the synchronous attention ops' device times. */
static pkv_status step(pkv_cache *c, const step_io *io, const pkv_seq *seqs, uint32_t n_q_heads, VkCommandBuffer cmd,
                       double *attn_ms)
{
    pkv_status s = PKV_OK;
    *attn_ms = 0;
    for (uint32_t l = 0; l < io->L && s == PKV_OK; l++) {
        /* every sequence's token of the layer in one append (K of the B sequences back to back, then V) */
        const VkDeviceSize kv = (VkDeviceSize)io->B * io->kv_bytes;
        s = cmd ? pkv_vulkan_cmd_append_batch(c, cmd, seqs, io->B, l, 1, io->vb, off_k(io, l, 0), kv, io->vb, off_v(io, l, 0),
                                              kv, PKV_F32)
                : pkv_vulkan_append_batch(c, seqs, io->B, l, 1, io->vb, off_k(io, l, 0), kv, io->vb, off_v(io, l, 0), kv,
                                          PKV_F32);
        pkv_attention_params p = pkv_attention_params_default();
        p.seqs = seqs, p.n_seqs = io->B, p.layer = l, p.n_q_heads = n_q_heads;
        if (s == PKV_OK)
            s = cmd ? pkv_vulkan_cmd_attention(c, cmd, &p, io->vb, off_q(io, l), io->q_bytes, io->vb, off_out(io, l), io->q_bytes)
                    : pkv_vulkan_attention(c, &p, io->vb, off_q(io, l), io->q_bytes, io->vb, off_out(io, l), io->q_bytes);
        double ms;
        if (s == PKV_OK && !cmd) *attn_ms = pkv_last_op_time(c->ctx, &ms) == PKV_OK && isfinite(*attn_ms) ? *attn_ms + ms : NAN;
    }
    return s;
}

pkv_status pkv_vulkan_bench_decode_step(pkv_cache *c, const pkv_seq *seqs, uint32_t n_seqs, uint32_t n_q_heads,
                                        uint32_t steps, pkv_vk_step_times *t)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || c->ctx->be->info.backend != PKV_BACKEND_VULKAN || !seqs || !n_seqs || !t || !steps)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "decode step: needs a Vulkan cache, sequences and steps");
    pkv_vk *vk = pkv_vk_of(c->ctx->be);
    const uint32_t H = c->g.H, d = c->g.d, warm = 2, total = warm + steps;
    step_io io = {.vk = vk, .kv_bytes = (size_t)H * d * 4, .q_bytes = (size_t)n_seqs * n_q_heads * d * 4,
                  .L = c->cfg.n_layers, .B = n_seqs};
    const size_t bytes = off_k(&io, io.L, 0);
    double *rec = malloc(3 * total * sizeof *rec), *host = rec + total, *rec_host = host + total;
    double *sync = malloc(2 * total * sizeof *sync), *attn = sync + total;
    float *data = malloc(bytes);
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    VkQueryPool qp = VK_NULL_HANDLE;
    pkv_status s = rec && sync && data ? PKV_OK : pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "decode step: out of host memory");
    /* K, V, q in device memory: values in [-1, 1) */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; s == PKV_OK && i < bytes / 4; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
    pthread_mutex_lock(&vk->lock);
    if (s == PKV_OK) s = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (s == PKV_OK) s = pkv_vk_buf_alloc(vk, bytes, &io.buf);
    if (s == PKV_OK) s = pkv_vk_upload(vk, io.buf, 0, data, bytes);
    if (s == PKV_OK) s = pkv_vk_finish(vk);
    if (s == PKV_OK) io.vb = io.buf->page->buf, io.base = io.buf->off;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                 .queryCount = 2};
    if (s == PKV_OK && (vk->f.vkAllocateCommandBuffers(vk->device, &cai, &cmd) != VK_SUCCESS ||
                        vk->f.vkCreateFence(vk->device, &fci, NULL, &fence) != VK_SUCCESS))
        s = pkv_fail(NULL, PKV_ERR_DEVICE, "decode step: command buffer or fence creation failed");
    if (s == PKV_OK && vk->ts_mask && vk->f.vkCreateQueryPool(vk->device, &qpi, NULL, &qp) != VK_SUCCESS) qp = VK_NULL_HANDLE;
    pthread_mutex_unlock(&vk->lock);

    /* The recorded steps back to back, as an engine's decode loop runs them (record, submit, wait for
     * the token); the synchronous steps after them in a loop of their own. Until session 8 each
     * recorded step followed a synchronous one (64 submits and waits through the same library state
     * and driver), which left the host's caches and clocks in a state no engine's recording sees
     * (docs/BENCH.md); PKV_BENCH_STEP_INTERLEAVE=1 brings that order back, for comparison. */
    const char *il = getenv("PKV_BENCH_STEP_INTERLEAVE");
    const int interleave = il && *il && strcmp(il, "0") != 0;
    pkv_rusage_sum ru = {0}; /* over the timed recordings */
    for (uint32_t i = 0; i < total && s == PKV_OK; i++) {
        /* recorded: one command buffer, one submit */
        const VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                             .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        double t0 = now_ms(), a;
        if (vk->f.vkBeginCommandBuffer(cmd, &bi) != VK_SUCCESS) s = pkv_fail(NULL, PKV_ERR_DEVICE, "decode step: vkBeginCommandBuffer failed");
        if (s == PKV_OK && qp) {
            vk->f.vkCmdResetQueryPool(cmd, qp, 0, 2);
            vk->f.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
        }
        const int count = i == warm - 1; /* the last warm-up step: its commands counted, its time not used */
        if (count) pkv_vk_cmd_probe_on(vk, 0);
        /* the recording figure: the library's calls alone (every layer's append and attention), not
         * the bench's vkBegin/EndCommandBuffer and timestamps */
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        const double r0 = now_ms();
        if (s == PKV_OK) s = step(c, &io, seqs, n_q_heads, cmd, &a);
        const double r1 = now_ms();
        getrusage(RUSAGE_SELF, &ru1);
        if (i >= warm) pkv_rusage_add(&ru, &ru0, &ru1);
        if (count) {
            pkv_vk_cmd_probe got;
            pkv_vk_cmd_probe_off(vk, &got);
            t->per_layer.dispatches = (double)got.dispatches / io.L, t->per_layer.barriers = (double)got.barriers / io.L;
            t->per_layer.transfers = (double)got.transfers / io.L;
            t->per_layer.commands = (double)pkv_vk_cmd_probe_commands(&got) / io.L;
        }
        if (s == PKV_OK && qp) vk->f.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 1);
        if (s == PKV_OK && vk->f.vkEndCommandBuffer(cmd) != VK_SUCCESS) s = pkv_fail(NULL, PKV_ERR_DEVICE, "decode step: vkEndCommandBuffer failed");
        if (s == PKV_OK) {
            VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
            pthread_mutex_lock(&vk->lock);
            if (vk->ext_lock) vk->ext_lock(vk->ext_lock_user);
            VkResult r = vk->f.vkQueueSubmit(vk->queue, 1, &si, fence);
            if (vk->ext_unlock) vk->ext_unlock(vk->ext_lock_user);
            pthread_mutex_unlock(&vk->lock);
            if (r == VK_SUCCESS) r = vk->f.vkWaitForFences(vk->device, 1, &fence, VK_TRUE, UINT64_MAX);
            vk->f.vkResetFences(vk->device, 1, &fence);
            if (r != VK_SUCCESS) s = pkv_fail(NULL, PKV_ERR_DEVICE, "decode step: submit or wait failed (VkResult %d)", (int)r);
        }
        rec_host[i] = now_ms() - t0;
        host[i] = (r1 - r0) * 1e3 / io.L;
        uint64_t ts[2];
        rec[i] = s == PKV_OK && qp &&
                         vk->f.vkGetQueryPoolResults(vk->device, qp, 0, 2, sizeof ts, ts, 8,
                                                     VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS
                     ? (double)((ts[1] - ts[0]) & vk->ts_mask) * vk->props.limits.timestampPeriod * 1e-6
                     : NAN;
        vk->f.vkResetCommandBuffer(cmd, 0);
        if (interleave && s == PKV_OK) { /* the old order: the synchronous step right after */
            t0 = now_ms();
            s = step(c, &io, seqs, n_q_heads, VK_NULL_HANDLE, &attn[i]);
            sync[i] = now_ms() - t0;
        }
    }
    for (uint32_t i = 0; !interleave && i < total && s == PKV_OK; i++) { /* synchronous: the same step, call by call */
        const double t0 = now_ms();
        s = step(c, &io, seqs, n_q_heads, VK_NULL_HANDLE, &attn[i]);
        sync[i] = now_ms() - t0;
    }
    const char *show = getenv("PKV_BENCH_RUSAGE"); /* issue 13's diagnostics: what the recording waits on */
    if (s == PKV_OK && show && *show && *show != '0')
        fprintf(stderr, "pkv bench: decode step batch %u: per recorded step %.2f minor faults, %.2f major, %.2f voluntary / %.2f involuntary switches\n",
                n_seqs, (double)ru.minflt / steps, (double)ru.majflt / steps, (double)ru.nvcsw / steps, (double)ru.nivcsw / steps);
    if (s == PKV_OK) {
        t->recorded_ms = median(rec + warm, steps);
        t->record_us_per_layer = median(host + warm, steps);
        t->recorded_host_ms = median(rec_host + warm, steps);
        t->synchronous_ms = median(sync + warm, steps);
        t->attention_kernels_ms = median(attn + warm, steps);
    }
    pthread_mutex_lock(&vk->lock);
    if (qp) vk->f.vkDestroyQueryPool(vk->device, qp, NULL);
    if (fence) vk->f.vkDestroyFence(vk->device, fence, NULL);
    if (cmd) vk->f.vkFreeCommandBuffers(vk->device, vk->cmd_pool, 1, &cmd);
    if (io.buf) pkv_vk_buf_free(vk, io.buf);
    pthread_mutex_unlock(&vk->lock);
    free(rec), free(sync), free(data);
    return s;
}
