/* The CPU ops: prefill mining and window flush (docs/NUMERICS.md), through the kernel table of the
 * backend (cpu_simd.h: scalar or vectorised, every level bit-exact with the others). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_backend.h"
#include "cpu_k_assign.h"
#include "cpu_kmeans.h"
#include "f16.h"
#include "internal.h"
#include "quant.h"

static uint8_t *slot_ptr(pkv_buf *b, uint32_t slot, uint32_t bytes) { return pkv_cpu_buf_data(b) + (size_t)slot * bytes; }

static void chunk_ptrs(const pkv_store *st, const uint32_t *table, uint32_t n, const uint8_t **out)
{
    for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < n; ci++) out[ci] = slot_ptr(st->chunks, table[ci], st->g->chunk_bytes);
}

/* Pattern m as fp16 into its chunk, and back as floats (d <= 256): the conversions of f16.c, the same
 * bits as pkv_f32_to_f16 / pkv_f16_to_f32 for every value. */
static void store_pattern(const pkv_cpu_kernels *k, const pkv_store *st, const uint32_t *table, uint32_t m, int kv,
                          const float *p, float *back)
{
    const uint32_t d = st->g->d;
    uint8_t *c = slot_ptr(st->chunks, table[m / PKV_CHUNK_PATTERNS], st->g->chunk_bytes);
    uint32_t j = (kv ? PKV_CHUNK_PATTERNS : 0) + m % PKV_CHUNK_PATTERNS;
    uint16_t h[256];
    pkv_f32_to_f16_at(pkv_f16_level(), p, h, d);
    for (uint32_t i = 0; i < d; i++) pkv_wr16(c + ((size_t)j * d + i) * 2, h[i]);
    k->f16_to_f32(h, back, d);
}

static void f16_rows(const pkv_cpu_kernels *k, const uint16_t *src, uint32_t n, uint32_t stride, uint32_t d, float *dst)
{
    if (stride == d) {
        k->f16_to_f32(src, dst, (size_t)n * d);
        return;
    }
    for (uint32_t t = 0; t < n; t++) {
#if defined(__GNUC__)
        /* rows a head's stride apart (H d halves): the hardware prefetchers do not follow them, and
         * the prompt's rows come from memory (~18% of a one-thread prefill waited on these loads) */
        if (t + 8 < n)
            for (uint32_t i = 0; i < d; i += 32) __builtin_prefetch(src + (size_t)(t + 8) * stride + i, 0, 0);
#endif
        k->f16_to_f32(src + (size_t)t * stride, dst + (size_t)t * d, d);
    }
}

/* The n patterns of a bank as floats (pkv_bank_load, through the kernel's conversion where the chunk's
 * little-endian fp16 is the host's). */
static void bank_rows(const pkv_cpu_kernels *k, const pkv_store *st, const uint32_t *table, uint32_t n, float *PK,
                      float *PV)
{
    const uint8_t *chunks[PKV_MAX_CHUNKS];
    chunk_ptrs(st, table, n, chunks);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint32_t d = st->g->d;
    for (uint32_t m = 0; m < n; m++) {
        const uint16_t *c = (const uint16_t *)chunks[m / PKV_CHUNK_PATTERNS] + (size_t)(m % PKV_CHUNK_PATTERNS) * d;
        k->f16_to_f32(c, PK + (size_t)m * d, d);
        k->f16_to_f32(c + (size_t)PKV_CHUNK_PATTERNS * d, PV + (size_t)m * d, d);
    }
#else
    (void)k;
    pkv_bank_load(st->g, chunks, n, PK, PV);
#endif
}

/* Quantizes groups of G tokens (x: [n][d] K and V) with their assignments into the given blocks. */
static void encode_groups(const pkv_cpu_kernels *k, const pkv_store *st, uint32_t groups, const uint32_t *slots, const float *xk, const float *xv,
                          const uint8_t *ka, const uint8_t *va, const float *PK, const float *PV)
{
    const pkv_geom *g = st->g;
    for (uint32_t gi = 0; gi < groups; gi++) {
        size_t t0 = (size_t)gi * g->G;
        k->block_encode(g, xk + t0 * g->d, xv + t0 * g->d, ka ? ka + t0 : NULL, va ? va + t0 : NULL, PK, PV,
                        slot_ptr(st->blocks, slots[gi], g->block_bytes));
    }
}

