/* Speed and throughput: one single-layer cache per config grows through the requested context
 * lengths (prefill, then one-token appends that are timed for the append/flush throughput, then
 * window-sized appends). At each length, decode attention (q_len = 1) is timed over a batch of
 * distinct sequences of that length (the same tokens, stored apart: nothing is shared). On GPUs the
 * timed steps rotate among copies of that cache (saved once, loaded again) until the copies hold at
 * least ROTATE_BYTES, so every step reads its cache from memory rather than from the L2 the previous
 * step filled. A step's time is the device's (timestamps, pkv_last_op_time) on GPUs, else the host
 * clock around pkv_attention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_util.h"
#include "gpu_clocks.h"
#include "kv_data.h"
#include "timer.h"

/* Default timing (--steps not given): at least AUTO_MIN_STEPS steps and AUTO_SECONDS of them,
 * at most AUTO_MAX_STEPS. With --steps N: at least N steps and MIN_TIMED_SECONDS, at most 20 N. */
#define AUTO_MIN_STEPS 20u
#define AUTO_MAX_STEPS 200u
#define AUTO_SECONDS 0.5
#define MIN_TIMED_SECONDS 0.25
#define MAX_STEPS_FACTOR 20u
#define PREFILL_TOKENS 256u
/* More than twice the last-level cache of current GPUs (H200: 60 MB of L2). */
#define ROTATE_BYTES (256.0 * 1024 * 1024)
#define MAX_ROTATION 16u

typedef struct grow_state {
    pkv_context *ctx;
    pkv_cache *cache;
    pkv_seq seq;
    pkv_seq *others;    /* further sequences for the timed batches, same tokens as seq */
    uint32_t n_others;
    uint32_t length;
    float *kbuf, *vbuf;
    uint32_t buf_tokens;
    float *fill_k, *fill_v; /* fill_others' tokens */
} grow_state;

static int device_is_gpu(pkv_context *ctx)
{
    pkv_device_info info = {.struct_size = sizeof info};
    return pkv_context_device(ctx, &info, NULL, 0) == PKV_OK && info.type != PKV_DEVICE_CPU;
}

static int fail(char *err, size_t err_len, const char *what, pkv_status s)
{
    snprintf(err, err_len, "%s: %s: %s", what, pkv_status_string(s), pkv_last_error());
    return -1;
}

static int append_tokens(grow_state *g, const kv_data *d, uint32_t n, double *seconds, char *err, size_t err_len)
{
    kv_data_tokens(d, 0, g->length, n, g->kbuf, g->vbuf);
    double t0 = cli_now();
    pkv_status s = pkv_append(g->cache, g->seq, 0, n, g->kbuf, g->vbuf, PKV_F32);
    if (seconds) *seconds = cli_now() - t0;
    if (s != PKV_OK) {
        char what[96];
        snprintf(what, sizeof what, "append of %u tokens at %u", n, g->length);
        return fail(err, err_len, what, s);
    }
    g->length += n;
    return 0;
}

/* The prompt just appended (g->kbuf, g->vbuf: n tokens), again into PREFILL_REPEATS fresh sequences,
 * each freed after: tokens/s of the median (each mines its own patterns in PATTERN mode). */
static int time_prefills(grow_state *g, uint32_t n, double *tokens_per_s, char *err, size_t err_len)
{
    double sec[PREFILL_REPEATS];
    for (uint32_t i = 0; i < PREFILL_REPEATS; i++) {
        pkv_seq seq;
        pkv_status s = pkv_seq_create(g->cache, &seq);
        if (s != PKV_OK) return fail(err, err_len, "sequence for the prefill", s);
        double t0 = cli_now();
        s = pkv_append(g->cache, seq, 0, n, g->kbuf, g->vbuf, PKV_F32);
        sec[i] = cli_now() - t0;
        pkv_status f = pkv_seq_free(g->cache, seq);
        if (s != PKV_OK || f != PKV_OK) return fail(err, err_len, "prefill", s != PKV_OK ? s : f);
    }
    double med = bench_median(sec, PREFILL_REPEATS);
    *tokens_per_s = med > 0 ? n / med : NAN;
    return 0;
}

