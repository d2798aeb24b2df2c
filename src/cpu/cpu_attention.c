/* The CPU reference of fused attention on the compressed cache (SPEC.md section 2, decode path and
 * causal q_len > 1). Per (sequence, kv head) task, each block is unpacked once into its integer codes
 * and serves every query of the GQA group: logits from codes with the q.C table and the per-block
 * zero-point term, V through the softmax-weight histogram over patterns. No dequantized K/V is formed;
 * FP16 blocks and the window run through the same loop with scale 1 and zero 0. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_backend.h"
#include "f16.h"
#include "internal.h"

typedef struct attn_job {
    const pkv_store *st;
    const pkv_attn_op *op;
} attn_job;

/* One group of up to 128 tokens in a common form: codes (or fp16 values) as floats, and the
 * per-channel K and per-token V scale/zero that turn them into values. */
typedef struct tile {
    uint32_t n;
    float kc[128 * 256], vc[128 * 256];
    float ks[256], kz[256]; /* per channel */
    float vs[128], vz[128]; /* per token */
    uint8_t kidx[128], vidx[128], vmask[128];
} tile;

/* Online-softmax state of one query. */
typedef struct query {
    const float *q;
    uint32_t visible; /* tokens 0 .. visible-1 */
    float m, l;
    float *acc, *S, *qc;
} query;

/* Byte -> its codes as floats, for planes of 1, 2 and 4 bits, and fp16 -> fp32 (filled once). */
static float lut1[256][8], lut2[256][4], lut4[256][2];
static float lut_f16[65536]; /* every fp16 value as fp32 */
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void fill_luts(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        for (uint32_t k = 0; k < 8; k++) lut1[b][k] = (float)(b >> k & 1u);
        for (uint32_t k = 0; k < 4; k++) lut2[b][k] = (float)(b >> (2 * k) & 3u);
        for (uint32_t k = 0; k < 2; k++) lut4[b][k] = (float)(b >> (4 * k) & 15u);
    }
    for (uint32_t h = 0; h < 65536; h++) lut_f16[h] = pkv_f16_to_f32((uint16_t)h);
}

/* One token row of b-bit codes (layout.h) as floats, a byte of codes at a time. */
static void codes_row(const uint8_t *src, uint32_t d, uint32_t bits, float *out)
{
    switch (bits) {
    case 8:
        for (uint32_t c = 0; c < d; c++) out[c] = (float)src[c];
        return;
    case 4:
        for (uint32_t c = 0; c < d; c += 2) out[c] = lut4[src[c / 2]][0], out[c + 1] = lut4[src[c / 2]][1];
        return;
    case 2:
        for (uint32_t c = 0; c < d; c += 4) memcpy(out + c, lut2[src[c / 4]], 4 * sizeof(float));
        return;
    default: { /* 3: a 2-bit plane, then the 1-bit plane of bit 2, each padded to whole words */
        const uint8_t *hi = src + pkv_plane_words(d, 2) * 4;
        for (uint32_t c = 0; c < d; c += 4) memcpy(out + c, lut2[src[c / 4]], 4 * sizeof(float));
        for (uint32_t c = 0; c < d; c += 8)
            for (uint32_t k = 0; k < 8; k++) out[c + k] += 4.0f * lut1[hi[c / 8]][k];
    }
    }
}

static void fp16_rows(const uint8_t *src, uint32_t n, uint32_t d, float *out)
{
    for (uint32_t i = 0; i < n * d; i++) out[i] = lut_f16[pkv_rd16(src + 2 * i)];
}

static void unit_scales(tile *T, uint32_t d)
{
    for (uint32_t i = 0; i < d; i++) T->ks[i] = 1.0f, T->kz[i] = 0.0f;
    for (uint32_t t = 0; t < T->n; t++) T->vs[t] = 1.0f, T->vz[t] = 0.0f, T->vmask[t] = 0, T->kidx[t] = 0;
}

