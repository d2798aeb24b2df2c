/* pkv_attention: validation and the per-sequence tables handed to the backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "internal.h"
#include "profile.h"

#define PKV_Q_LIMIT 18446744073709551616.0 /* 2^64 */

/* Builds the op's table for one layer (backend.h: pkv_attn_op.table): every sequence's chunks
 * [H][MAX] and windows [H], then every sequence's blocks [n_blocks][H] (the host's own layout), which a backend with
 * resident tables does not need (it keeps them in device memory: left unwritten, so that the host
 * work does not grow with the context). `own` more window tokens than stored: the queries' own,
 * written past the window's end. */
static pkv_status build_tables(pkv_cache *c, const pkv_attention_params *p, uint32_t own, pkv_attn_seq **seqs_out,
                               uint32_t **table_out, uint32_t *len_out, uint32_t *fixed_out)
{
    const uint32_t H = c->g.H, fixed = H * (PKV_MAX_CHUNKS + 1);
    const int resident = c->ctx->be->iface->resident_tables;
    size_t len = (size_t)p->n_seqs * fixed, blocks_len = 0;
    /* the cache's reused buffer: the sequences' views, then the table */
    const size_t seq_bytes = ((size_t)p->n_seqs * sizeof(pkv_attn_seq) + 15) & ~(size_t)15;
    pkv_attn_seq *seqs = pkv_scratch_get(&c->attn_tmp, seq_bytes);
    if (!seqs) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        pkv_layer_state *L = &pkv_find_seq(c, p->seqs[s])->layers[p->layer];
        seqs[s] = (pkv_attn_seq){L->n_blocks, L->n_window + own, L->bank_count, s * fixed, (uint32_t)(len + blocks_len),
                                 L->blocks, resident ? &L->tab : NULL, L};
        blocks_len += (size_t)H * L->n_blocks;
    }
    if (len + blocks_len > UINT32_MAX) return pkv_fail(c->ctx, PKV_ERR_UNSUPPORTED, "pkv_attention: block table too long");
    uint8_t *mem = pkv_scratch_get(&c->attn_tmp, seq_bytes + ((resident ? len : len + blocks_len) + 1) * sizeof(uint32_t));
    if (!mem) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    seqs = (pkv_attn_seq *)mem; /* the same views: the scratch keeps its contents when it grows */
    uint32_t *table = (uint32_t *)(mem + seq_bytes);
    *seqs_out = seqs;
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        const pkv_layer_state *L = seqs[s].layer; /* looked up once, above */
        uint32_t *t = table + seqs[s].table_offset;
        if (L->chunks) memcpy(t, L->chunks, (size_t)H * PKV_MAX_CHUNKS * sizeof *t);
        else memset(t, 0xFF, (size_t)H * PKV_MAX_CHUNKS * sizeof *t); /* PKV_NO_SLOT */
        if (L->window_slot) memcpy(t + H * PKV_MAX_CHUNKS, L->window_slot, H * sizeof *t);
        else memset(t + H * PKV_MAX_CHUNKS, 0xFF, H * sizeof *t);
        if (resident) continue;
        if (L->n_blocks) memcpy(table + seqs[s].block_offset, L->blocks, (size_t)L->n_blocks * H * sizeof *table);
    }
    *table_out = table;
    *len_out = (uint32_t)(len + blocks_len);
    *fixed_out = (uint32_t)len;
    return PKV_OK;
}

static pkv_attention_params attention_defaults(void)
{
    pkv_attention_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.q_len = 1;
    p.q_dtype = PKV_F32;
    p.kv_new_dtype = PKV_F32;
    return p;
}

pkv_status pkv_attention_params_init(pkv_attention_params *p, size_t struct_size)
{
    const pkv_attention_params d = attention_defaults();
    return pkv_abi_init(&pkv_abi_attention_params, &d, p, struct_size);
}