/* One-token appends, timed; those that move tokens into blocks are flushes. */
static int measure_appends(grow_state *g, const kv_data *d, uint32_t n, throughput_result *tr, char *err,
                           size_t err_len)
{
    double *plain = malloc((n + 1) * sizeof(double)), flush_time = 0;
    uint64_t flush_tokens = 0;
    size_t n_plain = 0;
    if (!plain) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    pkv_cache_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    pkv_status s = pkv_cache_stats_get(g->cache, &before);
    for (uint32_t i = 0; s == PKV_OK && i < n; i++) {
        double sec;
        if (append_tokens(g, d, 1, &sec, err, err_len)) {
            free(plain);
            return -1;
        }
        s = pkv_cache_stats_get(g->cache, &after);
        if (s != PKV_OK) break;
        if (after.tokens_compressed > before.tokens_compressed) {
            flush_time += sec;
            flush_tokens += after.tokens_compressed - before.tokens_compressed;
        } else {
            plain[n_plain++] = sec;
        }
        before = after;
    }
    if (s != PKV_OK) {
        free(plain);
        return fail(err, err_len, "stats", s);
    }
    double med = bench_median(plain, n_plain);
    tr->append_tokens_per_s = med > 0 ? 1.0 / med : NAN;
    tr->flush_tokens_per_s = flush_time > 0 ? (double)flush_tokens / flush_time : NAN;
    free(plain);
    return 0;
}

static uint64_t seq_bytes(const pkv_cache_stats *st)
{
    return st->bytes_codes + st->bytes_scales + st->bytes_indices + st->bytes_masks + st->bytes_padding +
           st->bytes_patterns + st->bytes_window;
}

/* Creates the other sequences of the batch when needed and fills them to g->length, in appends of
 * up to FILL_TOKENS: window-sized appends of 7 x 32K tokens (a flush and a submit each) made the
 * H200's batch-8 bench run past 170 s per backend. The first append of each is mined as a prompt. */
#define FILL_TOKENS 4096u
static int fill_others(grow_state *g, const kv_data *d, uint32_t want, char *err, size_t err_len)
{
    if (!g->others && want && !(g->others = calloc(want, sizeof *g->others))) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (want && !g->fill_k) {
        size_t n = (size_t)FILL_TOKENS * d->n_kv_heads * d->head_dim;
        g->fill_k = malloc(n * sizeof(float));
        g->fill_v = malloc(n * sizeof(float));
        if (!g->fill_k || !g->fill_v) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
    }
    uint32_t from = g->length; /* the shortest of them */
    for (uint32_t i = 0; i < want; i++) {
        if (i >= g->n_others) {
            pkv_status s = pkv_seq_create(g->cache, &g->others[i]);
            if (s != PKV_OK) return fail(err, err_len, "sequence for the batch", s);
            g->n_others = i + 1;
        }
        uint32_t len;
        pkv_status s = pkv_seq_length(g->cache, g->others[i], 0, &len);
        if (s != PKV_OK) return fail(err, err_len, "length of a sequence of the batch", s);
        if (len < from) from = len;
    }
    /* each piece's tokens made once and appended to every sequence that lacks them (all are filled
     * together, so they have the same length) */
    for (uint32_t t = from; t < g->length;) {
        uint32_t n = g->length - t < FILL_TOKENS ? g->length - t : FILL_TOKENS;
        kv_data_tokens(d, 0, t, n, g->fill_k, g->fill_v);
        for (uint32_t i = 0; i < want; i++) {
            uint32_t len;
            pkv_status s = pkv_seq_length(g->cache, g->others[i], 0, &len);
            if (s == PKV_OK && len == t) s = pkv_append(g->cache, g->others[i], 0, n, g->fill_k, g->fill_v, PKV_F32);
            if (s != PKV_OK) return fail(err, err_len, "filling a sequence of the batch", s);
        }
        t += n;
    }
    return 0;
}

