/* The CPU reference of fused attention on the compressed cache (SPEC.md section 2, decode path and
 * causal q_len > 1): logits from codes with the q.C table and the per-group zero-point term, V through
 * the softmax-weight histogram over patterns. Nothing is dequantized into memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_backend.h"
#include "f16.h"
#include "internal.h"
#include "quant.h"

typedef struct attn_job {
    const pkv_store *st;
    const pkv_attn_op *op;
} attn_job;

/* Online-softmax state of one query. */
typedef struct acc_state {
    float m, l;
    float *acc; /* [d] */
    float *S;   /* [bank] */
} acc_state;

static void rescale(acc_state *a, float new_max, uint32_t d, uint32_t nb)
{
    if (new_max <= a->m) return;
    float f = a->m == -INFINITY ? 0.0f : expf(a->m - new_max);
    a->l *= f;
    for (uint32_t i = 0; i < d; i++) a->acc[i] *= f;
    for (uint32_t m = 0; m < nb; m++) a->S[m] *= f;
    a->m = new_max;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void unpack(const uint8_t *src, uint32_t words, uint32_t d, uint32_t bits, uint8_t *codes)
{
    uint32_t row[72];
    for (uint32_t w = 0; w < words; w++) row[w] = rd32(src + 4 * w);
    pkv_unpack_row(row, d, bits, codes);
}

/* One block (or the first `n` tokens of it) for one query. */
static void attend_block(const pkv_geom *g, const uint8_t *blk, uint32_t n, const float *q, float scale, const float *qc,
                         const float *PV, uint32_t nb, acc_state *a)
{
    const uint32_t d = g->d;
    float logit[128];
    uint8_t codes[256];
    if (g->mode == PKV_MODE_FP16) {
        float mx = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            float s = 0.0f;
            for (uint32_t i = 0; i < d; i++) s += q[i] * pkv_f16_to_f32(pkv_rd16(blk + g->off_kfp16 + 2 * ((size_t)t * d + i)));
            logit[t] = s * scale;
            if (logit[t] > mx) mx = logit[t];
        }
        rescale(a, mx, d, nb);
        for (uint32_t t = 0; t < n; t++) {
            float p = expf(logit[t] - a->m);
            a->l += p;
            for (uint32_t i = 0; i < d; i++) a->acc[i] += p * pkv_f16_to_f32(pkv_rd16(blk + g->off_vfp16 + 2 * ((size_t)t * d + i)));
        }
        return;
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    float qs[256], zt = 0.0f;
    for (uint32_t i = 0; i < d; i++) {
        qs[i] = q[i] * pkv_f16_to_f32(pkv_rd16(blk + g->off_kscale + 2 * i));
        zt += q[i] * pkv_f16_to_f32(pkv_rd16(blk + g->off_kzero + 2 * i));
    }
    float mx = -INFINITY;
    for (uint32_t t = 0; t < n; t++) {
        unpack(blk + g->off_kcodes + (size_t)t * g->k_row_words * 4, g->k_row_words, d, g->k_bits, codes);
        float s = 0.0f;
        for (uint32_t i = 0; i < d; i++) s += qs[i] * (float)codes[i];
        s += zt;
        if (pattern) s += qc[blk[g->off_kidx + t]];
        logit[t] = s * scale;
        if (logit[t] > mx) mx = logit[t];
    }
    rescale(a, mx, d, nb);
    for (uint32_t t = 0; t < n; t++) {
        float p = expf(logit[t] - a->m);
        a->l += p;
        unpack(blk + g->off_vcodes + (size_t)t * g->v_row_words * 4, g->v_row_words, d, g->v_bits, codes);
        float vs = pkv_f16_to_f32(pkv_rd16(blk + g->off_vscale + 2 * t));
        float vz = pkv_f16_to_f32(pkv_rd16(blk + g->off_vzero + 2 * t));
        float ps = p * vs, pz = p * vz;
        for (uint32_t i = 0; i < d; i++) a->acc[i] += pz + ps * (float)codes[i];
        if (pattern && (blk[g->off_vmask + t / 8] >> (t % 8) & 1)) a->S[blk[g->off_vidx + t]] += p;
    }
    (void)PV;
}

static void attend_window(const pkv_geom *g, const uint8_t *win, uint32_t n, const float *q, float scale, uint32_t nb,
                          acc_state *a)
{
    const uint32_t d = g->d;
    const uint8_t *kw = win, *vw = win + (size_t)g->R * d * 2;
    for (uint32_t t0 = 0; t0 < n; t0 += 128) {
        uint32_t cnt = n - t0 < 128 ? n - t0 : 128;
        float logit[128], mx = -INFINITY;
        for (uint32_t t = 0; t < cnt; t++) {
            float s = 0.0f;
            for (uint32_t i = 0; i < d; i++) s += q[i] * pkv_f16_to_f32(pkv_rd16(kw + 2 * ((size_t)(t0 + t) * d + i)));
            logit[t] = s * scale;
            if (logit[t] > mx) mx = logit[t];
        }
        rescale(a, mx, d, nb);
        for (uint32_t t = 0; t < cnt; t++) {
            float p = expf(logit[t] - a->m);
            a->l += p;
            for (uint32_t i = 0; i < d; i++) a->acc[i] += p * pkv_f16_to_f32(pkv_rd16(vw + 2 * ((size_t)(t0 + t) * d + i)));
        }
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
    const uint32_t *blocks = op->table + sq->table_offset + (size_t)h * sq->n_blocks;
    const uint32_t *chunks = op->table + sq->table_offset + (size_t)H * sq->n_blocks + (size_t)h * PKV_MAX_CHUNKS;
    const uint32_t win_slot = op->table[sq->table_offset + (size_t)H * sq->n_blocks + (size_t)H * PKV_MAX_CHUNKS + h];
    const uint32_t nb = g->mode == PKV_MODE_PATTERN ? sq->bank_count : 0;
    const uint32_t T = sq->n_blocks * g->G + sq->n_window;
    float *PK = malloc(((size_t)nb * d + 1) * sizeof(float)), *PV = malloc(((size_t)nb * d + 1) * sizeof(float));
    float *qc = malloc((nb + 1) * sizeof(float)), *S = malloc((nb + 1) * sizeof(float));
    float acc[256];
    int failed = !PK || !PV || !qc || !S;
    if (failed) goto done;
    if (nb) {
        const uint8_t *cp[PKV_MAX_CHUNKS];
        for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < nb; ci++)
            cp[ci] = pkv_cpu_buf_data(st->chunks) + (size_t)chunks[ci] * g->chunk_bytes;
        pkv_bank_load(g, cp, nb, PK, PV);
    }
    for (uint32_t qi = 0; qi < op->q_len; qi++)
        for (uint32_t r = 0; r < gq; r++) {
            const uint32_t qh = h * gq + r;
            const size_t qoff = (((size_t)s * op->q_len + qi) * op->n_q_heads + qh) * d;
            const float *q = op->q + qoff;
            const uint32_t visible = T - op->q_len + qi + 1;
            acc_state a = {-INFINITY, 0.0f, acc, S};
            memset(acc, 0, d * sizeof(float));
            memset(S, 0, nb * sizeof(float));
            for (uint32_t m = 0; m < nb; m++) {
                float dot = 0.0f;
                for (uint32_t i = 0; i < d; i++) dot += q[i] * PK[(size_t)m * d + i];
                qc[m] = dot;
            }
            for (uint32_t b = 0; b < sq->n_blocks && b * g->G < visible; b++) {
                uint32_t n = visible - b * g->G < g->G ? visible - b * g->G : g->G;
                const uint8_t *blk = pkv_cpu_buf_data(st->blocks) + (size_t)blocks[b] * g->block_bytes;
                attend_block(g, blk, n, q, op->scale, qc, PV, nb, &a);
            }
            uint32_t nq = sq->n_blocks * g->G;
            if (visible > nq)
                attend_window(g, pkv_cpu_buf_data(st->windows) + (size_t)win_slot * g->window_bytes, visible - nq, q,
                              op->scale, nb, &a);
            float *out = op->out + qoff;
            for (uint32_t i = 0; i < d; i++) {
                float v = acc[i];
                for (uint32_t m = 0; m < nb; m++) v += S[m] * PV[(size_t)m * d + i];
                out[i] = v / a.l;
            }
        }
done:
    free(PK), free(PV), free(qc), free(S);
    return failed;
}

pkv_status pkv_cpu_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    attn_job j = {st, op};
    return pkv_cpu_run_op(be, op->n_seqs * st->g->H, attn_task, &j, "attention");
}
