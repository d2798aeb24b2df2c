/* Fused attention on the compressed cache (SPEC.md section 2: decode, and causal q_len > 1), the
 * driver: the work of each (sequence, kv head) is cut into units of consecutive chunks (blocks, then
 * the fp16 window in pieces of up to G tokens) so that batch 1 keeps every core busy; each unit serves
 * all query rows of its kv head in one pass over its chunks (the kernels of cpu_simd.h: scalar, AVX2,
 * AVX-512 or NEON); the last unit of a (sequence, kv head) to finish merges the partial softmax
 * states and adds the patterns' share of V (sum_m S[m] P_V[m]). Softmax runs in base 2: q is
 * prescaled by scale * log2(e). One job on the pool: first one task per (sequence, kv head) builds
 * what its units share (chunk list, prescaled q, q . P_K), then the units (attn_item). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_backend.h"
#include "cpu_simd.h"
#include "internal.h"

#define LOG2E 1.4426950408889634

typedef struct attn_ctx {
    pkv_backend *be;
    const pkv_store *st;
    const pkv_attn_op *op;
    const pkv_cpu_kernels *k;
    uint32_t splits, rows, nbmax;
    size_t part_floats; /* per unit */
    float *parts;
    atomic_uint *done;  /* per (sequence, kv head): units finished */
    atomic_uint *ready; /* per (sequence, kv head): 0 while its prep_task runs, 1 done, 2 failed */
    /* per (sequence, kv head), written by prep_task */
    size_t pair_floats;      /* q [rows][d], then q . P_K [rows][nbmax] */
    float *qs;
    uint32_t *visible;       /* [rows] */
    pkv_attn_chunk *chunks;  /* sequence s, head h: chunks + chunk_off[s] * H + h * (its chunks) */
    size_t *chunk_off;       /* [n_seqs]: chunks of the sequences before s */
} attn_ctx;


static pkv_attn_part part_of(const attn_ctx *a, uint32_t unit, uint32_t nb)
{
    float *p = a->parts + (size_t)unit * a->part_floats;
    const uint32_t rows = a->rows, d = a->st->g->d;
    pkv_attn_part r = {p, p + rows, p + 2 * rows, p + 2 * rows + (size_t)rows * d};
    (void)nb;
    return r;
}

/* Bank patterns m < n of kind kv (0: K, 1: V) as fp32 [n][d]. */
static void bank_f32(const attn_ctx *a, const pkv_attn_seq *sq, uint32_t h, uint32_t n, int kv, float *out)
{
    const pkv_geom *g = a->st->g;
    const uint32_t *chunks = a->op->table + sq->table_offset + (size_t)h * PKV_MAX_CHUNKS;
    for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < n; ci++) {
        const uint8_t *c = pkv_cpu_buf_data(a->st->chunks) + (size_t)chunks[ci] * g->chunk_bytes;
        uint32_t cnt = n - ci * PKV_CHUNK_PATTERNS < PKV_CHUNK_PATTERNS ? n - ci * PKV_CHUNK_PATTERNS : PKV_CHUNK_PATTERNS;
        a->k->f16_to_f32((const uint16_t *)(c + (size_t)(kv ? PKV_CHUNK_PATTERNS : 0) * g->d * 2),
                         out + (size_t)ci * PKV_CHUNK_PATTERNS * g->d, (size_t)cnt * g->d);
    }
}

/* The partial states of all units of one (sequence, kv head) -> its output rows, MR rows at a time. */
#define MR 16
static int merge(const attn_ctx *a, uint32_t pair)
{
    const pkv_geom *g = a->st->g;
    const pkv_attn_op *op = a->op;
    const uint32_t H = g->H, d = g->d, s = pair / H, h = pair % H, gq = op->n_q_heads / H;
    const pkv_attn_seq *sq = &op->seqs[s];
    const uint32_t nb = g->mode == PKV_MODE_PATTERN ? sq->bank_count : 0;
    float *acc = malloc(((size_t)MR * (d + nb + 1) + (size_t)nb * d) * sizeof(float));
    if (!acc) return 1;
    float *S = acc + (size_t)MR * d, *L = S + (size_t)MR * nb, *PV = L + MR;
    if (nb) bank_f32(a, sq, h, nb, 1, PV);
    for (uint32_t r0 = 0; r0 < a->rows; r0 += MR) {
        const uint32_t nr = a->rows - r0 < MR ? a->rows - r0 : MR;
        memset(acc, 0, (size_t)MR * (d + nb) * sizeof(float));
        for (uint32_t j = 0; j < nr; j++) {
            const uint32_t r = r0 + j;
            float M = -INFINITY;
            L[j] = 0.0f;
            for (uint32_t k = 0; k < a->splits; k++) {
                pkv_attn_part p = part_of(a, pair * a->splits + k, nb);
                if (p.m[r] > M) M = p.m[r];
            }
            for (uint32_t k = 0; k < a->splits; k++) {
                pkv_attn_part p = part_of(a, pair * a->splits + k, nb);
                if (p.m[r] == -INFINITY) continue;
                float w = exp2f(p.m[r] - M);
                L[j] += w * p.l[r];
                a->k->axpy(w, p.acc + (size_t)r * d, acc + (size_t)j * d, d);
                for (uint32_t m = 0; m < nb; m++) S[(size_t)j * nb + m] += w * p.S[(size_t)r * nb + m];
            }
        }
        if (nb) a->k->mix(S, nr, nb, PV, d, acc, d);
        for (uint32_t j = 0; j < nr; j++) {
            const uint32_t r = r0 + j, qi = r / gq, hr = r % gq;
            float *out = op->out + (((size_t)s * op->q_len + qi) * op->n_q_heads + h * gq + hr) * d;
            const float inv = 1.0f / L[j];
            for (uint32_t i = 0; i < d; i++) out[i] = acc[(size_t)j * d + i] * inv;
        }
    }
    free(acc);
    return 0;
}