/* Copies of g->cache (through a saved file) so that the timed steps can rotate among them. */
static int load_copies(grow_state *g, uint32_t n, pkv_cache **copies, char *err, size_t err_len)
{
    char path[] = "/tmp/pkv-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, err_len, "cannot create a temporary file for the cache copies");
        return -1;
    }
    close(fd);
    pkv_status s = pkv_cache_save(g->cache, path);
    for (uint32_t i = 0; s == PKV_OK && i < n; i++) s = pkv_cache_load(g->ctx, path, &copies[i]);
    remove(path);
    return s == PKV_OK ? 0 : fail(err, err_len, "copies of the cache for the rotation", s);
}

static int time_decode(grow_state *g, const kv_data *d, uint32_t batch, const bench_options *o, speed_result *sr,
                       char *err, size_t err_len)
{
    uint32_t Hq = d->n_q_heads, D = d->head_dim;
    if (fill_others(g, d, batch - 1, err, err_len)) return -1;
    pkv_cache_stats st = {.struct_size = sizeof st};
    pkv_status s = pkv_cache_stats_get(g->cache, &st);
    if (s != PKV_OK) return fail(err, err_len, "stats", s);
    sr->bytes_per_step = (double)seq_bytes(&st);
    uint32_t rotation = 1;
    if (device_is_gpu(g->ctx))
        while (rotation < MAX_ROTATION && rotation * sr->bytes_per_step < ROTATE_BYTES) rotation++;
    sr->rotation = rotation;
    pkv_cache *caches[MAX_ROTATION] = {g->cache};
    pkv_seq *seqs = malloc(batch * sizeof *seqs);
    float *q = malloc((size_t)batch * Hq * D * sizeof(float));
    float *out = malloc((size_t)batch * Hq * D * sizeof(float));
    uint32_t min_steps = o->steps ? o->steps : AUTO_MIN_STEPS;
    uint32_t max_steps = o->steps ? o->steps * MAX_STEPS_FACTOR : AUTO_MAX_STEPS;
    double min_seconds = o->steps ? MIN_TIMED_SECONDS : AUTO_SECONDS;
    double *ms = malloc(max_steps * sizeof(double)), *host = malloc(max_steps * sizeof(double));
    gpu_burst burst = {0};
    int rc = -1;
    if (!seqs || !q || !out || !ms || !host) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    if (rotation > 1 && load_copies(g, rotation - 1, caches + 1, err, err_len)) goto done;
    seqs[0] = g->seq;
    for (uint32_t b = 1; b < batch; b++) seqs[b] = g->others[b - 1];
    for (uint32_t b = 0; b < batch; b++)
        for (uint32_t qh = 0; qh < Hq; qh++)
            memcpy(q + ((size_t)b * Hq + qh) * D, kv_q_row(d, 0, qh, b % d->q_tokens), D * sizeof(float));
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = seqs, .n_seqs = batch, .layer = 0, .q_len = 1, .n_q_heads = Hq,
                               .scale = 0, .q_dtype = PKV_F32};
    for (uint32_t i = 0; i < o->warmup + rotation; i++) /* the steps asked for, and every copy once */
        if ((s = pkv_attention(caches[i % rotation], &ap, q, out)) != PKV_OK) {
            fail(err, err_len, "attention", s);
            goto done;
        }
    /* on GPUs, groups of timed steps right after bursts of heavy calls (gpu_clocks.h) */
    const int gpu = device_is_gpu(g->ctx);
    if (gpu && gpu_burst_init(&burst, &ap, g->length, D, q)) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    double device_ms;
    sr->device_timed = device_is_gpu(g->ctx) && pkv_last_op_time(g->ctx, &device_ms) == PKV_OK;
    uint32_t n = 0;
    double start = cli_now();
    while (n < max_steps && (n < min_steps || cli_now() - start < min_seconds)) {
        if (gpu && n % GPU_BURST_STEPS == 0 && (s = gpu_burst_run(&burst, caches[n % rotation], GPU_BURST_SECONDS)) != PKV_OK) {
            fail(err, err_len, "attention (clock burst)", s);
            goto done;
        }
        double t0 = cli_now();
        s = pkv_attention(caches[n % rotation], &ap, q, out);
        double host_ms = (cli_now() - t0) * 1e3;
        if (s != PKV_OK) {
            fail(err, err_len, "attention", s);
            goto done;
        }
        host[n] = host_ms;
        ms[n++] = sr->device_timed && pkv_last_op_time(g->ctx, &device_ms) == PKV_OK ? device_ms : host_ms;
    }
    for (size_t i = 0; i < (size_t)batch * Hq * D; i++)
        if (!isfinite(out[i])) {
            snprintf(err, err_len, "attention returned a non-finite value");
            goto done;
        }
    sr->steps = n;
    sr->ms_per_step = bench_median(ms, n);
    sr->host_ms_per_step = bench_median(host, n);
    sr->gbps = sr->bytes_per_step / (sr->ms_per_step * 1e-3) / 1e9;
    rc = 0;
