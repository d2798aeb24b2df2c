/* Fidelity: fill a cache with the data set (prefill, then appends in chunks, so PATTERN mode both
 * mines and flushes), read K and V back for the MSE, and compare decode attention with the fp64
 * reference over the original K and V. Decode is causal: the query at position p is asked when the
 * cache holds tokens 0..p, as during generation, so the fp16 window is seen at every fill level. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_util.h"
#include "kv_data.h"
#include "reference_attention.h"
#include "timer.h"

/* Decode-side appends go in chunks of at most one window (the flush points do not depend on the
 * chunking); they stop early at every query position. */

pkv_cache_config bench_cache_config(const bench_options *o, const bench_config *c, uint32_t n_layers,
                                    uint32_t n_kv_heads, uint32_t head_dim)
{
    pkv_cache_config cc = pkv_cache_config_default();
    cc.n_layers = n_layers;
    cc.n_kv_heads = n_kv_heads;
    cc.head_dim = head_dim;
    cc.mode = c->mode;
    if (c->mode != PKV_MODE_FP16) {
        cc.k_bits = c->k_bits;
        cc.v_bits = c->v_bits;
    }
    cc.group_size = o->group_size;
    cc.window = o->window;
    cc.n_patterns = o->n_patterns;
    cc.bank_capacity = o->bank_capacity;
    cc.quantizer = o->quantizer;
    cc.seed = o->seed ^ 0x5EEDull;
    pkv_cache_config_resolve(&cc); /* the mode's group and bank capacity, for the sizes computed from them */
    return cc;
}

pkv_cache_config bench_mode_config(const bench_options *o, pkv_mode mode)
{
    pkv_cache_config cc = bench_cache_config(o, &(bench_config){mode, 2, 2}, 1, 1, 128);
    if (!cc.window) cc.window = cc.group_size;
    return cc;
}

/* A budget that holds n_tokens per sequence at fp16 plus full banks and windows, with slack. */
static uint64_t budget_for(const pkv_cache_config *cc, uint64_t n_tokens, uint64_t n_seqs)
{
    uint64_t lh = (uint64_t)cc->n_layers * cc->n_kv_heads, row = 2ull * 2 * cc->head_dim;
    uint64_t window = cc->window ? cc->window : cc->group_size;
    uint64_t bytes = lh * n_seqs * (n_tokens + cc->group_size) * row * 5 / 4;
    bytes += lh * n_seqs * (cc->bank_capacity + 32 + window) * row;
    return bytes + (8u << 20);
}

/* Appends tokens [t0, t1) of one layer from the data set, in one call. */
static int append_range(pkv_cache *cache, pkv_seq seq, const kv_data *d, uint32_t layer, uint32_t t0, uint32_t t1,
                        float *kbuf, float *vbuf, char *err, size_t err_len)
{
    uint32_t H = d->n_kv_heads, D = d->head_dim;
    for (uint32_t t = t0; t < t1;) {
        uint32_t n = t1 - t;
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t h = 0; h < H; h++) {
                memcpy(kbuf + ((uint64_t)i * H + h) * D, kv_row(d->k, d, layer, h, t + i), D * sizeof(float));
                memcpy(vbuf + ((uint64_t)i * H + h) * D, kv_row(d->v, d, layer, h, t + i), D * sizeof(float));
            }
        pkv_status s = pkv_append(cache, seq, layer, n, kbuf, vbuf, PKV_F32);
        if (s != PKV_OK) {
            snprintf(err, err_len, "append of %u tokens at %u (layer %u) failed: %s: %s", n, t, layer,
                     pkv_status_string(s), pkv_last_error());
            return -1;
        }
        t += n;
    }
    return 0;
}

/* Asks query j (all query heads) of `layer` against the cache as it is now; appends the relative
 * errors against ref to rel. */
