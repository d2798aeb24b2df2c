/* pkv_append: validation, then prefill mining or window fill and flush (SPEC.md section 2).
 * Everything that can fail for a reason of the caller's (bad input, budget, device memory) is
 * checked before any state changes, so a failed append leaves the sequence as it was. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "internal.h"
#include "rng.h"

/* Where an append's fp16 tokens are: host memory (pkv_append) or a device buffer (the engine
 * integration of a GPU backend), K [n][H][d] then V [n][H][d] either way. */
typedef struct token_src {
    const uint16_t *host;
    pkv_buf *dev;
    size_t dev_off;
    uint32_t n;
} token_src;

/* Converts input to fp16 [n][H][d], rejecting NaN, Inf and values beyond fp16 range. */
static pkv_status to_f16(pkv_cache *c, const void *src, pkv_dtype dt, size_t count, uint16_t *dst, const char *what)
{
    if (dt == PKV_F16) {
        const uint16_t *h = src;
        for (size_t i = 0; i < count; i++) {
            if ((h[i] & 0x7C00u) == 0x7C00u)
                return pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_append: %s[%zu] is NaN or Inf", what, i);
            dst[i] = h[i];
        }
        return PKV_OK;
    }
    const float *f = src;
    size_t i = pkv_f32_to_f16_finite(f, dst, count);
    if (i < count)
        return pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_append: %s[%zu] = %g is not finite or beyond fp16 range", what,
                        i, (double)f[i]);
    return PKV_OK;
}

typedef struct plan {
    int mine;
    uint32_t n_quant;  /* tokens quantized by mining */
    uint32_t blocks, chunks, windows;
    uint32_t new_groups;
} plan;

static uint32_t chunk_slot(const pkv_layer_state *L, uint32_t h, uint32_t ci)
{
    return L->chunks ? L->chunks[h * PKV_MAX_CHUNKS + ci] : PKV_NO_SLOT;
}

static plan make_plan(const pkv_cache *c, const pkv_layer_state *L, uint32_t n)
{
    const pkv_geom *g = &c->g;
    plan p = {0};
    uint32_t total = L->n_blocks * g->G + L->n_window, pos = 0, nw = L->n_window, bc = L->bank_count;
    if (!L->window_slot) p.windows = g->H;
    if (g->mode == PKV_MODE_PATTERN && total == 0 && n >= g->M) {
        p.mine = 1;
        p.n_quant = n / g->G * g->G;
        p.new_groups += p.n_quant / g->G;
        p.chunks += (g->M + PKV_CHUNK_PATTERNS - 1) / PKV_CHUNK_PATTERNS * g->H;
        pos = p.n_quant;
        bc = g->M;
    }
    int touched_shared_chunk = 0;
    while (pos < n) {
        uint32_t take = g->R - nw < n - pos ? g->R - nw : n - pos;
        nw += take;
        pos += take;
        if (nw < g->R) break;
        nw = 0;
        p.new_groups += g->R / g->G;
        if (g->mode == PKV_MODE_PATTERN && bc < g->capacity) {
            uint32_t ci = bc / PKV_CHUNK_PATTERNS;
            for (uint32_t h = 0; h < g->H; h++) {
                uint32_t s = p.mine ? PKV_NO_SLOT : chunk_slot(L, h, ci);
                if (bc % PKV_CHUNK_PATTERNS == 0) p.chunks++; /* a chunk exists iff it holds a pattern */
                else if (s != PKV_NO_SLOT && !touched_shared_chunk && c->chunks.refcount[s] > 1) p.chunks++;
            }
            touched_shared_chunk = 1;
            bc++;
        }
    }
    p.blocks = p.new_groups * g->H;
    return p;
}

/* Window rows [n_window, n_window + take) of every head from tokens [first, first + take). */
static pkv_status write_window(pkv_cache *c, pkv_layer_state *L, const token_src *src, uint32_t first, uint32_t take,
                               uint16_t *tmp)
{
    const pkv_geom *g = &c->g;
    pkv_backend *be = c->ctx->be;
    const uint32_t d = g->d, H = g->H;
    const size_t row = (size_t)d * 2;
    pkv_status st = PKV_OK;
    for (uint32_t h = 0; h < H && st == PKV_OK; h++)
        for (int kv = 0; kv < 2 && st == PKV_OK; kv++) {
            size_t dst = (size_t)L->window_slot[h] * g->window_bytes + (kv ? (size_t)g->R * row : 0) + L->n_window * row;
            size_t first_row = (size_t)kv * src->n * H + (size_t)first * H + h; /* in rows of d values */
            if (src->host) {
                for (uint32_t t = 0; t < take; t++)
                    memcpy(tmp + (size_t)t * d, src->host + (first_row + (size_t)t * H) * d, row);
                st = be->iface->buf_write(be, c->windows.buf, dst, tmp, take * row);
            } else {
                for (uint32_t t = 0; t < take && st == PKV_OK; t++)
                    st = be->iface->buf_copy(be, c->windows.buf, dst + t * row, src->dev,
                                             src->dev_off + (first_row + (size_t)t * H) * row, row);
            }
        }
    if (st == PKV_OK) L->n_window += take;
    return st;
}