done:
    for (uint32_t i = 1; i < rotation; i++) pkv_cache_free(caches[i]);
    free(seqs);
    free(q);
    free(out);
    free(ms);
    free(host);
    gpu_burst_free(&burst);
    return rc;
}

static int run_config(pkv_context *ctx, const bench_options *o, const kv_data *d, const bench_config *c,
                      uint32_t batch, bench_report *r, throughput_result *tr, bench_progress_fn progress,
                      void *user, double p0, double p1, char *err, size_t err_len)
{
    uint32_t H = d->n_kv_heads, D = d->head_dim;
    uint32_t max_ctx = o->n_speed_contexts ? o->speed_contexts[o->n_speed_contexts - 1] : 0;
    pkv_cache_config cc = bench_cache_config(o, c, 1, H, D);
    uint32_t R = cc.window ? cc.window : cc.group_size;
    uint32_t want_appends = o->skip_throughput ? 0 : 2 * R + 1;
    if (max_ctx < PREFILL_TOKENS + want_appends && !o->skip_throughput) max_ctx = PREFILL_TOKENS + want_appends;
    uint64_t row = 4ull * D * H;
    /* The batch's sequences stored apart; the rotation's copies are separate caches. */
    uint64_t per_seq = (uint64_t)max_ctx * row * 5 / 4 + (uint64_t)(cc.bank_capacity + 32 + 2 * R) * row;
    cc.memory_budget = (uint64_t)batch * per_seq + (8u << 20);
    grow_state g = {0};
    g.ctx = ctx;
    g.buf_tokens = R > PREFILL_TOKENS ? R : PREFILL_TOKENS;
    if (o->n_speed_contexts && o->speed_contexts[0] < PREFILL_TOKENS && o->speed_contexts[0] > g.buf_tokens)
        g.buf_tokens = o->speed_contexts[0];
    g.kbuf = malloc((size_t)g.buf_tokens * H * D * sizeof(float));
    g.vbuf = malloc((size_t)g.buf_tokens * H * D * sizeof(float));
    int rc = -1;
    if (!g.kbuf || !g.vbuf) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    pkv_status s = pkv_cache_create(ctx, &cc, &g.cache);
    if (s == PKV_OK) s = pkv_seq_create(g.cache, &g.seq);
    if (s != PKV_OK) {
        fail(err, err_len, "cache for the speed test", s);
        goto done;
    }
    /* prefill: PREFILL_TOKENS, or less when the first context is shorter */
    uint32_t prefill = PREFILL_TOKENS;
    if (o->n_speed_contexts && o->speed_contexts[0] < prefill) prefill = o->speed_contexts[0];
    double sec;
    if (append_tokens(&g, d, prefill, &sec, err, err_len)) goto done;
    tr->cfg = *c;
    tr->prefill_first_tokens_per_s = sec > 0 ? prefill / sec : NAN;
    if (time_prefills(&g, prefill, &tr->prefill_tokens_per_s, err, err_len)) goto done;
    tr->append_tokens_per_s = tr->flush_tokens_per_s = NAN;
    int appends_done = o->skip_throughput;
    for (uint32_t ci = 0; ci <= o->n_speed_contexts; ci++) {
        uint32_t target = ci < o->n_speed_contexts ? o->speed_contexts[ci] : 0;
        if (!appends_done && (ci == o->n_speed_contexts || g.length + want_appends <= target)) {
            if (measure_appends(&g, d, want_appends, tr, err, err_len)) goto done;
            appends_done = 1;
        }
        if (ci == o->n_speed_contexts) break;
        while (g.length < target) {
            uint32_t n = target - g.length < R ? target - g.length : R;
            if (append_tokens(&g, d, n, NULL, err, err_len)) goto done;
        }
        if (g.length != target) continue; /* already longer (prefill or appends): skip this length */
        if (progress) {
            char stage[64];
            snprintf(stage, sizeof stage, "speed %s %u/%u: batch of %u at %u tokens", pkv_mode_name(c->mode), c->k_bits,
                     c->v_bits, batch, target);
            progress(user, p0 + (p1 - p0) * ci / (o->n_speed_contexts + 1), stage);
        }
        speed_result *sr = &r->speed[r->n_speed];
        memset(sr, 0, sizeof *sr);
        sr->cfg = *c;
        sr->context = target;
        sr->batch = batch;
        sr->bw_fraction = NAN;
        sr->speedup_vs_fp16 = NAN;
        if (time_decode(&g, d, batch, o, sr, err, err_len)) goto done;
        r->n_speed++;
        if (progress) progress(user, p0 + (p1 - p0) * (ci + 1) / (o->n_speed_contexts + 1), NULL);
    }
    rc = 0;
done:
    if (g.cache) pkv_cache_free(g.cache);
    free(g.others);
    free(g.kbuf);
    free(g.vbuf);
    free(g.fill_k);
    free(g.fill_v);
    return rc;
}

