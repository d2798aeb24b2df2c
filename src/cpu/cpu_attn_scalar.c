/* The portable scalar attention kernel (the fallback of cpu_simd.h, and what the SIMD kernels are
 * tested against besides the fp64 reference). One unit: each chunk is unpacked once into its codes
 * (or fp16 values) as floats and serves every query row; logits from codes with the q.C table and the
 * per-block zero-point term, V through the softmax-weight histogram over patterns. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_simd.h"
#include "f16.h"

/* One chunk in a common form: codes (or fp16 values) as floats, and the per-channel K and per-token V
 * scale/zero that turn them into values. */
typedef struct tile {
    uint32_t n;
    float kc[128 * 256], vc[128 * 256];
    float ks[256], kz[256]; /* per channel */
    float vs[128], vz[128]; /* per token */
    uint8_t kidx[128], vidx[128], vmask[128];
} tile;

/* Byte -> its codes as floats, for planes of 1, 2 and 4 bits, and fp16 -> fp32 (filled once). */
static float lut1[256][8], lut2[256][4], lut4[256][2];
static float lut_f16[65536];
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

static void load_chunk(const pkv_geom *g, const pkv_attn_chunk *c, tile *T)
{
    const uint32_t d = g->d, G = g->G;
    if (!c->blk) { /* window piece */
        T->n = c->n;
        fp16_rows(c->wk, c->n, d, T->kc);
        fp16_rows(c->wv, c->n, d, T->vc);
        unit_scales(T, d);
        return;
    }
    const uint8_t *blk = c->blk;
    T->n = G;
    if (g->mode == PKV_MODE_FP16) {
        fp16_rows(blk + g->off_kfp16, G, d, T->kc);
        fp16_rows(blk + g->off_vfp16, G, d, T->vc);
        unit_scales(T, d);
        return;
    }
    for (uint32_t i = 0; i < d; i++) {
        T->ks[i] = lut_f16[pkv_rd16(blk + g->off_kscale + 2 * i)];
        T->kz[i] = lut_f16[pkv_rd16(blk + g->off_kzero + 2 * i)];
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    for (uint32_t t = 0; t < G; t++) {
        codes_row(blk + g->off_kcodes + (size_t)t * g->k_row_words * 4, d, g->k_bits, T->kc + (size_t)t * d);
        codes_row(blk + g->off_vcodes + (size_t)t * g->v_row_words * 4, d, g->v_bits, T->vc + (size_t)t * d);
        T->vs[t] = lut_f16[pkv_rd16(blk + g->off_vscale + 2 * t)];
        T->vz[t] = lut_f16[pkv_rd16(blk + g->off_vzero + 2 * t)];
        T->kidx[t] = pattern ? blk[g->off_kidx + t] : 0;
        T->vidx[t] = pattern ? blk[g->off_vidx + t] : 0;
        T->vmask[t] = pattern ? (uint8_t)(blk[g->off_vmask + t / 8] >> (t % 8) & 1) : 0;
    }
}

float pkv_cpu_dot_scalar(const float *a, const float *b, uint32_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (uint32_t i = 0; i < n; i += 4) s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1], s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
    return (s0 + s1) + (s2 + s3);
}

void pkv_cpu_axpy_scalar(float a, const float *x, float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) y[i] += a * x[i];
}

void pkv_cpu_dots_scalar(const float *q, uint32_t rows, const float *P, uint32_t n, uint32_t d, float *out)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t m = 0; m < n; m++) out[(size_t)r * n + m] = pkv_cpu_dot_scalar(q + (size_t)r * d, P + (size_t)m * d, d);
}

void pkv_cpu_mix_scalar(const float *S, uint32_t rows, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t m = 0; m < n; m++) pkv_cpu_axpy_scalar(S[(size_t)r * n + m], P + (size_t)m * d, acc + r * stride, d);
}

/* One row against the first tokens of a tile (those it sees). */
static void attend(const tile *T, uint32_t first, uint32_t visible, const float *q, const float *qc, float *m,
                   float *l, float *acc, float *S, uint32_t d, uint32_t nb, int pattern)
{
    if (visible <= first) return;
    uint32_t n = visible - first < T->n ? visible - first : T->n;
    float qs[256], logit[128], mx = -INFINITY;
    for (uint32_t i = 0; i < d; i++) qs[i] = q[i] * T->ks[i];
    float zt = pkv_cpu_dot_scalar(q, T->kz, d);
    for (uint32_t t = 0; t < n; t++) {
        float s = pkv_cpu_dot_scalar(qs, T->kc + (size_t)t * d, d) + zt;
        if (pattern) s += qc[T->kidx[t]];
        logit[t] = s;
        if (s > mx) mx = s;
    }
    if (mx > *m) { /* rescale once per tile */
        float f = *m == -INFINITY ? 0.0f : exp2f(*m - mx);
        *l *= f;
        for (uint32_t i = 0; i < d; i++) acc[i] *= f;
        for (uint32_t k = 0; k < nb; k++) S[k] *= f;
        *m = mx;
    }
    for (uint32_t t = 0; t < n; t++) {
        float p = exp2f(logit[t] - *m), ps = p * T->vs[t], pz = p * T->vz[t];
        const float *vc = T->vc + (size_t)t * d;
        *l += p;
        for (uint32_t i = 0; i < d; i++) acc[i] += pz + ps * vc[i];
        if (T->vmask[t]) S[T->vidx[t]] += p;
    }
}

int pkv_cpu_attn_unit_scalar(const pkv_attn_unit *u, const pkv_attn_part *out)
{
    pthread_once(&lut_once, fill_luts);
    const pkv_geom *g = u->g;
    const uint32_t d = g->d, nb = u->nb;
    tile *T = malloc(sizeof *T);
    if (!T) return 1;
    for (uint32_t r = 0; r < u->rows; r++) {
        out->m[r] = -INFINITY, out->l[r] = 0.0f;
        memset(out->acc + (size_t)r * d, 0, d * sizeof(float));
        if (nb) memset(out->S + (size_t)r * nb, 0, nb * sizeof(float));
    }
    for (uint32_t c = 0; c < u->n_chunks; c++) {
        const pkv_attn_chunk *ch = &u->chunks[c];
        int any = 0;
        for (uint32_t r = 0; r < u->rows; r++) any |= u->visible[r] > ch->first;
        if (!any) continue;
        load_chunk(g, ch, T);
        const int pattern = ch->blk && g->mode == PKV_MODE_PATTERN;
        for (uint32_t r = 0; r < u->rows; r++)
            attend(T, ch->first, u->visible[r], u->q + (size_t)r * d, nb ? u->qc + (size_t)r * nb : NULL, &out->m[r],
                   &out->l[r], out->acc + (size_t)r * d, nb ? out->S + (size_t)r * nb : NULL, d, nb, pattern);
    }
    free(T);
    return 0;
}