/* Per (sequence, kv head), once before its units run: the chunk list, q prescaled, the rows' visible
 * lengths and q . P_K[m] (PATTERN mode), shared by the pair's units (a unit used to redo this for its
 * own split). */
static int prep_task(uint32_t pair, void *arg)
{
    const attn_ctx *a = arg;
    const pkv_store *st = a->st;
    const pkv_attn_op *op = a->op;
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, G = g->G, s = pair / H, h = pair % H, gq = op->n_q_heads / H, rows = a->rows;
    const pkv_attn_seq *sq = &op->seqs[s];
    const uint32_t nb = g->mode == PKV_MODE_PATTERN ? sq->bank_count : 0, nc = pkv_attn_seq_chunks(sq, g->G);
    const uint32_t T = sq->n_blocks * G + sq->n_window;
    pkv_attn_chunk *chunks = a->chunks + a->chunk_off[s] * H + (size_t)h * nc;
    float *q = a->qs + (size_t)pair * a->pair_floats, *qc = q + (size_t)rows * d;
    uint32_t *visible = a->visible + (size_t)pair * rows;
    const uint32_t *blocks = op->table + sq->block_offset + h; /* [n_blocks][H] */
    const uint32_t win_slot = op->table[sq->table_offset + (size_t)H * PKV_MAX_CHUNKS + h];
    const uint8_t *win = sq->n_window ? pkv_cpu_buf_data(st->windows) + (size_t)win_slot * g->window_bytes : NULL;
    for (uint32_t c = 0; c < nc; c++) {
        pkv_attn_chunk *ch = &chunks[c];
        memset(ch, 0, sizeof *ch);
        if (c < sq->n_blocks) {
            ch->blk = pkv_cpu_buf_data(st->blocks) + (size_t)blocks[(size_t)c * H] * g->block_bytes;
            ch->first = c * G, ch->n = G;
        } else {
            uint32_t t0 = (c - sq->n_blocks) * G;
            ch->first = sq->n_blocks * G + t0;
            ch->n = sq->n_window - t0 < G ? sq->n_window - t0 : G;
            ch->wk = win + (size_t)t0 * d * 2;
            ch->wv = win + ((size_t)g->R + t0) * d * 2;
        }
    }
    const float pre = (float)(op->scale * LOG2E);
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t qi = r / gq, hr = r % gq;
        const float *src = op->q + (((size_t)s * op->q_len + qi) * op->n_q_heads + h * gq + hr) * d;
        for (uint32_t i = 0; i < d; i++) q[(size_t)r * d + i] = src[i] * pre;
        visible[r] = T - op->q_len + qi + 1;
    }
    if (!nb) return 0;
    float *PK = malloc((size_t)nb * d * sizeof(float));
    if (!PK) return 1;
    bank_f32(a, sq, h, nb, 0, PK);
    a->k->dots(q, rows, PK, nb, d, qc);
    free(PK);
    return 0;
}

