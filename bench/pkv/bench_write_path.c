/* The write path (--write-path): a prompt of T tokens appended to L layers of one sequence in one
 * pkv_append_layers call (PATTERN mode mines here), then decode steps that append one token to all
 * L layers in one call, of which every R-th flushes a full window of every layer. Per config:
 *   prefill_ms            device time of the prompt's call (pkv_last_op_time: every op of the call,
 *                         timestamps on GPUs), the median of PROMPTS prompts after a first (which
 *                         grows the scratch buffers: prefill_first_ms); prefill_host_ms the median
 *                         wall time of those calls;
 *   flush_ms_per_window   median device time of a decode step that flushes (all layers), host too;
 *                         on Vulkan the queue is drained before such a step (the window writes of
 *                         earlier steps wait for the next op): flush_queued_ms is the median host
 *                         time of that drain (earlier steps' device work, not the flush's),
 *                         round_trip_ms of an empty submission and wait after it (driver and GPU
 *                         latency of one synchronous op; NAN elsewhere);
 *   append_all_layers_us  median wall time of a decode step that does not flush;
 *   startup_cold/warm_ms  context, cache (the write path's pipelines), a first prompt and a first
 *                         attention at the row's shape, with an empty / a filled pipeline cache;
 *                         startup_cold/warm its split (startup_split: the driver's instance and
 *                         device, the rest of the context, the cache, the first result).
 * Every layer gets the same tokens (the data's layer 0): a real model's layers differ, which changes
 * the k-means iterations a prompt takes but not the work per iteration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h" /* the context's backend, for the Vulkan drain probe */
#include "kv_data.h"
#ifdef PKV_CLI_WITH_VULKAN
#include "vk_bench.h"
#endif
#include "bench_util.h"
#include "timer.h"

#define FLUSHES 3u       /* decode windows timed per config */
#define PROMPTS 3u       /* prompts timed per config (after one untimed): a shared machine's noise */

static int fail(char *err, size_t err_len, const char *what, pkv_status s)
{
    snprintf(err, err_len, "write path: %s: %s: %s", what, pkv_status_string(s), pkv_last_error());
    return -1;
}

/* A budget no row can exceed: every token of every layer in fp16, full banks, windows. */
static uint64_t budget_for(uint32_t L, uint32_t H, uint32_t d, uint32_t T, uint32_t R)
{
    uint64_t per_head = ((uint64_t)T + 4 * R) * d * 4 + 256ull * d * 4 + 2ull * R * d * 2;
    return (uint64_t)L * H * per_head + (64ull << 20);
}

/* Before a step that will flush (Vulkan): what earlier steps queued (their window writes wait for the
 * next op) submitted and waited for, so that the flush step's host time is its own; *queued_ms the
 * host time of that, *round_trip_ms of an empty submission after it. 0 when done. */
static int drain_queue(pkv_context *ctx, double *queued_ms, double *round_trip_ms)
{
#ifdef PKV_CLI_WITH_VULKAN
    if (ctx->be->info.backend == PKV_BACKEND_VULKAN) return pkv_vulkan_drain(ctx->be, queued_ms, round_trip_ms) == PKV_OK ? 0 : -1;
#endif
    (void)ctx, (void)queued_ms, (void)round_trip_ms;
    return -1;
}

static double device_ms(pkv_context *ctx)
{
    double ms;
    return pkv_last_op_time(ctx, &ms) == PKV_OK ? ms : NAN;
}

