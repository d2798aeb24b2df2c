/* One cache mode through the model: every layer's attention goes through the library (pkv_append,
 * pkv_attention), and each position's logits are scored against the next token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_model.h"
#include "reference_attention.h"
#include "timer.h"

/* What one run needs inside the attention callback. */
typedef struct run_ctx {
    pkv_cache *cache;
    pkv_seq seq;
    int n_heads, n_kv_heads, head_dim;
    uint32_t chunk; /* the prompt's appends (0: one) */
    pkv_status status;
} run_ctx;

static int attend_pkv(void *user, int layer, int pos0, int n, const float *q, const float *k, const float *v,
                      float *out)
{
    run_ctx *r = user;
    (void)pos0;
    r->status = pkv_append(r->cache, r->seq, (uint32_t)layer, (uint32_t)n, k, v, PKV_F32);
    if (r->status != PKV_OK) return -1;
    pkv_attention_params p = {
        .struct_size = sizeof p, .seqs = &r->seq, .n_seqs = 1, .layer = (uint32_t)layer, .q_len = (uint32_t)n,
        .n_q_heads = (uint32_t)r->n_heads, .scale = 0.0f, .q_dtype = PKV_F32,
    };
    r->status = pkv_attention(r->cache, &p, q, out);
    return r->status == PKV_OK ? 0 : -1;
}

/* A prompt from position 0: exact causal attention among its own n tokens (the fp64 reference, as an
 * uncompressed prefill kernel computes it up to rounding), then one append that stores (and mines)
 * them, or appends of r->chunk tokens (an engine's chunked prefill). */
static int attend_prompt_exact(void *user, int layer, int pos0, int n, const float *q, const float *k,
                               const float *v, float *out)
{
    run_ctx *r = user;
    const int hd = r->head_dim, kvd = r->n_kv_heads * hd, rep = r->n_heads / r->n_kv_heads;
    double *acc = malloc((size_t)hd * sizeof *acc);
    if (!acc || pos0 != 0) {
        free(acc);
        r->status = pos0 != 0 ? PKV_ERR_INVALID_ARGUMENT : PKV_ERR_OUT_OF_HOST_MEMORY;
        return -1;
    }
    const double scale = 1.0 / sqrt((double)hd);
    int failed = 0;
    for (int i = 0; i < n && !failed; i++)
        for (int h = 0; h < r->n_heads && !failed; h++) {
            const size_t kv_off = (size_t)(h / rep) * hd, o = ((size_t)i * r->n_heads + h) * hd;
            failed = ref_attention(q + o, k + kv_off, v + kv_off, (uint32_t)i + 1, (uint32_t)hd, (size_t)kvd, scale, acc);
            for (int j = 0; j < hd; j++) out[o + j] = (float)acc[j];
        }
    free(acc);
    if (failed) {
        r->status = PKV_ERR_OUT_OF_HOST_MEMORY;
        return -1;
    }
    const size_t row = (size_t)kvd;
    r->status = PKV_OK;
    for (uint32_t at = 0, step = r->chunk ? r->chunk : (uint32_t)n; at < (uint32_t)n && r->status == PKV_OK; at += step) {
        const uint32_t m = (uint32_t)n - at < step ? (uint32_t)n - at : step;
        r->status = pkv_append(r->cache, r->seq, (uint32_t)layer, m, k + at * row, v + at * row, PKV_F32);
    }
    return r->status == PKV_OK ? 0 : -1;
}

/* Scores logits rows against the next tokens: adds -ln p to the result, counts greedy agreement
 * with (or records, for FP16) the argmax of every position. */
static void score(const float *logits, int vocab, int rows, const int *next, const double *next_bytes, uint32_t first,
                  int *greedy, int record, eval_result *r, uint32_t *agree)
{
    for (int i = 0; i < rows; i++) {
        const float *l = logits + (size_t)i * vocab;
        int best = 0;
        for (int t = 1; t < vocab; t++)
            if (l[t] > l[best]) best = t;
        double sum = 0.0;
        for (int t = 0; t < vocab; t++) sum += exp((double)l[t] - (double)l[best]);
        r->nll_nats += log(sum) - ((double)l[next[i]] - (double)l[best]);
        r->bytes += next_bytes[i];
        if (record) greedy[first + i] = best;
        else if (greedy[first + i] == best) (*agree)++;
    }
}