static int attn_task(uint32_t unit, void *arg)
{
    const attn_ctx *a = arg;
    {
        /* its pair's prep_task: an item before this one in the same job, so already claimed by a
         * running thread (items are claimed in order); its flag is released when it is done */
        unsigned r;
        while (!(r = atomic_load_explicit(&a->ready[unit / a->splits], memory_order_acquire))) pkv_cpu_relax();
        if (r == 2) return 1;
    }
    const pkv_attn_op *op = a->op;
    const pkv_geom *g = a->st->g;
    const uint32_t H = g->H, d = g->d, pair = unit / a->splits, split = unit % a->splits, s = pair / H, h = pair % H;
    const pkv_attn_seq *sq = &op->seqs[s];
    const uint32_t nb = g->mode == PKV_MODE_PATTERN ? sq->bank_count : 0, nc = pkv_attn_seq_chunks(sq, g->G);
    const uint32_t c0 = (uint32_t)((uint64_t)nc * split / a->splits), c1 = (uint32_t)((uint64_t)nc * (split + 1) / a->splits);
    const float *q = a->qs + (size_t)pair * a->pair_floats;
    pkv_attn_unit u = {g, a->rows, q, a->visible + (size_t)pair * a->rows, nb ? q + (size_t)a->rows * d : NULL, nb,
                       a->chunks + a->chunk_off[s] * H + (size_t)h * nc + c0, c1 - c0, a->be};
    pkv_attn_part p = part_of(a, unit, nb);
    int failed = a->k->attn_unit(&u, &p);
    /* the last unit of the pair merges (acq_rel: it sees every other unit's partial state) */
    if (atomic_fetch_add_explicit(&a->done[pair], 1, memory_order_acq_rel) + 1 == a->splits) failed |= merge(a, pair);
    return failed;
}

/* One job: items [0, pairs) prepare the pairs, the rest are the units (the pool claims items in order,
 * so a unit's prep is always claimed before it; one job boundary per call instead of two). */
static int attn_item(uint32_t i, void *arg)
{
    const attn_ctx *a = arg;
    const uint32_t pairs = a->op->n_seqs * a->st->g->H;
    if (i >= pairs) return attn_task(i - pairs, arg);
    int failed = prep_task(i, arg);
    atomic_store_explicit(&a->ready[i], failed ? 2u : 1u, memory_order_release);
    return failed;
}

pkv_status pkv_cpu_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    if (!op->q || !op->out) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "cpu attention: q and out must be in host memory");
    const pkv_geom *g = st->g;
    const uint32_t pairs = op->n_seqs * g->H, rows = op->n_q_heads / g->H * op->q_len;
    uint32_t nbmax = 0, ncmax = 1;
    for (uint32_t s = 0; s < op->n_seqs; s++) {
        if (g->mode == PKV_MODE_PATTERN && op->seqs[s].bank_count > nbmax) nbmax = op->seqs[s].bank_count;
        uint32_t nc = pkv_attn_seq_chunks(&op->seqs[s], g->G);
        if (nc > ncmax) ncmax = nc;
    }
    /* Units: about 4 per thread (PKV_CPU_ATTN_UNITS, docs/BACKENDS.md), each of at least 4 chunks;
     * fewer when the rows are many (long q_len). */
    const uint32_t threads = pkv_cpu_n_threads(be), target = pkv_cpu_attn_units(be) * threads;
    uint32_t splits = pairs >= target ? 1 : (target + pairs - 1) / pairs;
    if (splits > ncmax / 4) splits = ncmax / 4;
    if (rows > 64 && splits > 2) splits = 2;
    if (splits < 1) splits = 1;
    attn_ctx a = {be, st, op, pkv_cpu_kernels_of(be), splits, rows, nbmax, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL};
    a.part_floats = (size_t)rows * (2 + g->d + nbmax);
    a.pair_floats = (size_t)rows * (g->d + nbmax);
    a.parts = malloc((size_t)pairs * splits * a.part_floats * sizeof(float));
    a.done = malloc(pairs * sizeof *a.done);
    a.ready = malloc(pairs * sizeof *a.ready);
    a.qs = malloc(((size_t)pairs * a.pair_floats + 64) * sizeof(float)); /* 64: table reads past qc (vf_lookup) */
    a.visible = malloc((size_t)pairs * rows * sizeof *a.visible);
    a.chunk_off = malloc(((size_t)op->n_seqs + 1) * sizeof *a.chunk_off);
    if (a.chunk_off) {
        a.chunk_off[0] = 0;
        for (uint32_t s = 0; s < op->n_seqs; s++) a.chunk_off[s + 1] = a.chunk_off[s] + pkv_attn_seq_chunks(&op->seqs[s], g->G);
        a.chunks = malloc((a.chunk_off[op->n_seqs] * g->H + 1) * sizeof *a.chunks);
    }
    pkv_status s = PKV_ERR_OUT_OF_HOST_MEMORY;
    if (!a.parts || !a.done || !a.ready || !a.qs || !a.visible || !a.chunk_off || !a.chunks) {
        s = pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu attention: out of host memory");
        goto done;
    }
    for (uint32_t i = 0; i < pairs; i++) atomic_init(&a.done[i], 0u), atomic_init(&a.ready[i], 0u);
    const double t0 = pkv_cpu_now_ms();
    s = pkv_cpu_run_op(be, pairs + pairs * splits, attn_item, &a, "attention");
    pkv_cpu_set_last_op_ms(be, pkv_cpu_now_ms() - t0);
done:
    free(a.parts), free(a.done), free(a.ready), free(a.qs), free(a.visible), free(a.chunk_off), free(a.chunks);
    return s;
}
