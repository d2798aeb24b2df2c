/* Mining in an append (SPEC.md section 2, step 1): when a layer mines (pkv_mining: the append that
 * brings it to n_patterns tokens, over its window's tokens then the call's, README "Mining and
 * chunked prefill") and the mine ops of a call, one per source length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "append_job.h"
#include "rng.h"

/* rcp[i] = (float)(1.0 / i), rcp[0] = 0, for i <= n (kept by the cache). */
static const float *rcp_table(pkv_cache *c, uint32_t n)
{
    if (n + 1 > c->rcp_len) {
        float *r = realloc(c->rcp, ((size_t)n + 1) * sizeof *r);
        if (!r) return NULL;
        for (uint32_t i = c->rcp_len; i <= n; i++) r[i] = i ? (float)(1.0 / (double)i) : 0.0f;
        c->rcp = r;
        c->rcp_len = n + 1;
    }
    return c->rcp;
}

/* PKV_MINING_AT_M: a PATTERN layer that has not mined, whose tokens are all in the window (none flushed),
 * and that this call brings to >= M tokens, mines over the window's tokens then the call's, as one
 * append of all of them would (README "Mining and chunked prefill"). */
int pkv_mines_late(const pkv_cache *c, const pkv_layer_state *L, uint32_t n)
{
    return c->g.mode == PKV_MODE_PATTERN && c->cfg.mining == PKV_MINING_AT_M && L->n_blocks == 0 &&
           L->bank_count == 0 && L->n_window > 0 && L->n_window + n >= c->g.M;
}

/* The source of a call with late mines, on the host: a late layer's K and V are its window's rows
 * (kept by save_window) then the call's tokens, the other layers' the call's own; device tokens (one
 * layer, engine integration) are read back first. *mem receives the one allocation (freed by the
 * caller). This is the only cost of mining late: a host copy of the window and the call, once. */
pkv_status pkv_join_late(pkv_cache *c, const layer_job *jobs, uint32_t nl, const token_src *src, token_src *out,
                            void **mem)
{
    const pkv_geom *g = &c->g;
    const size_t row = (size_t)g->H * g->d, call = (size_t)src->n * row;
    const uint32_t n_src = src->n_src ? src->n_src : 1;
    size_t halves = src->k ? 0 : 2 * call * n_src;
    for (uint32_t j = 0; j < nl; j++)
        if (jobs[j].late) halves += 2 * (size_t)jobs[j].n * row;
    const size_t ptr_bytes = ((size_t)2 * nl * sizeof(uint16_t *) + 15) & ~(size_t)15;
    uint8_t *m = malloc(ptr_bytes + halves * 2);
    *mem = m;
    if (!m) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    const uint16_t **k = (const uint16_t **)m, **v = k + nl;
    uint16_t *next = (uint16_t *)(m + ptr_bytes);
    const uint16_t *dev_k = NULL;
    if (!src->k) {
        pkv_status st = c->ctx->be->iface->buf_read(c->ctx->be, src->dev, src->dev_off, next, 2 * call * n_src * 2);
        if (st != PKV_OK) return st;
        dev_k = next;
        next += 2 * call * n_src;
    }
    for (uint32_t j = 0; j < nl; j++) {
        const uint32_t i = jobs[j].idx;
        const uint16_t *ck = src->k ? src->k[i] : dev_k + 2 * call * i, *cv = src->k ? src->v[i] : ck + call;
        k[i] = ck, v[i] = cv; /* idx == j: the jobs are in source order */
        if (!jobs[j].late) continue;
        const uint32_t W = jobs[j].start_window;
        uint16_t *jk = next, *jv = next + (size_t)jobs[j].n * row;
        for (uint32_t h = 0; h < g->H; h++) { /* window slot: K [R][d] then V [R][d] */
            const uint8_t *w = jobs[j].saved_window + (size_t)h * g->window_bytes;
            for (uint32_t t = 0; t < W; t++) {
                memcpy(jk + (size_t)t * row + (size_t)h * g->d, w + (size_t)t * g->d * 2, (size_t)g->d * 2);
                memcpy(jv + (size_t)t * row + (size_t)h * g->d, w + ((size_t)g->R + t) * g->d * 2, (size_t)g->d * 2);
            }
        }
        memcpy(jk + (size_t)W * row, ck, call * 2);
        memcpy(jv + (size_t)W * row, cv, call * 2);
        k[i] = jk, v[i] = jv;
        next += 2 * (size_t)jobs[j].n * row;
    }
    *out = (token_src){k, v, NULL, 0, src->n, 0};
    return PKV_OK;
}

/* Whether job jb mines in the group of source length n, shard sh and (device tokens: one op reads one
 * source) source idx. */
static int in_group(const pkv_cache *c, const layer_job *jb, const token_src *src, uint32_t n, uint32_t idx,
                    const pkv_shard *sh)
{
    return jb->p.mine && jb->mine_slots && jb->n == n && pkv_shard_of(c, jb->layer) == sh && (src->k || jb->idx == idx);
}