static void load_block(const pkv_geom *g, const uint8_t *blk, tile *T)
{
    const uint32_t d = g->d, G = g->G;
    T->n = G;
    if (g->mode == PKV_MODE_FP16) {
        fp16_rows(blk + g->off_kfp16, G, d, T->kc);
        fp16_rows(blk + g->off_vfp16, G, d, T->vc);
        unit_scales(T, d);
        return;
    }
    for (uint32_t i = 0; i < d; i++) {
        T->ks[i] = pkv_f16_to_f32(pkv_rd16(blk + g->off_kscale + 2 * i));
        T->kz[i] = pkv_f16_to_f32(pkv_rd16(blk + g->off_kzero + 2 * i));
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    for (uint32_t t = 0; t < G; t++) {
        codes_row(blk + g->off_kcodes + (size_t)t * g->k_row_words * 4, d, g->k_bits, T->kc + (size_t)t * d);
        codes_row(blk + g->off_vcodes + (size_t)t * g->v_row_words * 4, d, g->v_bits, T->vc + (size_t)t * d);
        T->vs[t] = pkv_f16_to_f32(pkv_rd16(blk + g->off_vscale + 2 * t));
        T->vz[t] = pkv_f16_to_f32(pkv_rd16(blk + g->off_vzero + 2 * t));
        T->kidx[t] = pattern ? blk[g->off_kidx + t] : 0;
        T->vidx[t] = pattern ? blk[g->off_vidx + t] : 0;
        T->vmask[t] = pattern ? (uint8_t)(blk[g->off_vmask + t / 8] >> (t % 8) & 1) : 0;
    }
}

/* Window tokens [t0, t0 + n) of a (layer, head) window slot. */
static void load_window(const pkv_geom *g, const uint8_t *win, uint32_t t0, uint32_t n, tile *T)
{
    const uint32_t d = g->d;
    T->n = n;
    fp16_rows(win + (size_t)t0 * d * 2, n, d, T->kc);
    fp16_rows(win + ((size_t)g->R + t0) * d * 2, n, d, T->vc);
    unit_scales(T, d);
}

static float dot(const float *a, const float *b, uint32_t d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (uint32_t i = 0; i < d; i += 4) s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1], s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
    return (s0 + s1) + (s2 + s3);
}

/* Attends one query to the first `n` tokens of a tile that starts at token `first`. */
static void attend(const tile *T, uint32_t first, query *Q, uint32_t d, uint32_t nb, float scale, int pattern)
{
    if (Q->visible <= first) return;
    uint32_t n = Q->visible - first < T->n ? Q->visible - first : T->n;
    float qs[256], logit[128], mx = -INFINITY;
    for (uint32_t i = 0; i < d; i++) qs[i] = Q->q[i] * T->ks[i];
    float zt = dot(Q->q, T->kz, d);
    for (uint32_t t = 0; t < n; t++) {
        float s = dot(qs, T->kc + (size_t)t * d, d) + zt;
        if (pattern) s += Q->qc[T->kidx[t]];
        logit[t] = s * scale;
        if (logit[t] > mx) mx = logit[t];
    }
    if (mx > Q->m) { /* rescale once per tile */
        float f = Q->m == -INFINITY ? 0.0f : expf(Q->m - mx);
        Q->l *= f;
        for (uint32_t i = 0; i < d; i++) Q->acc[i] *= f;
        for (uint32_t m = 0; m < nb; m++) Q->S[m] *= f;
        Q->m = mx;
    }
    for (uint32_t t = 0; t < n; t++) {
        float p = expf(logit[t] - Q->m), ps = p * T->vs[t], pz = p * T->vz[t];
        const float *vc = T->vc + (size_t)t * d;
        Q->l += p;
        for (uint32_t i = 0; i < d; i++) Q->acc[i] += pz + ps * vc[i];
        if (T->vmask[t]) Q->S[T->vidx[t]] += p;
    }
}