/* Takes `groups` new block slots per head into op order [H][groups] and appends them to L. */
static void take_blocks(pkv_cache *c, pkv_layer_state *L, uint32_t groups, uint32_t *op_slots)
{
    const uint32_t H = c->g.H;
    for (uint32_t gi = 0; gi < groups; gi++)
        for (uint32_t h = 0; h < H; h++) {
            uint32_t s = pkv_arena_take(&c->blocks);
            op_slots[h * groups + gi] = s;
            L->blocks[(size_t)(L->n_blocks + gi) * H + h] = s;
        }
}

static pkv_status run_mine(pkv_cache *c, pkv_layer_state *L, uint32_t layer, const token_src *src, uint32_t n_quant)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, M = g->M, groups = n_quant / g->G, n = src->n;
    uint32_t *init = malloc((size_t)H * 2 * M * sizeof *init);
    uint32_t *scratch = malloc((size_t)n * sizeof *scratch);
    float *rcp = malloc(((size_t)n + 1) * sizeof *rcp);
    uint32_t *blocks = malloc(((size_t)H * groups + 1) * sizeof *blocks);
    pkv_status st = PKV_OK;
    if (!init || !scratch || !rcp || !blocks) {
        st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        goto done;
    }
    for (uint32_t h = 0; h < H; h++)
        for (uint32_t kv = 0; kv < 2; kv++)
            pkv_draw_distinct(pkv_init_seed(c->cfg.seed, layer, h, kv), n, M, init + ((size_t)h * 2 + kv) * M, scratch);
    rcp[0] = 0.0f;
    for (uint32_t i = 1; i <= n; i++) rcp[i] = (float)(1.0 / (double)i);
    for (uint32_t h = 0; h < H; h++)
        for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < M; ci++) L->chunks[h * PKV_MAX_CHUNKS + ci] = pkv_arena_take(&c->chunks);
    take_blocks(c, L, groups, blocks);
    pkv_mine_op op = {
        .tokens = src->host, .tokens_buf = src->dev, .tokens_off = src->dev_off, .n_tokens = n, .n_quant = n_quant, .init_index = init, .rcp = rcp,
        .max_iters = c->cfg.kmeans_iters, .tol2 = c->cfg.kmeans_tol * c->cfg.kmeans_tol,
        .chunk_table = L->chunks, .block_slot = blocks,
    };
    st = c->ctx->be->iface->mine(c->ctx->be, &c->store, &op);
    if (st == PKV_OK) {
        L->n_blocks += groups;
        L->bank_count = M;
    } else {
        for (uint32_t i = 0; i < H * groups; i++) pkv_arena_release(&c->blocks, blocks[i]);
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) {
            pkv_arena_release(&c->chunks, L->chunks[i]);
            L->chunks[i] = PKV_NO_SLOT;
        }
    }
done:
    free(init);
    free(scratch);
    free(rcp);
    free(blocks);
    return st;
}

/* Makes the chunk that receives pattern bank_count private to this sequence (copy-on-write). */
static pkv_status own_chunk(pkv_cache *c, pkv_layer_state *L, uint32_t h, uint32_t ci)
{
    uint32_t *slot = &L->chunks[h * PKV_MAX_CHUNKS + ci];
    if (*slot == PKV_NO_SLOT) {
        *slot = pkv_arena_take(&c->chunks);
        return PKV_OK;
    }
    if (c->chunks.refcount[*slot] <= 1) return PKV_OK;
    uint32_t fresh = pkv_arena_take(&c->chunks);
    pkv_backend *be = c->ctx->be;
    pkv_status st = be->iface->buf_copy(be, c->chunks.buf, (size_t)fresh * c->g.chunk_bytes, c->chunks.buf,
                                        (size_t)*slot * c->g.chunk_bytes, c->g.chunk_bytes);
    if (st != PKV_OK) {
        pkv_arena_release(&c->chunks, fresh);
        return st;
    }
    pkv_arena_release(&c->chunks, *slot);
    *slot = fresh;
    return PKV_OK;
}

static pkv_status run_flush(pkv_cache *c, pkv_layer_state *L)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, groups = g->R / g->G;
    uint32_t append = g->mode == PKV_MODE_PATTERN && L->bank_count < g->capacity;
    pkv_status st = PKV_OK;
    if (append)
        for (uint32_t h = 0; h < H && st == PKV_OK; h++) st = own_chunk(c, L, h, L->bank_count / PKV_CHUNK_PATTERNS);
    if (st != PKV_OK) return st;
    uint32_t blocks[8 * 1024];
    uint32_t *slots = (size_t)H * groups <= sizeof blocks / sizeof blocks[0] ? blocks : malloc((size_t)H * groups * 4);
    if (!slots) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    take_blocks(c, L, groups, slots);
    pkv_flush_op op = {
        .window_slot = L->window_slot, .chunk_table = L->chunks, .bank_count = L->bank_count,
        .append_pattern = append, .block_slot = slots,
    };
    st = c->ctx->be->iface->flush(c->ctx->be, &c->store, &op);
    if (st == PKV_OK) {
        L->n_blocks += groups;
        L->bank_count += append;
        L->n_window = 0;
    } else {
        for (uint32_t i = 0; i < H * groups; i++) pkv_arena_release(&c->blocks, slots[i]);
    }
    if (slots != blocks) free(slots);
    return st;
}