/* One mine op for the mining layers of shard sh whose source holds n tokens (a layer that mines late has
 * more than the others), then their blocks and banks recorded, or on failure their slots given back. */
static pkv_status mine_group(pkv_cache *c, layer_job *jobs, uint32_t nj, const token_src *src, uint32_t n, uint32_t idx,
                             pkv_shard *sh, pkv_mine_layer *ml, const uint16_t **tk, const uint16_t **tv, uint32_t *init,
                             uint32_t *scratch, const float *rcp, double *op_ms)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, M = g->M, n_quant = n / g->G * g->G, groups = n_quant / g->G;
    const uint32_t ns = pkv_sample_count(n, c->cfg.kmeans_sample);
    uint32_t nm = 0;
    for (uint32_t j = 0; j < nj; j++) {
        if (!in_group(c, &jobs[j], src, n, idx, sh)) continue;
        uint32_t *in = init + (size_t)nm * H * 2 * M;
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t kv = 0; kv < 2; kv++)
                pkv_draw_distinct(pkv_init_seed(c->cfg.seed, jobs[j].layer, h, kv), ns, M, in + ((size_t)h * 2 + kv) * M,
                                  scratch);
        ml[nm] = (pkv_mine_layer){.init_index = in, .chunk_table = jobs[j].L->chunks, .block_slot = jobs[j].slots};
        if (src->k) tk[nm] = src->k[jobs[j].idx], tv[nm] = src->v[jobs[j].idx];
        nm++;
    }
    pkv_mine_op op = {
        .n_layers = nm, .layers = ml, .tokens_k = src->k ? tk : NULL, .tokens_v = src->k ? tv : NULL,
        .tokens_buf = src->dev, .tokens_off = src->k ? 0 : pkv_src_dev_off(src, g, idx), .n_tokens = n, .n_sample = ns, .n_quant = n_quant, .rcp = rcp,
        .max_iters = c->cfg.kmeans_iters, .tol2 = c->cfg.kmeans_tol * c->cfg.kmeans_tol,
    };
    pkv_status st = c->ctx->be->iface->mine(c->ctx->be, &sh->store, &op);
    if (st == PKV_OK) pkv_add_op_time(c, op_ms);
    for (uint32_t j = 0; j < nj; j++) {
        if (!in_group(c, &jobs[j], src, n, idx, sh)) continue;
        pkv_layer_state *L = jobs[j].L;
        jobs[j].mine_slots = 0;
        if (st == PKV_OK) {
            for (uint32_t gi = 0; gi < groups; gi++)
                for (uint32_t h = 0; h < H; h++) L->blocks[(size_t)(L->n_blocks + gi) * H + h] = jobs[j].slots[h * groups + gi];
            L->n_blocks += groups;
            L->bank_count = M;
            jobs[j].pos = n_quant;
        } else {
            for (uint32_t b = 0; b < H * groups; b++) pkv_arena_release(&sh->blocks, jobs[j].slots[b]);
            for (uint32_t b = 0; b < H * PKV_MAX_CHUNKS; b++) {
                pkv_arena_release(&sh->chunks, L->chunks[b]);
                L->chunks[b] = PKV_NO_SLOT;
            }
        }
    }
    return st;
}

/* Round 0's mining: one mine op per source length and shard (all layers of a prompt in one shard share one;
 * device tokens: one per source). */
pkv_status pkv_run_mines(pkv_cache *c, layer_job *jobs, uint32_t nj, const token_src *src, double *op_ms)
{
    const uint32_t H = c->g.H, M = c->g.M;
    uint32_t nm = 0, n_max = 0;
    for (uint32_t j = 0; j < nj; j++)
        if (jobs[j].p.mine) nm++, n_max = jobs[j].n > n_max ? jobs[j].n : n_max;
    if (!nm) return PKV_OK;
    pkv_mine_layer *ml = calloc(nm, sizeof *ml);
    uint32_t *init = malloc((size_t)nm * H * 2 * M * sizeof *init);
    uint32_t *scratch = malloc((size_t)n_max * sizeof *scratch);
    const uint16_t **tk = malloc(nm * sizeof *tk), **tv = malloc(nm * sizeof *tv);
    const float *rcp = rcp_table(c, pkv_sample_count(n_max, c->cfg.kmeans_sample));
    pkv_status st = PKV_OK;
    if (!ml || !init || !scratch || !tk || !tv || !rcp) st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < n_max && scratch; i++) scratch[i] = i; /* the identity, kept by every draw */
    for (uint32_t j = 0; j < nj && st == PKV_OK; j++) /* the slots of layers not mined on failure: release_unused */
        if (jobs[j].p.mine && jobs[j].mine_slots)
            st = mine_group(c, jobs, nj, src, jobs[j].n, jobs[j].idx, pkv_shard_of(c, jobs[j].layer), ml, tk, tv, init,
                            scratch, rcp, op_ms);
    free(ml), free(init), free(scratch), free((void *)tk), free((void *)tv);
    return st;
}