static int ask_query(pkv_cache *cache, pkv_seq seq, const kv_data *d, uint32_t layer, uint32_t j, const double *ref,
                     float *qbuf, float *out, double *rel, uint32_t *n_rel, char *err, size_t err_len)
{
    uint32_t Hq = d->n_q_heads, D = d->head_dim, nq = d->q_tokens;
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &seq, .n_seqs = 1, .layer = layer, .q_len = 1, .n_q_heads = Hq,
                               .scale = (float)(1.0 / sqrt((double)D)), .q_dtype = PKV_F32};
    for (uint32_t qh = 0; qh < Hq; qh++) memcpy(qbuf + (size_t)qh * D, kv_q_row(d, layer, qh, j), D * sizeof(float));
    pkv_status s = pkv_attention(cache, &ap, qbuf, out);
    if (s != PKV_OK) {
        snprintf(err, err_len, "attention failed: %s: %s", pkv_status_string(s), pkv_last_error());
        return -1;
    }
    for (uint32_t qh = 0; qh < Hq; qh++)
        rel[(*n_rel)++] = ref_rel_err(out + (size_t)qh * D, ref + (((size_t)layer * Hq + qh) * nq + j) * D, D);
    return 0;
}

/* Appends a layer: the prefill, then chunks that stop at every query position to ask that query. */
static int fill_layer(pkv_cache *cache, pkv_seq seq, const kv_data *d, uint32_t layer, uint32_t chunk,
                      const double *ref, float *kbuf, float *vbuf, float *qbuf, float *out, double *rel, uint32_t *n_rel, char *err,
                      size_t err_len)
{
    uint32_t T = d->n_tokens, nq = d->q_tokens, j = 0;
    if (append_range(cache, seq, d, layer, 0, d->prefill, kbuf, vbuf, err, err_len)) return -1;
    for (uint32_t t = d->prefill;;) {
        while (j < nq && d->q_pos[j] < t) /* asked at the cache's current length */
            if (ask_query(cache, seq, d, layer, j++, ref, qbuf, out, rel, n_rel, err, err_len)) return -1;
        if (t == T) break;
        uint32_t stop = j < nq ? d->q_pos[j] + 1 : T;
        if (stop - t > chunk) stop = t + chunk;
        if (append_range(cache, seq, d, layer, t, stop, kbuf, vbuf, err, err_len)) return -1;
        t = stop;
    }
    return 0;
}