int eval_run_mode(const eval_options *o, pkv_context *ctx, const llama2_model *m, llama2_state *st, const int *tokens,
                  const double *bytes, uint32_t n_score, int *greedy, eval_result *r, progress_bar *bar, char *err,
                  size_t err_len)
{
    const llama2_config *c = &m->cfg;
    pkv_cache_config cc = pkv_cache_config_default();
    cc.n_layers = (uint32_t)c->n_layers;
    cc.n_kv_heads = (uint32_t)c->n_kv_heads;
    cc.head_dim = (uint32_t)c->head_dim;
    cc.mode = r->m.mode;
    cc.k_bits = r->m.mode == PKV_MODE_FP16 ? 2 : r->m.k_bits;
    cc.v_bits = r->m.mode == PKV_MODE_FP16 ? 2 : r->m.v_bits;
    cc.group_size = eval_mode_group(o, &r->m);
    cc.window = eval_mode_window(o, &r->m);
    cc.k_assign = eval_mode_k_assign(o, &r->m);
    cc.bank_capacity = eval_mode_bank_capacity(o, &r->m);
    cc.quantizer = o->paper && r->m.quantizer == PKV_QUANTIZER_AUTO ? PKV_QUANTIZER_MINMAX : r->m.quantizer;
    cc.n_patterns = o->n_patterns;
    cc.mining = o->mining;
    cc.kmeans_sample = o->kmeans_sample;
    uint64_t fp16_bytes = (uint64_t)c->seq_len * c->n_layers * c->n_kv_heads * c->head_dim * 4;
    if (cc.memory_budget < 2 * fp16_bytes + (64u << 20)) cc.memory_budget = 2 * fp16_bytes + (64u << 20);
    run_ctx rc = {0};
    rc.n_heads = c->n_heads, rc.n_kv_heads = c->n_kv_heads, rc.head_dim = c->head_dim, rc.chunk = o->prefill_chunk;
    pkv_status s = pkv_cache_create(ctx, &cc, &rc.cache);
    if (s != PKV_OK) {
        snprintf(err, err_len, "cache for %s: %s: %s", pkv_mode_name(cc.mode), pkv_status_string(s), pkv_last_error());
        return -1;
    }
    pkv_cache_config got = {.struct_size = sizeof got};
    if (pkv_cache_get_config(rc.cache, &got) == PKV_OK) r->m.quantizer = got.quantizer; /* AUTO resolved: the curve's name */
    double t0 = cli_now();
    uint32_t agree = 0, done = 0;
    int record = r->m.mode == PKV_MODE_FP16 && r->m.k_bits == 16;
    char label[64];
    if (r->m.mode == PKV_MODE_FP16) snprintf(label, sizeof label, "fp16");
    else snprintf(label, sizeof label, "%s %u/%u bits", pkv_mode_name(r->m.mode), r->m.k_bits, r->m.v_bits);
    int failed = 0;
    while (done < n_score && !failed) {
        uint32_t len = n_score - done < (uint32_t)c->seq_len ? n_score - done : (uint32_t)c->seq_len;
        if ((s = pkv_seq_create(rc.cache, &rc.seq)) != PKV_OK) {
            snprintf(err, err_len, "pkv_seq_create: %s", pkv_last_error());
            failed = 1;
            break;
        }
        uint32_t pos = 0;
        while (pos < len) {
            uint32_t n = pos == 0 && o->prefill > 1 ? (o->prefill < len ? o->prefill : len) : 1;
            if (o->prefill_in_cache && o->prefill_chunk && pos < o->prefill && o->prefill > 1) { /* chunk by chunk */
                n = (o->prefill < len ? o->prefill : len) - pos;
                if (n > o->prefill_chunk) n = o->prefill_chunk;
            }
            if (n > (uint32_t)st->capacity) n = (uint32_t)st->capacity;
            llama2_attend_fn attend = n > 1 && !o->prefill_in_cache ? attend_prompt_exact : attend_pkv;
            if (llama2_forward(m, st, tokens + done + pos, (int)pos, (int)n, attend, &rc) != 0) {
                snprintf(err, err_len, "forward pass at position %u (%s): %s", pos, label,
                         rc.status != PKV_OK ? pkv_last_error() : "tokens out of range");
                failed = 1;
                break;
            }
            score(st->logits, c->vocab_size, (int)n, tokens + done + pos + 1, bytes + done + pos + 1, done + pos,
                  greedy, record, r, &agree);
            pos += n;
            if ((pos & 63) == 0 || pos == len) progress_update(bar, (double)(done + pos) / n_score, label);
        }
        if (!failed && done + len >= n_score) {
            pkv_cache_stats stats = {.struct_size = sizeof stats};
            if (pkv_cache_stats_get(rc.cache, &stats) == PKV_OK) r->bits_per_element = stats.bits_per_element;
        }
        pkv_seq_free(rc.cache, rc.seq);
        done += len;
    }
    pkv_cache_free(rc.cache);
    if (failed) return -1;
    r->seconds = cli_now() - t0;
    r->bits_per_byte = r->nll_nats / log(2.0) / r->bytes;
    r->perplexity = exp(r->nll_nats / n_score);
    r->agreement = record ? 1.0 : (double)agree / n_score;
    return 0;
}