int bench_speed(pkv_context *ctx, const bench_options *o, const kv_data *d, bench_report *r,
                bench_progress_fn progress, void *user, char *err, size_t err_len)
{
    r->n_speed = 0;
    r->n_throughput = 0;
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const bench_config *c = &o->configs[i];
        char label[64];
        snprintf(label, sizeof label, "speed %s %u/%u", pkv_mode_name(c->mode), c->k_bits, c->v_bits);
        double p0 = (double)i / o->n_configs, p1 = (double)(i + 1) / o->n_configs;
        if (progress) progress(user, p0, label);
        throughput_result tr = {0};
        if (run_config(ctx, o, d, c, r->batch, r, &tr, progress, user, p0, p1, err, err_len)) return -1;
        if (!o->skip_throughput) r->throughput[r->n_throughput++] = tr;
        if (o->n_speed_contexts && r->n_read_bw) bench_read_bw_sample(ctx, r); /* interleaved with the rows */
    }
    /* derived columns (the read bandwidth: the median of the run's probes) */
    for (uint32_t i = 0; i < r->n_speed; i++) {
        speed_result *sr = &r->speed[i];
        if (isfinite(r->read_bw_gbps) && r->read_bw_gbps > 0) sr->bw_fraction = sr->gbps / r->read_bw_gbps;
        for (uint32_t j = 0; j < r->n_speed; j++) {
            const speed_result *f = &r->speed[j];
            if (f->cfg.mode == PKV_MODE_FP16 && f->context == sr->context && f->batch == sr->batch)
                sr->speedup_vs_fp16 = f->ms_per_step / sr->ms_per_step;
        }
    }
    if (progress) progress(user, 1.0, "speed");
    return 0;
}