static int run_config(pkv_context *ctx, const bench_options *o, const bench_config *cfg, uint32_t L, uint32_t T,
                      const uint16_t *pk, const uint16_t *pv, const uint16_t *dk, const uint16_t *dv, uint32_t n_dec,
                      uint32_t H, uint32_t d, write_path_result *wr, char *err, size_t err_len)
{
    pkv_cache_config cc = bench_cache_config(o, cfg, L, H, d);
    const uint32_t R = cc.window ? cc.window : cc.group_size;
    cc.memory_budget = budget_for(L, H, d, T + n_dec, R);
    pkv_cache *cache = NULL;
    const void **kp = malloc(L * sizeof *kp), **vp = malloc(L * sizeof *vp);
    double *app = malloc((n_dec + 1) * sizeof *app), *fl_dev = malloc((n_dec + 1) * sizeof *fl_dev),
           *fl_host = malloc((n_dec + 1) * sizeof *fl_host), *fl_q = malloc((n_dec + 1) * sizeof *fl_q),
           *fl_rt = malloc((n_dec + 1) * sizeof *fl_rt);
    int rc = -1;
    if (!kp || !vp || !app || !fl_dev || !fl_host || !fl_q || !fl_rt) {
        snprintf(err, err_len, "write path: out of host memory");
        goto done;
    }
    double t0 = cli_now();
    pkv_status s = pkv_cache_create(ctx, &cc, &cache);
    wr->cache_create_ms = (cli_now() - t0) * 1e3;
    if (s != PKV_OK) {
        rc = fail(err, err_len, "cache", s);
        goto done;
    }
    for (uint32_t l = 0; l < L; l++) kp[l] = pk, vp[l] = pv;
    pkv_seq seq = 0;
    double pre_dev[PROMPTS], pre_host[PROMPTS];
    for (uint32_t pass = 0; pass <= PROMPTS; pass++) { /* the first grows the scratch buffers; the rest are timed */
        if (pass) pkv_seq_free(cache, seq);
        if ((s = pkv_seq_create(cache, &seq)) != PKV_OK) {
            rc = fail(err, err_len, "sequence", s);
            goto done;
        }
        pkv_append_params ap = pkv_append_params_default();
        ap.seq = seq, ap.n_tokens = T, ap.dtype = PKV_F16;
        t0 = cli_now();
        s = pkv_append_layers(cache, &ap, kp, vp);
        double host = (cli_now() - t0) * 1e3;
        if (s != PKV_OK) {
            rc = fail(err, err_len, "prompt", s);
            goto done;
        }
        if (pass == 0) wr->prefill_first_ms = host;
        else pre_host[pass - 1] = host, pre_dev[pass - 1] = device_ms(ctx);
    }
    wr->prefill_ms = bench_median(pre_dev, PROMPTS);
    wr->prefill_host_ms = bench_median(pre_host, PROMPTS);
    /* decode: one token to every layer per call; the calls that compress a window are flushes */
    uint32_t na = 0, nf = 0;
    pkv_cache_stats st = {.struct_size = sizeof st};
    pkv_cache_stats_get(cache, &st);
    uint64_t compressed = st.tokens_compressed;
    uint32_t in_window = (uint32_t)((st.tokens_stored - st.tokens_compressed) / L), nq = 0;
    for (uint32_t i = 0; i < n_dec; i++) {
        for (uint32_t l = 0; l < L; l++) kp[l] = dk + (size_t)i * H * d, vp[l] = dv + (size_t)i * H * d;
        pkv_append_params ap = pkv_append_params_default();
        ap.seq = seq, ap.n_tokens = 1, ap.dtype = PKV_F16;
        if (in_window + 1 == R && drain_queue(ctx, &fl_q[nq], &fl_rt[nq]) == 0) nq++;
        in_window = (in_window + 1) % R;
        t0 = cli_now();
        s = pkv_append_layers(cache, &ap, kp, vp);
        double host = (cli_now() - t0) * 1e3;
        if (s != PKV_OK) {
            rc = fail(err, err_len, "decode append", s);
            goto done;
        }
        pkv_cache_stats_get(cache, &st);
        if (st.tokens_compressed != compressed) fl_dev[nf] = device_ms(ctx), fl_host[nf++] = host;
        else app[na++] = host * 1e3;
        compressed = st.tokens_compressed;
    }
    wr->append_all_layers_us = bench_median(app, na);
    wr->flush_ms_per_window = bench_median(fl_dev, nf);
    wr->flush_host_ms_per_window = bench_median(fl_host, nf);
    wr->flush_queued_ms = nq ? bench_median(fl_q, nq) : NAN;
    wr->round_trip_ms = nq ? bench_median(fl_rt, nq) : NAN;
    wr->flushes = nf;
    rc = 0;
done:
    if (cache) pkv_cache_free(cache);
    free((void *)kp), free((void *)vp), free(app), free(fl_dev), free(fl_host), free(fl_q), free(fl_rt);
    return rc;
}

