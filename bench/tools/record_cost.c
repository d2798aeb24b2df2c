/* pkv-record-cost: a developer's tool for the host cost of recording an engine-mode decode step on
 * Vulkan (issue 13's "host recording per layer"), without the device's work in the way. One sequence
 * of C tokens is prompted through the host path (PATTERN 2-bit, 8 kv heads, head_dim 128, 32 query
 * heads), forked to B sequences (copy-on-write: the same block tables' length), then N decode steps
 * are recorded into one command buffer each (per layer pkv_vulkan_cmd_append_batch +
 * pkv_vulkan_cmd_attention, K/V/q/out in a device buffer) and the command buffer is reset WITHOUT
 * being submitted: only recording is timed (vkBeginCommandBuffer .. vkEndCommandBuffer, the
 * library's and the driver's host work). The cache's host state advances as if the steps ran (windows
 * fill and flush on schedule); the device's never does, so the results are for timing only. Prints
 * the median, 10th and 90th percentile of us per layer at batch 1 and at batch B.
 *
 *   pkv-record-cost CONTEXT BATCH LAYERS STEPS        (e.g. 32768 8 4 300)
 *   PKV_RECORD_COST_ONLY=append|attention             records that call alone (where the cost grows)
 *
 * Each batch's timed steps follow 20 untimed ones (PKV_RECORD_COST_WARMUP=N: N; before session 8
 * none, and the first batch's figure may have included the host's warm-up: on the H200 batch 1 read
 * 10.5 us per layer and batch 8, timed after it, 9.1). Under callgrind, PKV_RECORD_COST_WARMUP=0
 * keeps the count per layer the total over LAYERS x STEPS.
 *
 * PKV_RECORD_COST_SUBMIT=1: each step's command buffer is also submitted and waited for after it is
 * timed (as pkv bench --decode-step and an engine do), to see whether recording after the device ran
 * a step costs more (issue 13: the bench's figure is ~2x this tool's). With either, the page faults
 * and context switches of the timed recordings are printed too (getrusage).
 *
 * Also the mean CPU time of the recording thread per layer (reset included): on a loaded machine a
 * steadier figure than the clock's, which counts the time other processes hold the core. Under perf
 * (`perf record -g`), the library's own share is the samples outside the driver's DSO.
 *
 * PKV_RECORD_COST_DRIVER=0: the driver left out. The recorded calls' vkCmd* commands go to the
 * command probe (vk_bench.h), which counts them and does not pass them on: the figures are then the
 * library's own recording work (plus a counting call per command), and the driver's share is the
 * difference to a run without it (run the two one after the other: the host's speed drifts). The
 * command buffers hold nothing then; with PKV_RECORD_COST_SUBMIT they are not submitted. The
 * commands per layer are printed either way with PKV_RECORD_COST_DRIVER set (=1: passed on). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "patternkv_vulkan.h"
#include "vk_bench.h"
#include "vk_internal.h"

static double clock_us(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}
static double now_us(void) { return clock_us(CLOCK_MONOTONIC); }

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fail(const char *what)
{
    fprintf(stderr, "pkv-record-cost: %s: %s\n", what, pkv_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: pkv-record-cost CONTEXT BATCH LAYERS STEPS\n");
        return 2;
    }
    const uint32_t C = (uint32_t)atoi(argv[1]), BB = (uint32_t)atoi(argv[2]), L = (uint32_t)atoi(argv[3]),
                   steps = (uint32_t)atoi(argv[4]), H = 8, d = 128, QH = 32;
    if (!C || !BB || BB > 256 || !L || !steps) return fprintf(stderr, "pkv-record-cost: bad arguments\n"), 2;
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = PKV_BACKEND_VULKAN;
    pkv_context *ctx;
    if (pkv_context_create(&cp, &ctx) != PKV_OK) return fail("context");
    pkv_cache_config cc = pkv_cache_config_default();
    cc.n_layers = L, cc.n_kv_heads = H, cc.head_dim = d, cc.k_bits = cc.v_bits = 2, cc.mode = PKV_MODE_PATTERN;
    cc.memory_budget = (uint64_t)L * BB * H * ((uint64_t)C + 2 * steps + 1024) * d * 4 + (64ull << 20);
    pkv_cache *c;
    if (pkv_cache_create(ctx, &cc, &c) != PKV_OK || pkv_prewarm(c, QH, 1) != PKV_OK) return fail("cache");
    pkv_seq seqs[256];
    const size_t n = (size_t)C * H * d;
    float *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
    double *t = malloc(steps * sizeof *t);
    if (!k || !v || !t) return fprintf(stderr, "pkv-record-cost: out of memory\n"), 1;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        k[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0), v[i] = 0.5f * k[i];
    }
    if (pkv_seq_create(c, &seqs[0]) != PKV_OK) return fail("sequence");
    for (uint32_t l = 0; l < L; l++) /* in pieces: a device's largest buffer may hold less than the prompt */
        for (uint32_t at = 0; at < C; at += 2048) {
            const uint32_t m = C - at < 2048 ? C - at : 2048;
            const size_t o = (size_t)at * H * d;
            if (pkv_append(c, seqs[0], l, m, k + o, v + o, PKV_F32) != PKV_OK) return fail("prompt");
        }
    for (uint32_t b = 1; b < BB; b++)
        if (pkv_seq_fork(c, seqs[0], &seqs[b]) != PKV_OK) return fail("fork");
    pkv_vk *vk = pkv_vk_of(ctx->be);
    const size_t kvb = (size_t)BB * H * d * 4, qb = (size_t)BB * QH * d * 4, per_layer = 2 * kvb + 2 * qb;
    pkv_buf *io = NULL;
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_buf_alloc(vk, L * per_layer, &io);
    if (s == PKV_OK) s = pkv_vk_finish(vk);
    pthread_mutex_unlock(&vk->lock);
    if (s != PKV_OK) return fail("buffer");
    VkCommandBuffer cmd;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    if (vk->f.vkAllocateCommandBuffers(vk->device, &cai, &cmd) != VK_SUCCESS) return fprintf(stderr, "no command buffer\n"), 1;
    const VkBuffer vb = io->page->buf;
    const char *only_env = getenv("PKV_RECORD_COST_ONLY"); /* "append" or "attention": that call alone */
    const int only = !only_env ? 0 : !strcmp(only_env, "append") ? 1 : !strcmp(only_env, "attention") ? 2 : 0;
    const char *warm_env = getenv("PKV_RECORD_COST_WARMUP"); /* untimed steps before each batch's (default 20) */
    const uint32_t warm = warm_env ? (uint32_t)atoi(warm_env) : 20;
    const char *submit_env = getenv("PKV_RECORD_COST_SUBMIT");
    const int submit = submit_env && atoi(submit_env) > 0;
    const char *driver_env = getenv("PKV_RECORD_COST_DRIVER"); /* set: probed; "0": without the driver */
    const int probe = driver_env && *driver_env, no_driver = probe && atoi(driver_env) == 0;
    VkFence fence = VK_NULL_HANDLE;
    const VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (submit && vk->f.vkCreateFence(vk->device, &fci, NULL, &fence) != VK_SUCCESS) return fprintf(stderr, "no fence\n"), 1;
    for (uint32_t B = 1;; B = BB) {
        double c0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
        struct rusage ru0 = {0}, ru1;
        pkv_rusage_sum ru = {0};
        for (uint32_t i = 0; i < warm + steps; i++) {
            if (i == warm) c0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
            if (i == warm && probe) pkv_vk_cmd_probe_on(vk, no_driver);
            getrusage(RUSAGE_SELF, &ru0);
            const VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
            const double t0 = now_us();
            vk->f.vkBeginCommandBuffer(cmd, &bi);
            for (uint32_t l = 0; l < L; l++) {
                const VkDeviceSize o = io->off + l * per_layer;
                pkv_attention_params p = pkv_attention_params_default();
                p.seqs = seqs, p.n_seqs = B, p.layer = l, p.n_q_heads = QH;
                if ((only != 2 && pkv_vulkan_cmd_append_batch(c, cmd, seqs, B, l, 1, vb, o, kvb, vb, o + kvb, kvb, PKV_F32) != PKV_OK) ||
                    (only != 1 && pkv_vulkan_cmd_attention(c, cmd, &p, vb, o + 2 * kvb, qb, vb, o + 2 * kvb + qb, qb) != PKV_OK))
                    return fail("recording");
            }
            vk->f.vkEndCommandBuffer(cmd);
            if (i >= warm) t[i - warm] = (now_us() - t0) / L;
            getrusage(RUSAGE_SELF, &ru1);
            if (i >= warm) pkv_rusage_add(&ru, &ru0, &ru1);
            if (submit && !no_driver) {
                const VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
                pthread_mutex_lock(&vk->lock);
                VkResult r = vk->f.vkQueueSubmit(vk->queue, 1, &si, fence);
                pthread_mutex_unlock(&vk->lock);
                if (r == VK_SUCCESS) r = vk->f.vkWaitForFences(vk->device, 1, &fence, VK_TRUE, UINT64_MAX);
                vk->f.vkResetFences(vk->device, 1, &fence);
                if (r != VK_SUCCESS) return fprintf(stderr, "pkv-record-cost: submit failed (%d)\n", (int)r), 1;
            }
            vk->f.vkResetCommandBuffer(cmd, 0);
        }
        const double cpu = (clock_us(CLOCK_THREAD_CPUTIME_ID) - c0) / steps / L;
        pkv_vk_cmd_probe got = {0};
        if (probe) pkv_vk_cmd_probe_off(vk, &got);
        qsort(t, steps, sizeof *t, cmp);
        printf("context %u batch %u layers %u: record us/layer median %.2f p10 %.2f p90 %.2f", C, B, L, t[steps / 2],
               t[steps / 10], t[steps * 9 / 10]);
        printf(", cpu us/layer %.2f%s; per step: %.2f minor faults, %.2f major, %.2f voluntary / %.2f involuntary switches\n",
               cpu, submit ? " (each step submitted)" : "", (double)ru.minflt / steps, (double)ru.majflt / steps,
               (double)ru.nvcsw / steps, (double)ru.nivcsw / steps);
        if (probe) {
            const double per = (double)steps * L;
            printf("  %s: %.1f commands per layer (%.1f dispatches, %.1f barriers, %.1f transfers, %.1f binds, %.1f "
                   "pushes)\n", no_driver ? "without the driver (PKV_RECORD_COST_DRIVER=0)" : "commands passed on",
                   (double)pkv_vk_cmd_probe_commands(&got) / per, got.dispatches / per, got.barriers / per,
                   got.transfers / per, got.binds / per, got.pushes / per);
        }
        if (B == BB) break;
    }
    if (fence) vk->f.vkDestroyFence(vk->device, fence, NULL);
    free(k), free(v), free(t);
    pkv_cache_free(c); /* freeing with unsubmitted recordings: fine here, nothing was submitted */
    pkv_context_free(ctx);
    return 0;
}