pkv_status pkv_attention_check(pkv_cache *c, const pkv_attention_params *app, pkv_attention_params *p)
{
    const pkv_attention_params d = attention_defaults();
    pkv_status st = pkv_abi_read(c->ctx, &pkv_abi_attention_params, app, &d, p);
    if (st != PKV_OK) return st;
    if (!p->seqs || p->n_seqs == 0)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: no sequences given");
    if (p->layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_attention: layer %u out of range (n_layers = %u)", p->layer,
                        c->cfg.n_layers);
    if (p->q_len == 0 || p->n_q_heads == 0 || p->n_q_heads % c->g.H)
        return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_attention: q_len %u and n_q_heads %u must be > 0, n_q_heads a multiple of n_kv_heads = %u",
                        p->q_len, p->n_q_heads, c->g.H);
    if (p->q_dtype != PKV_F32 && p->q_dtype != PKV_F16)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: q_dtype %d is not PKV_F32 or PKV_F16", (int)p->q_dtype);
    if (!isfinite(p->scale) || p->scale < 0.0f || p->scale > PKV_Q_LIMIT)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: scale must be finite, >= 0 and <= 2^64, got %g",
                        (double)p->scale);
    const int own = p->k_new || p->v_new;
    if (own && (!p->k_new || !p->v_new))
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: k_new and v_new must be given together");
    if (own && p->kv_new_dtype != PKV_F32 && p->kv_new_dtype != PKV_F16)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: kv_new_dtype %d is not PKV_F32 or PKV_F16",
                        (int)p->kv_new_dtype);
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        pkv_sequence *sq = pkv_find_seq(c, p->seqs[s]);
        if (!sq) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_attention: sequence %u does not exist", p->seqs[s]);
        const pkv_layer_state *L = &sq->layers[p->layer];
        uint32_t T = L->n_blocks * c->g.G + L->n_window;
        if (!own && T < p->q_len)
            return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_attention: sequence %u has %u tokens in layer %u, fewer than q_len %u",
                            p->seqs[s], T, p->layer, p->q_len);
        if (own && L->n_window + p->q_len > c->g.R)
            return pkv_fail(c->ctx, PKV_ERR_SHAPE,
                            "pkv_attention: the %u own tokens of sequence %u do not fit in its fp16 window (%u of %u "
                            "used): append them first and attend without k_new",
                            p->q_len, p->seqs[s], L->n_window, c->g.R);
        if (own)
            for (uint32_t t = 0; t < s; t++)
                if (p->seqs[t] == p->seqs[s])
                    return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT,
                                    "pkv_attention: sequence %u is given twice with its own K/V", p->seqs[s]);
    }
    return PKV_OK;
}

/* The queries' own K/V (p->k_new, p->v_new) into the window rows past each sequence's stored
 * tokens, fp16 as an append would store them; the sequences' lengths do not change. */
static pkv_status write_own(pkv_cache *c, const pkv_attention_params *p)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, d = g->d, ql = p->q_len;
    const size_t per_seq = (size_t)ql * H * d, count = (size_t)p->n_seqs * per_seq;
    pkv_shard *sh = pkv_shard_of(c, p->layer);
    for (uint32_t s = 0; s < p->n_seqs; s++)
        if (!pkv_find_seq(c, p->seqs[s])->layers[p->layer].window_slot) pkv_pool_want(c, p->layer, 0, 0, H);
    pkv_status st = pkv_pool_ensure(c);
    if (st != PKV_OK) return st;
    uint16_t *rows = malloc(2 * count * sizeof *rows);
    uint32_t *runs = malloc((size_t)p->n_seqs * H * 2 * 3 * sizeof *runs);
    if (!rows || !runs) {
        free(rows), free(runs);
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    }
    /* rows in run order: sequence, head, K|V, query position */
    for (uint32_t s = 0; s < p->n_seqs && st == PKV_OK; s++)
        for (uint32_t h = 0; h < H && st == PKV_OK; h++)
            for (uint32_t kv = 0; kv < 2 && st == PKV_OK; kv++)
                for (uint32_t t = 0; t < ql && st == PKV_OK; t++) {
                    const size_t from = s * per_seq + ((size_t)t * H + h) * d;
                    uint16_t *dst = rows + ((((size_t)s * H + h) * 2 + kv) * ql + t) * d;
                    const void *src = kv ? p->v_new : p->k_new;
                    for (uint32_t i = 0; i < d; i++) {
                        float x = p->kv_new_dtype == PKV_F16 ? pkv_f16_to_f32(((const uint16_t *)src)[from + i])
                                                             : ((const float *)src)[from + i];
                        if (!isfinite(x) || fabsf(x) > PKV_F16_MAX) {
                            st = pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_attention: %s_new[%zu] is not finite or beyond fp16 range",
                                          kv ? "v" : "k", from + i);
                            break;
                        }
                        dst[i] = p->kv_new_dtype == PKV_F16 ? ((const uint16_t *)src)[from + i] : pkv_f32_to_f16(x);
                    }
                }
    for (uint32_t s = 0; s < p->n_seqs && st == PKV_OK; s++) {
        pkv_layer_state *L = &pkv_find_seq(c, p->seqs[s])->layers[p->layer];
        if (!L->window_slot) {
            L->window_slot = malloc(H * sizeof *L->window_slot);
            if (!L->window_slot) {
                st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
                break;
            }
            for (uint32_t h = 0; h < H; h++) L->window_slot[h] = pkv_arena_take(&sh->windows);
        }
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t kv = 0; kv < 2; kv++) {
                uint32_t *r = runs + (((size_t)s * H + h) * 2 + kv) * 3;
                r[0] = (uint32_t)((((size_t)s * H + h) * 2 + kv) * ql);
                r[1] = L->window_slot[h] * 2 * g->R + kv * g->R + L->n_window;
                r[2] = ql;
            }
    }
    if (st == PKV_OK) {
        pkv_window_op op = {.rows = rows, .n_src_rows = (uint32_t)(2 * count / d), .n_runs = p->n_seqs * H * 2, .runs = runs,
                            .n_rows = (uint32_t)(2 * count / d)};
        st = c->ctx->be->iface->write_window(c->ctx->be, &sh->store, &op);
    }
    free(rows), free(runs);
    return st;
}