/* Host-side arrays the append will need, allocated up front so that nothing fails halfway. */
static pkv_status reserve_host(pkv_cache *c, pkv_layer_state *L, const plan *p)
{
    const uint32_t H = c->g.H;
    if (L->n_blocks + p->new_groups > L->cap_blocks) {
        uint32_t cap = L->n_blocks + p->new_groups;
        if (cap < 2 * L->cap_blocks) cap = 2 * L->cap_blocks;
        uint32_t *nb = realloc(L->blocks, (size_t)cap * H * sizeof *nb);
        if (!nb) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        L->blocks = nb;
        L->cap_blocks = cap;
    }
    if (c->g.mode == PKV_MODE_PATTERN && !L->chunks) {
        L->chunks = malloc((size_t)H * PKV_MAX_CHUNKS * sizeof *L->chunks);
        if (!L->chunks) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) L->chunks[i] = PKV_NO_SLOT;
    }
    if (!L->window_slot) {
        L->window_slot = malloc(H * sizeof *L->window_slot);
        if (!L->window_slot) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t h = 0; h < H; h++) L->window_slot[h] = PKV_NO_SLOT;
    }
    return PKV_OK;
}

pkv_status pkv_append_check(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, pkv_dtype dtype)
{
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_append: cache is NULL");
    pkv_sequence *s = pkv_find_seq(c, seq);
    if (!s) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_append: sequence %u does not exist", seq);
    if (layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_append: layer %u out of range (n_layers = %u)", layer,
                        c->cfg.n_layers);
    if (dtype != PKV_F32 && dtype != PKV_F16)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append: dtype %d is not PKV_F32 or PKV_F16", (int)dtype);
    const pkv_layer_state *L = &s->layers[layer];
    if ((uint64_t)L->n_blocks * c->g.G + L->n_window + n > (1u << 30))
        return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_append: more than 2^30 tokens in one sequence");
    return PKV_OK;
}

/* Everything after the values were checked and made fp16: budget, then mining or window and flushes. */
static pkv_status append_tokens(pkv_cache *c, pkv_layer_state *L, uint32_t layer, const token_src *src)
{
    const pkv_geom *g = &c->g;
    const uint32_t n = src->n;
    uint16_t *tmp = malloc((size_t)g->R * g->d * sizeof *tmp);
    if (!tmp) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    plan p = make_plan(c, L, n);
    pkv_status st = pkv_pool_ensure(c, p.blocks, p.chunks, p.windows);
    if (st == PKV_OK) st = reserve_host(c, L, &p);
    if (st != PKV_OK) goto done;

    for (uint32_t h = 0; h < g->H; h++)
        if (L->window_slot[h] == PKV_NO_SLOT) L->window_slot[h] = pkv_arena_take(&c->windows);
    uint32_t pos = 0;
    if (p.mine) {
        if ((st = run_mine(c, L, layer, src, p.n_quant)) != PKV_OK) goto done;
        pos = p.n_quant;
    }
    while (pos < n) {
        uint32_t take = g->R - L->n_window < n - pos ? g->R - L->n_window : n - pos;
        if ((st = write_window(c, L, src, pos, take, tmp)) != PKV_OK) goto done;
        pos += take;
        if (L->n_window == g->R && (st = run_flush(c, L)) != PKV_OK) goto done;
    }
done:
    free(tmp);
    return st;
}

pkv_status pkv_append(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, const void *k, const void *v,
                      pkv_dtype dtype)
{
    pkv_clear_error();
    pkv_status st = pkv_append_check(c, seq, layer, n, dtype);
    if (st != PKV_OK || n == 0) return st;
    if (!k || !v) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append: k or v is NULL");
    const size_t count = (size_t)n * c->g.H * c->g.d;
    uint16_t *tokens = malloc(2 * count * sizeof *tokens);
    if (!tokens) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    st = to_f16(c, k, dtype, count, tokens, "k");
    if (st == PKV_OK) st = to_f16(c, v, dtype, count, tokens + count, "v");
    token_src src = {tokens, NULL, 0, n};
    if (st == PKV_OK) st = append_tokens(c, &pkv_find_seq(c, seq)->layers[layer], layer, &src);
    free(tokens);
    return st;
}

pkv_status pkv_append_device(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, pkv_buf *tokens, size_t tokens_off)
{
    pkv_status st = pkv_append_check(c, seq, layer, n, PKV_F16);
    if (st != PKV_OK || n == 0) return st;
    token_src src = {NULL, tokens, tokens_off, n};
    return append_tokens(c, &pkv_find_seq(c, seq)->layers[layer], layer, &src);
}