typedef struct mine_job {
    pkv_backend *be;
    const pkv_cpu_kernels *k;
    const pkv_store *st;
    const pkv_mine_op *op;
    uint8_t *a; /* per (layer, kv head, K or V): the tokens' pattern indices, [a_stride] */
    size_t a_stride;
} mine_job;

/* Phase 1, one (layer, kv head, K or V) of a mine op, V's units first (they iterate longer: the
 * longest first balances the threads): k-means over the sample (all tokens, or xs: the sampled rows
 * gathered), the bank's patterns, the assignment of the tokens. */
static int mine_unit(uint32_t u, void *arg)
{
    const mine_job *j = arg;
    const pkv_store *st = j->st;
    const pkv_mine_op *op = j->op;
    const pkv_geom *g = st->g;
    const uint32_t n = op->n_tokens, ns = op->n_sample, d = g->d, H = g->H, M = g->M, LH = op->n_layers * H;
    const int kv = u < LH, sampled = ns < n;
    const uint32_t l = (u % LH) / H, h = u % H, slot = (l * H + h) * 2 + (uint32_t)kv;
    const pkv_mine_layer *ml = &op->layers[l];
    const uint32_t *table = ml->chunk_table + (size_t)h * PKV_MAX_CHUNKS;
    uint8_t *a = j->a + (size_t)slot * j->a_stride;
    if (kv == 0 && g->k_assign == PKV_K_ASSIGN_NONE) { /* V-only patterns: a K bank of zeros (K's index is V's) */
        float zero[256] = {0}, back[256];
        for (uint32_t m = 0; m < M; m++) store_pattern(j->k, st, table, m, 0, zero, back);
        return 0;
    }
    /* one scratch block kept by the backend between calls (a prompt's rows are megabytes: fresh pages
     * each call cost a quarter of the op); rounded to 64 bytes per array. A sampled run converts the
     * sample's rows and then the tokens to assign a chunk at a time (nx rows, a multiple of G) while they
     * are in the caches: the whole prompt's rows first were megabytes written and read back, the
     * conversion's stores ~15% of a one-thread prefill. */
#define PKV_UP64(b) (((b) + 63) & ~(size_t)63)
    const uint32_t nx = sampled ? (g->G >= 256 ? g->G : 256 / g->G * g->G) : n;
    const size_t b_x = PKV_UP64((size_t)nx * d * sizeof(float)), b_P = PKV_UP64((size_t)M * d * sizeof(float));
    const size_t b_xs = sampled ? PKV_UP64((size_t)ns * d * sizeof(float)) : 0;
    const uint32_t kn = sampled ? (ns > op->n_quant ? ns : op->n_quant) : n;
#undef PKV_UP64
    uint8_t *mem = pkv_cpu_scratch_take(j->be, b_x + 2 * b_P + b_xs + pkv_kmeans_scratch_bytes(kn, d, M));
    if (!mem) return 1;
    /* c: the centroids; P: the bank's patterns as stored, [M][d] */
    float *x = (float *)mem, *c = (float *)(mem + b_x), *P = (float *)(mem + b_x + b_P);
    float *xs = sampled ? (float *)(mem + b_x + 2 * b_P) : NULL;
    pkv_kmeans ks;
    pkv_kmeans_init_in(&ks, mem + b_x + 2 * b_P + b_xs, kn, d, M, 0);
    int failed = 0;
    const uint16_t *src = (kv ? op->tokens_v : op->tokens_k)[l] + (size_t)h * d;
    if (sampled)
        for (uint32_t s = 0; s < ns; s++) f16_rows(j->k, src + (size_t)pkv_sample_token(s, n, ns) * H * d, 1, d, d, xs + (size_t)s * d);
    else
        f16_rows(j->k, src, n, H * d, d, x);
    pkv_kmeans_run(&ks, j->k, sampled ? xs : x, ns, ml->init_index + ((size_t)h * 2 + (uint32_t)kv) * M, op->rcp,
                   op->max_iters, op->tol2, c);
    for (uint32_t m = 0; m < M; m++) store_pattern(j->k, st, table, m, kv, c + (size_t)m * d, P + (size_t)m * d);
    /* every token against the patterns, nx at a time (tokens, and with the variants groups of G, are
     * independent of each other there; an unsampled run's x is the k-means' own, its bounds reused) */
    for (uint32_t t0 = 0; t0 < op->n_quant && !failed; t0 += nx) {
        const uint32_t nq = op->n_quant - t0 < nx ? op->n_quant - t0 : nx;
        if (sampled) f16_rows(j->k, src + (size_t)t0 * H * d, nq, H * d, d, x);
        if (kv == 0 && g->k_assign != PKV_K_ASSIGN_MINMAX) { /* a variant (cpu_k_assign.c) */
            failed = pkv_cpu_assign_k(j->k, g->k_assign, 0, x, nq, g->G, d, P, M, a + t0) != 0;
        } else {
            pkv_kmeans_assign(&ks, j->k, x, nq, !sampled, c, P, ks.idx);
            for (uint32_t t = 0; t < nq; t++) a[t0 + t] = (uint8_t)ks.idx[t];
        }
    }
    pkv_cpu_scratch_give(j->be, mem);
    return failed;
}