/* Builds the op (q from host fp32 or from device memory) and runs it. */
static pkv_status run(pkv_cache *c, const pkv_attention_params *p, pkv_attn_op op)
{
    const uint32_t own = p->k_new ? p->q_len : 0;
    pkv_attn_seq *seqs = NULL;
    uint32_t *table = NULL, table_len = 0, fixed_len = 0;
    pkv_status st = PKV_OK;
    if (own) st = write_own(c, p);
    if (st == PKV_OK) st = build_tables(c, p, own, &seqs, &table, &table_len, &fixed_len);
    if (st == PKV_OK) {
        op.n_seqs = p->n_seqs, op.q_len = p->q_len, op.n_q_heads = p->n_q_heads;
        op.scale = p->scale > 0.0f ? p->scale : (float)(1.0 / sqrt((double)c->g.d));
        op.seqs = seqs, op.table = table, op.table_len = table_len, op.fixed_len = fixed_len;
        st = c->ctx->be->iface->attention(c->ctx->be, &pkv_shard_of(c, p->layer)->store, &op);
        pkv_backend *be = c->ctx->be;
        c->ctx->last_op_ms = st == PKV_OK && be->iface->last_op_ms ? be->iface->last_op_ms(be) : -1.0;
    }
    return st;
}

pkv_status pkv_attention(pkv_cache *c, const pkv_attention_params *params, const void *q, float *out)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !params || !q || !out)
        return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: null argument");
    pkv_clear_error();
    pkv_attention_params full, *p = &full;
    pkv_status st = pkv_attention_check(c, params, p);
    if (st != PKV_OK) return st;
    const size_t nq = (size_t)p->n_seqs * p->q_len * p->n_q_heads * c->g.d;
    float *qf = malloc(nq * sizeof *qf);
    if (!qf) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    /* Logits are sums of q * (scale, code, zero, pattern) products of values within fp16 range: with
     * |q| and |q| * scale at most 2^64 none of them, nor their sums over 256 channels, overflows fp32. */
    const double scale = p->scale > 0.0f ? p->scale : 1.0 / sqrt((double)c->g.d);
    const double q_limit = scale > 1.0 ? PKV_Q_LIMIT / scale : PKV_Q_LIMIT;
    /* one branch-free pass (it vectorises; a per-element check took ~1 us per 1K values, serial before
     * the CPU backend's threads start), then the first bad value found again for the message. |x| <=
     * lim in float is |x| <= q_limit in double: lim is the largest float <= q_limit (x is a float). */
    float lim = (float)q_limit;
    if ((double)lim > q_limit) lim = nextafterf(lim, 0.0f);
    int bad = 0;
    if (p->q_dtype == PKV_F16)
        for (size_t i = 0; i < nq; i++) qf[i] = pkv_f16_to_f32(((const uint16_t *)q)[i]);
    else
        memcpy(qf, q, nq * sizeof *qf);
    for (size_t i = 0; i < nq; i++) bad |= !(fabsf(qf[i]) <= lim); /* NaN: the compare is false */
    for (size_t i = 0; bad && i < nq && st == PKV_OK; i++) {
        if (!isfinite(qf[i])) st = pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_attention: q[%zu] is NaN or Inf", i);
        else if (fabs((double)qf[i]) > q_limit)
            st = pkv_fail(c->ctx, PKV_ERR_NONFINITE,
                          "pkv_attention: q[%zu] = %g is too large: |q| and |q| * scale (%g) must be <= 2^64, or the "
                          "logits overflow fp32", i, (double)qf[i], scale);
    }
    if (st == PKV_OK) {
        const double t0 = pkv_prof_begin();
        st = run(c, p, (pkv_attn_op){.q = qf, .out = out});
        pkv_prof_end("pkv_attention", t0, 1, p->q_len);
    }
    free(qf);
    return st;
}

pkv_status pkv_prewarm(pkv_cache *c, uint32_t n_q_heads, uint32_t max_q_len)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    pkv_clear_error();
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_prewarm: cache is NULL");
    if (n_q_heads == 0 || n_q_heads % c->g.H || max_q_len == 0)
        return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_prewarm: n_q_heads %u must be a multiple of n_kv_heads %u, max_q_len %u >= 1",
                        n_q_heads, c->g.H, max_q_len);
    pkv_backend *be = c->ctx->be;
    pkv_status st = be->iface->prepare ? be->iface->prepare(be, &c->g) : PKV_OK;
    if (st == PKV_OK && be->iface->prewarm) st = be->iface->prewarm(be, &c->g, n_q_heads, max_q_len);
    return st;
}

pkv_status pkv_attention_device(pkv_cache *c, const pkv_attention_params *p, pkv_buf *q, size_t q_off, pkv_buf *out,
                                size_t out_off)
{
    /* p is pkv_attention_check's output (internal.h): not read or checked again */
    if (p->k_new) return pkv_fail(c->ctx, PKV_ERR_UNSUPPORTED, "attention on device buffers: k_new/v_new are host memory only");
    return run(c, p, (pkv_attn_op){.q_buf = q, .q_off = q_off, .out_buf = out, .out_off = out_off});
}