static int attn_task(uint32_t task, void *arg)
{
    const attn_job *j = arg;
    const pkv_store *st = j->st;
    const pkv_attn_op *op = j->op;
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, s = task / H, h = task % H, gq = op->n_q_heads / H;
    const pkv_attn_seq *sq = &op->seqs[s];
    pthread_once(&lut_once, fill_luts);
    const uint32_t *blocks = op->table + sq->table_offset + (size_t)h * sq->n_blocks;
    const uint32_t *chunks = op->table + sq->table_offset + (size_t)H * sq->n_blocks + (size_t)h * PKV_MAX_CHUNKS;
    const uint32_t win_slot = op->table[sq->table_offset + (size_t)H * sq->n_blocks + (size_t)H * PKV_MAX_CHUNKS + h];
    const int pattern = g->mode == PKV_MODE_PATTERN;
    const uint32_t nb = pattern ? sq->bank_count : 0, T = sq->n_blocks * g->G + sq->n_window, nQ = gq * op->q_len;
    float *PK = malloc(((size_t)nb * d + 1) * sizeof(float)), *PV = malloc(((size_t)nb * d + 1) * sizeof(float));
    float *state = malloc((size_t)nQ * (d + 2 * nb + 1) * sizeof(float));
    query *Q = malloc(nQ * sizeof *Q);
    tile *tl = malloc(sizeof *tl);
    int failed = !PK || !PV || !state || !Q || !tl;
    if (failed) goto done;
    if (nb) {
        const uint8_t *cp[PKV_MAX_CHUNKS];
        for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < nb; ci++)
            cp[ci] = pkv_cpu_buf_data(st->chunks) + (size_t)chunks[ci] * g->chunk_bytes;
        pkv_bank_load(g, cp, nb, PK, PV);
    }
    for (uint32_t qi = 0; qi < op->q_len; qi++)
        for (uint32_t r = 0; r < gq; r++) {
            query *q = &Q[qi * gq + r];
            float *mem = state + (size_t)(qi * gq + r) * (d + 2 * nb + 1);
            q->q = op->q + (((size_t)s * op->q_len + qi) * op->n_q_heads + h * gq + r) * d;
            q->visible = T - op->q_len + qi + 1;
            q->m = -INFINITY, q->l = 0.0f;
            q->acc = mem, q->S = mem + d, q->qc = mem + d + nb;
            memset(mem, 0, (d + nb) * sizeof(float));
            for (uint32_t m = 0; m < nb; m++) q->qc[m] = dot(q->q, PK + (size_t)m * d, d);
        }
    for (uint32_t b = 0; b < sq->n_blocks; b++) {
        load_block(g, pkv_cpu_buf_data(st->blocks) + (size_t)blocks[b] * g->block_bytes, tl);
        for (uint32_t k = 0; k < nQ; k++) attend(tl, b * g->G, &Q[k], d, nb, op->scale, pattern);
    }
    const uint8_t *win = sq->n_window ? pkv_cpu_buf_data(st->windows) + (size_t)win_slot * g->window_bytes : NULL;
    for (uint32_t t0 = 0; t0 < sq->n_window; t0 += 128) {
        load_window(g, win, t0, sq->n_window - t0 < 128 ? sq->n_window - t0 : 128, tl);
        for (uint32_t k = 0; k < nQ; k++) attend(tl, sq->n_blocks * g->G + t0, &Q[k], d, nb, op->scale, 0);
    }
    for (uint32_t k = 0; k < nQ; k++) {
        float *out = op->out + (Q[k].q - op->q);
        for (uint32_t i = 0; i < d; i++) {
            float v = Q[k].acc[i];
            for (uint32_t m = 0; m < nb; m++) v += Q[k].S[m] * PV[(size_t)m * d + i];
            out[i] = v / Q[k].l;
        }
    }
done:
    free(PK), free(PV), free(state), free(Q), free(tl);
    return failed;
}

pkv_status pkv_cpu_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    if (!op->q || !op->out) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "cpu attention: q and out must be in host memory");
    attn_job j = {st, op};
    return pkv_cpu_run_op(be, op->n_seqs * st->g->H, attn_task, &j, "attention");
}
