/* pkv_attention: validation and the per-sequence tables handed to the backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "internal.h"

/* Builds the op's table for one layer: per sequence blocks [H][n_blocks], chunks [H][MAX], windows [H]. */
static pkv_status build_tables(pkv_cache *c, const pkv_attention_params *p, pkv_attn_seq *seqs, uint32_t **table_out,
                               uint32_t *len_out)
{
    const uint32_t H = c->g.H;
    size_t len = 0;
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        const pkv_layer_state *L = &pkv_find_seq(c, p->seqs[s])->layers[p->layer];
        len += (size_t)H * (L->n_blocks + PKV_MAX_CHUNKS + 1);
    }
    uint32_t *table = malloc((len ? len : 1) * sizeof *table);
    if (!table) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    size_t off = 0;
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        const pkv_layer_state *L = &pkv_find_seq(c, p->seqs[s])->layers[p->layer];
        seqs[s] = (pkv_attn_seq){L->n_blocks, L->n_window, L->bank_count, (uint32_t)off};
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t b = 0; b < L->n_blocks; b++) table[off++] = L->blocks[(size_t)b * H + h];
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) table[off++] = L->chunks ? L->chunks[i] : PKV_NO_SLOT;
        for (uint32_t h = 0; h < H; h++) table[off++] = L->window_slot ? L->window_slot[h] : PKV_NO_SLOT;
    }
    *table_out = table;
    *len_out = (uint32_t)len;
    return PKV_OK;
}

static pkv_attention_params attention_defaults(void)
{
    pkv_attention_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.q_len = 1;
    p.q_dtype = PKV_F32;
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
    if (!isfinite(p->scale) || p->scale < 0.0f)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: scale must be finite and >= 0");
    for (uint32_t s = 0; s < p->n_seqs; s++) {
        pkv_sequence *sq = pkv_find_seq(c, p->seqs[s]);
        if (!sq) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_attention: sequence %u does not exist", p->seqs[s]);
        const pkv_layer_state *L = &sq->layers[p->layer];
        uint32_t T = L->n_blocks * c->g.G + L->n_window;
        if (T < p->q_len)
            return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_attention: sequence %u has %u tokens in layer %u, fewer than q_len %u",
                            p->seqs[s], T, p->layer, p->q_len);
    }
    return PKV_OK;
}

/* Builds the op (q from host fp32 or from device memory) and runs it. */
static pkv_status run(pkv_cache *c, const pkv_attention_params *p, pkv_attn_op op)
{
    pkv_attn_seq *seqs = malloc(p->n_seqs * sizeof *seqs);
    uint32_t *table = NULL, table_len = 0;
    pkv_status st = seqs ? build_tables(c, p, seqs, &table, &table_len)
                         : pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    if (st == PKV_OK) {
        op.n_seqs = p->n_seqs, op.q_len = p->q_len, op.n_q_heads = p->n_q_heads;
        op.scale = p->scale > 0.0f ? p->scale : (float)(1.0 / sqrt((double)c->g.d));
        op.seqs = seqs, op.table = table, op.table_len = table_len;
        st = c->ctx->be->iface->attention(c->ctx->be, &c->store, &op);
    }
    free(seqs);
    free(table);
    return st;
}

pkv_status pkv_attention(pkv_cache *c, const pkv_attention_params *params, const void *q, float *out)
{
    if (!c || !params || !q || !out)
        return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_attention: null argument");
    pkv_clear_error();
    pkv_attention_params full, *p = &full;
    pkv_status st = pkv_attention_check(c, params, p);
    if (st != PKV_OK) return st;
    const size_t nq = (size_t)p->n_seqs * p->q_len * p->n_q_heads * c->g.d;
    float *qf = malloc(nq * sizeof *qf);
    if (!qf) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_attention: out of host memory");
    for (size_t i = 0; i < nq && st == PKV_OK; i++) {
        qf[i] = p->q_dtype == PKV_F16 ? pkv_f16_to_f32(((const uint16_t *)q)[i]) : ((const float *)q)[i];
        if (!isfinite(qf[i])) st = pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_attention: q[%zu] is NaN or Inf", i);
    }
    if (st == PKV_OK) st = run(c, p, (pkv_attn_op){.q = qf, .out = out});
    free(qf);
    return st;
}

pkv_status pkv_attention_device(pkv_cache *c, const pkv_attention_params *params, pkv_buf *q, size_t q_off,
                                pkv_buf *out, size_t out_off)
{
    pkv_attention_params p;
    pkv_status st = pkv_attention_check(c, params, &p);
    return st != PKV_OK ? st : run(c, &p, (pkv_attn_op){.q_buf = q, .q_off = q_off, .out_buf = out, .out_off = out_off});
}