/* Phase 2, one (layer, kv head): its blocks from both halves' patterns and assignments. */
static int mine_encode_unit(uint32_t u, void *arg)
{
    const mine_job *j = arg;
    const pkv_store *st = j->st;
    const pkv_mine_op *op = j->op;
    const pkv_geom *g = st->g;
    const uint32_t d = g->d, H = g->H, M = g->M, G = g->G, l = u / H, h = u % H, groups = op->n_quant / G;
    /* a group's rows at a time, converted to fp32 while they are in the caches (the whole prompt's
     * rows first were megabytes written and read back per head) */
    const size_t b_x = (((size_t)G * d * sizeof(float)) + 63) & ~(size_t)63, b_P = (size_t)M * d * sizeof(float);
    float *x = pkv_cpu_scratch_take(j->be, 2 * b_x + 2 * b_P);
    if (!x) return 1;
    float *xv = (float *)((uint8_t *)x + b_x), *PK = (float *)((uint8_t *)x + 2 * b_x), *PV = PK + (size_t)M * d;
    uint8_t *ka = j->a + (size_t)u * 2 * j->a_stride, *va = ka + j->a_stride;
    if (g->k_assign == PKV_K_ASSIGN_NONE) memcpy(ka, va, op->n_quant);
    bank_rows(j->k, st, op->layers[l].chunk_table + (size_t)h * PKV_MAX_CHUNKS, M, PK, PV); /* phase 1 stored them */
    const uint32_t *slots = op->layers[l].block_slot + (size_t)h * groups;
    for (uint32_t gi = 0; gi < groups; gi++) {
        const size_t t0 = (size_t)gi * G;
        f16_rows(j->k, op->tokens_k[l] + (t0 * H + h) * d, G, H * d, d, x);
        f16_rows(j->k, op->tokens_v[l] + (t0 * H + h) * d, G, H * d, d, xv);
        encode_groups(j->k, st, 1, slots + gi, x, xv, ka + t0, va + t0, PK, PV);
    }
    pkv_cpu_scratch_give(j->be, x);
    return 0;
}

pkv_status pkv_cpu_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op)
{
    if (!op->tokens_k) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "cpu mine: tokens must be in host memory");
    const uint32_t LH = op->n_layers * st->g->H;
    const size_t a_stride = ((size_t)op->n_quant + 63) & ~(size_t)63;
    /* the backend's scratch, kept between calls (fresh pages of a large malloc are cleared by the kernel;
     * phase 2 reads the patterns back from the bank, not from a copy of every head's here: a first
     * call's page faults) */
    uint8_t *mem = pkv_cpu_scratch_take(be, (size_t)2 * LH * a_stride);
    mine_job j = {be, pkv_cpu_kernels_of(be), st, op, mem, a_stride};
    pkv_status s = mem ? PKV_OK : pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu mine: out of host memory");
    /* k-means per (layer, head, K or V) on every core, then the blocks per (layer, head) */
    if (s == PKV_OK && (s = pkv_cpu_run_op(be, 2 * LH, mine_unit, &j, "mine")) == PKV_OK) {
        const double ms = pkv_cpu_last_op_ms(be);
        s = pkv_cpu_run_op(be, LH, mine_encode_unit, &j, "mine");
        pkv_cpu_set_last_op_ms(be, ms + pkv_cpu_last_op_ms(be));
    }
    pkv_cpu_scratch_give(be, mem);
    return s;
}