int bench_write_path(pkv_context *ctx, const pkv_context_params *cp, const bench_options *o, const kv_data *data,
                     bench_report *r, bench_progress_fn progress, void *user, char *err, size_t err_len)
{
    pkv_device_info dev = {.struct_size = sizeof dev};
    pkv_context_device(ctx, &dev, NULL, 0);
    const int cpu_like = dev.type == PKV_DEVICE_CPU;
    const uint32_t L = o->wp_layers ? o->wp_layers : (cpu_like ? 4 : 32);
    const uint32_t T = o->wp_prompt ? o->wp_prompt : (cpu_like ? 2048 : 32768);
    const uint32_t H = data->n_kv_heads, d = data->head_dim;
    uint32_t R = 0; /* the largest window of the configs: each decodes FLUSHES of them */
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const pkv_cache_config cc = bench_cache_config(o, &o->configs[i], 1, H, d);
        const uint32_t w = cc.window ? cc.window : cc.group_size;
        if (w > R) R = w;
    }
    const uint32_t n_dec = FLUSHES * R;
    const size_t pn = (size_t)T * H * d, dn = (size_t)n_dec * H * d;
    const size_t fn = pn > dn ? pn : dn; /* the fp32 buffers hold the prompt, then the decode tokens */
    float *fk = malloc(fn * sizeof *fk), *fv = malloc(fn * sizeof *fv);
    uint16_t *pk = malloc(pn * 2), *pv = malloc(pn * 2), *dk = malloc(dn * 2), *dv = malloc(dn * 2);
    int rc = -1;
    if (!fk || !fv || !pk || !pv || !dk || !dv) {
        snprintf(err, err_len, "write path: out of host memory for a %u-token prompt", T);
        goto done;
    }
    /* fp16 input, made once: the host's fp32 conversion is not what this measures */
    kv_data_tokens(data, 0, 0, T, fk, fv);
    pkv_f32_to_f16_array(fk, pk, pn);
    pkv_f32_to_f16_array(fv, pv, pn);
    kv_data_tokens(data, 0, T, n_dec, fk, fv);
    pkv_f32_to_f16_array(fk, dk, dn);
    pkv_f32_to_f16_array(fv, dv, dn);
    r->wp_layers = L, r->wp_prompt = T, r->wp_kv_heads = H, r->wp_head_dim = d;
    r->n_write_path = 0;
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const bench_config *c = &o->configs[i];
        if (progress) {
            char label[64];
            snprintf(label, sizeof label, "write path %s %u/%u", pkv_mode_name(c->mode), c->k_bits, c->v_bits);
            progress(user, (double)i / o->n_configs, label);
        }
        write_path_result *wr = &r->write_path[r->n_write_path];
        memset(wr, 0, sizeof *wr);
        wr->cfg = *c;
        if (run_config(ctx, o, c, L, T, pk, pv, dk, dv, n_dec, H, d, wr, err, err_len)) goto done;
        wr->device_timed = dev.backend != PKV_BACKEND_CPU && isfinite(wr->prefill_ms);
        pkv_cache_config sc = bench_cache_config(o, c, 1, H, d);
        sc.memory_budget = budget_for(1, H, d, 2 * sc.group_size, sc.group_size);
        char serr[256];
        wr->startup_cold_ms = wr->startup_warm_ms = NAN;
        wr->startup_cold = wr->startup_warm = (startup_split){NAN, NAN, NAN, NAN, NAN};
        if (bench_startup_split_for(cp, &sc, &wr->startup_cold, &wr->startup_warm, serr, sizeof serr))
            fprintf(stderr, "pkv bench: write-path startup timing failed: %s\n", serr);
        else
            wr->startup_cold_ms = wr->startup_cold.total_ms, wr->startup_warm_ms = wr->startup_warm.total_ms;
        r->n_write_path++;
    }
    rc = 0;
done:
    free(fk), free(fv), free(pk), free(pv), free(dk), free(dv);
    return rc;
}