static int run_one(pkv_context *ctx, const bench_options *o, const kv_data *d, const double *ref,
                   const bench_config *c, fidelity_result *res, bench_progress_fn progress, void *user, double p0,
                   double p1, char *err, size_t err_len)
{
    uint32_t L = d->n_layers, H = d->n_kv_heads, D = d->head_dim, T = d->n_tokens, Hq = d->n_q_heads;
    uint32_t nq = d->q_tokens;
    pkv_cache_config cc = bench_cache_config(o, c, L, H, D);
    cc.memory_budget = budget_for(&cc, T, 1);
    pkv_cache *cache = NULL;
    pkv_seq seq;
    int rc = -1;
    double t_start = cli_now();
    size_t all = (size_t)T * H * D; /* the prefill and the read-back are at most T tokens */
    float *kbuf = malloc(all * sizeof(float));
    float *vbuf = malloc(all * sizeof(float));
    float *out = malloc((size_t)Hq * D * sizeof(float));
    float *qbuf = malloc((size_t)Hq * D * sizeof(float));
    double *rel = malloc(((size_t)L * Hq * nq + 1) * sizeof(double));
    uint32_t n_rel = 0;
    if (!kbuf || !vbuf || !out || !qbuf || !rel) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    pkv_status s = pkv_cache_create(ctx, &cc, &cache);
    if (s == PKV_OK) s = pkv_seq_create(cache, &seq);
    if (s != PKV_OK) {
        snprintf(err, err_len, "%s %u/%u: cannot create the cache: %s: %s", pkv_mode_name(c->mode), c->k_bits,
                 c->v_bits, pkv_status_string(s), pkv_last_error());
        goto done;
    }
    for (uint32_t l = 0; l < L; l++) {
        if (fill_layer(cache, seq, d, l, cc.window ? cc.window : cc.group_size, ref, kbuf, vbuf, qbuf, out, rel, &n_rel,
                       err, err_len))
            goto done;
        if (progress) progress(user, p0 + (p1 - p0) * (l + 1) / L, NULL);
    }
    double kse = 0, vse = 0;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t len = 0;
        s = pkv_seq_length(cache, seq, l, &len);
        if (s == PKV_OK && len != T) {
            snprintf(err, err_len, "layer %u holds %u tokens after appending %u", l, len, T);
            goto done;
        }
        if (s == PKV_OK) s = pkv_read_kv(cache, seq, l, kbuf, vbuf);
        if (s != PKV_OK) {
            snprintf(err, err_len, "read-back failed: %s: %s", pkv_status_string(s), pkv_last_error());
            goto done;
        }
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t h = 0; h < H; h++) {
                const float *kr = kbuf + ((uint64_t)t * H + h) * D, *vr = vbuf + ((uint64_t)t * H + h) * D;
                const float *ko = kv_row(d->k, d, l, h, t), *vo = kv_row(d->v, d, l, h, t);
                for (uint32_t i = 0; i < D; i++) {
                    double dk = (double)kr[i] - ko[i], dv = (double)vr[i] - vo[i];
                    kse += dk * dk;
                    vse += dv * dv;
                }
            }
    }
    pkv_cache_stats st = {.struct_size = sizeof st};
    s = pkv_cache_stats_get(cache, &st);
    if (s != PKV_OK) {
        snprintf(err, err_len, "stats failed: %s: %s", pkv_status_string(s), pkv_last_error());
        goto done;
    }
    double n_el = (double)L * T * H * D;
    res->cfg = *c;
    res->k_mse = kse / n_el;
    res->v_mse = vse / n_el;
    res->attn_rel_median = bench_median(rel, n_rel);
    res->attn_rel_max = bench_max(rel, n_rel);
    res->bits_per_element = st.bits_per_element;
    res->compression_ratio = st.bits_per_element > 0 ? 16.0 / st.bits_per_element : NAN;
    res->seconds = cli_now() - t_start;
    rc = 0;
done:
    if (cache) pkv_cache_free(cache);
    free(kbuf);
    free(vbuf);
    free(out);
    free(qbuf);
    free(rel);
    return rc;
}

int bench_fidelity(pkv_context *ctx, const bench_options *o, const kv_data *d, bench_report *r,
                   bench_progress_fn progress, void *user, char *err, size_t err_len)
{
    uint32_t L = d->n_layers, Hq = d->n_q_heads, D = d->head_dim, nq = d->q_tokens;
    uint32_t group = Hq / d->n_kv_heads;
    double *ref = malloc((size_t)L * Hq * nq * D * sizeof(double) + 1);
    if (!ref) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    /* reference first: it does not depend on the mode */
    double scale = 1.0 / sqrt((double)D);
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t qh = 0; qh < Hq; qh++)
            for (uint32_t j = 0; j < nq; j++)
                ref_attention(kv_q_row(d, l, qh, j), kv_row(d->k, d, l, qh / group, 0), kv_row(d->v, d, l, qh / group, 0),
                              d->q_pos[j] + 1, D, D, scale, ref + (((size_t)l * Hq + qh) * nq + j) * D);
    r->n_fidelity = 0;
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const bench_config *c = &o->configs[i];
        char label[64];
        snprintf(label, sizeof label, "fidelity %s %u/%u", pkv_mode_name(c->mode), c->k_bits, c->v_bits);
        if (progress) progress(user, (double)i / o->n_configs, label);
        if (run_one(ctx, o, d, ref, c, &r->fidelity[r->n_fidelity], progress, user, (double)i / o->n_configs,
                    (double)(i + 1) / o->n_configs, err, err_len)) {
            free(ref);
            return -1;
        }
        r->n_fidelity++;
    }
    if (progress) progress(user, 1.0, "fidelity");
    free(ref);
    return 0;
}