typedef struct flush_job {
    const pkv_cpu_kernels *k;
    const pkv_store *st;
    const pkv_flush_op *op;
} flush_job;

/* One (layer, kv head) of a flush op. */
static int flush_unit(uint32_t u, void *arg)
{
    const flush_job *j = arg;
    const pkv_store *st = j->st;
    const pkv_geom *g = st->g;
    const pkv_flush_layer *op = &j->op->layers[u / g->H];
    const uint32_t R = g->R, d = g->d, h = u % g->H;
    float *xs[2] = {malloc((size_t)R * d * sizeof(float)), malloc((size_t)R * d * sizeof(float))};
    float *P[2] = {NULL, NULL};
    uint8_t a[2][8 * 128];
    const uint8_t *win = slot_ptr(st->windows, op->window_slot[h], g->window_bytes);
    if (!xs[0] || !xs[1]) goto fail;
    for (int kv = 0; kv < 2; kv++) f16_rows(j->k, (const uint16_t *)(win + (size_t)kv * R * d * 2), R, d, d, xs[kv]);
    const int pattern = g->mode == PKV_MODE_PATTERN;
    if (pattern) {
        const uint32_t *table = op->chunk_table + (size_t)h * PKV_MAX_CHUNKS;
        uint32_t n = op->bank_count + op->append_pattern;
        P[0] = malloc((size_t)n * d * sizeof(float));
        P[1] = malloc((size_t)n * d * sizeof(float));
        if (!P[0] || !P[1]) goto fail;
        const uint8_t *chunks[PKV_MAX_CHUNKS];
        chunk_ptrs(st, table, op->bank_count, chunks);
        pkv_bank_load(g, chunks, op->bank_count, P[0], P[1]);
        const int v_only = g->k_assign == PKV_K_ASSIGN_NONE;
        for (int kv = 0; kv < 2; kv++) {
            if (op->append_pattern) {
                float centre[256];
                if (kv == 0 && v_only) memset(centre, 0, sizeof centre); /* V-only patterns: K's are zero */
                else j->k->centre(xs[kv], R, d, centre);
                store_pattern(j->k, st, table, op->bank_count, kv, centre, P[kv] + (size_t)op->bank_count * d);
            }
            if (kv == 0 && v_only) continue; /* K takes V's index (below) */
            if (kv == 0 && g->k_assign != PKV_K_ASSIGN_MINMAX) { /* a variant (cpu_k_assign.c) */
                if (pkv_cpu_assign_k(j->k, g->k_assign, 1, xs[0], R, g->G, d, P[0], n, a[0])) goto fail;
            } else {
                j->k->argmin_minmax(xs[kv], R, d, P[kv], n, a[kv]);
            }
        }
        if (v_only) memcpy(a[0], a[1], R);
    }
    uint32_t groups = R / g->G;
    encode_groups(j->k, st, groups, op->block_slot + (size_t)h * groups, xs[0], xs[1], pattern ? a[0] : NULL,
                  pattern ? a[1] : NULL, P[0], P[1]);
    int failed = 0;
    goto done;
fail:
    failed = 1;
done:
    for (int kv = 0; kv < 2; kv++) free(xs[kv]), free(P[kv]);
    return failed;
}

pkv_status pkv_cpu_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op)
{
    flush_job j = {pkv_cpu_kernels_of(be), st, op};
    return pkv_cpu_run_op(be, op->n_layers * st->g->H, flush_unit, &j, "flush");
}

pkv_status pkv_cpu_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op)
{
    (void)be;
    if (!op->rows) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "cpu window write: rows must be in host memory");
    const size_t row = (size_t)st->g->d * 2;
    uint8_t *win = pkv_cpu_buf_data(st->windows);
    for (uint32_t r = 0; r < op->n_runs; r++) {
        const uint32_t *run = op->runs + 3 * (size_t)r;
        memcpy(win + (size_t)run[1] * row, op->rows + (size_t)run[0] * st->g->d, run[2] * row);
    }
    return PKV_OK;
}
