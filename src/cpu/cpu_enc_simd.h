/* The vectorised encoding kernels (mining, flush, quantization), bit-exact with the scalar reference
 * (docs/NUMERICS.md, src/core/block.c, src/core/quant.c) and so with the GPU backends. Written once over
 * a vector vocabulary that each instruction-set file (cpu_enc_avx2.c, cpu_enc_avx512.c, cpu_enc_neon.c)
 * defines before including this file; those files are compiled WITHOUT contraction (no FMA).
 *
 * How exactness is kept: lanes hold independent values (centroids or patterns for the distances,
 * channels for the per-channel K quantizer and the Chebyshev centre), and each lane runs the scalar
 * sequence of fp32 operations in the scalar order: acc + (x_i - c_i)^2 over i ascending, the running
 * min/max steps `v < acc ? v : acc` (= x86 MINPS(v, acc); compare-and-select on NEON, whose FMIN
 * orders -0 below +0). Where a sum or fold runs across the lanes instead (the per-token V quantizer:
 * min and max over the channels), the only thing order can change is the sign of a zero result, and
 * then the scalar fold is redone. Quantization codes come from an estimate corrected by the exact
 * up/down steps of docs/NUMERICS.md, in every lane until no lane moves. One kernel is not exact and
 * need not be: dots_top2 (x . c with FMA) feeds only the k-means distance bounds (cpu_kmeans.c).
 *
 * Vocabulary: W lanes; VF, MK (lane mask); vf_load vf_store vf_set1 vf_add vf_sub vf_mul vf_fma
 * vf_div (IEEE), vf_min(a,b) = a < b ? a : b, vf_max(a,b) = a > b ? a : b, vf_floor, vf_round (to
 * nearest even), vf_abs, vf_hmin, vf_hmax,
 * mk_lt mk_le mk_ge mk_eq mk_ne mk_and mk_or mk_any mk_first (index of the first set lane),
 * vf_sel(m, a, b) = m ? a : b, vf_to_u8(v, out) (W exact small integers -> bytes),
 * vf_f16_load(p) (W fp16 -> fp32, exact), vf_f16_store(p, v) (fp16-exact values -> fp16, RNE). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_simd.h"
#include "f16.h"
#include "quant.h"

#if defined(__GNUC__)
#define EINLINE static inline __attribute__((always_inline))
#else
#define EINLINE static inline
#endif

#define BLKV 8 /* centroid vectors per pass of the distance kernels */

/* ---- fp16 -> fp32 --------------------------------------------------------------------------------- */

static void enc_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + W <= n; i += W) vf_store(dst + i, vf_f16_load(src + i));
    for (; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
}

/* ---- argmin over patterns, patterns in the lanes ------------------------------------------------- */

/* P [M][d] -> PT [d][Mp] (Mp = M rounded up to W), padding lanes 0 */
static float *transpose_patterns(const float *P, uint32_t M, uint32_t d, uint32_t *Mp_out)
{
    uint32_t Mp = (M + W - 1) / W * W;
    float *PT = malloc((size_t)d * Mp * sizeof(float) + 64);
    if (!PT) return NULL;
    for (uint32_t i = 0; i < d; i++) {
        float *row = PT + (size_t)i * Mp;
        for (uint32_t m = 0; m < M; m++) row[m] = P[(size_t)m * d + i];
        for (uint32_t m = M; m < Mp; m++) row[m] = 0.0f;
    }
    *Mp_out = Mp;
    return PT;
}

/* The first index of the smallest of dist[0 .. n) (ties: lowest index, as the scalar strict `<`). */
EINLINE uint32_t first_min(const float *dist, uint32_t n, float *best)
{
    uint32_t bi = 0;
    float bd = dist[0];
    for (uint32_t m = 1; m < n; m++)
        if (dist[m] < bd) bd = dist[m], bi = m;
    *best = bd;
    return bi;
}

/* L2 of TP tokens against nv vectors of patterns (columns m0 ..), acc + (x_i - c_i)^2, i ascending:
 * TP * nv <= BLKV independent chains (TP is a constant at every call). dist: [TP][BLKV * W]. */
EINLINE void l2_tokens(const float *const *xs, uint32_t TP, const float *PT, uint32_t Mp, uint32_t d, uint32_t nv,
                       float *dist)
{
    VF acc[BLKV];
    const uint32_t NV = BLKV / TP;
    for (uint32_t v = 0; v < BLKV; v++) acc[v] = vf_set1(0.0f);
    for (uint32_t i = 0; i < d; i++) {
        const float *row = PT + (size_t)i * Mp;
        for (uint32_t p = 0; p < TP; p++) {
            VF xi = vf_set1(xs[p][i]);
            for (uint32_t v = 0; v < NV; v++)
                if (v < nv) {
                    VF diff = vf_sub(xi, vf_load(row + v * W));
                    acc[p * NV + v] = vf_add(acc[p * NV + v], vf_mul(diff, diff));
                }
        }
    }
    for (uint32_t p = 0; p < TP; p++)
        for (uint32_t v = 0; v < nv; v++) vf_store(dist + (size_t)p * BLKV * W + v * W, acc[p * NV + v]);
}

/* The first index of the smallest of dist[0 .. n), its distance and the smallest of the others
 * (equal to it on a tie; +inf when n == 1). */
EINLINE uint32_t top2(const float *dist, uint32_t n, float *b1, float *b2)
{
    uint32_t bi = 0;
    float bd = dist[0], sd = INFINITY;
    for (uint32_t m = 1; m < n; m++) {
        float v = dist[m];
        if (v < bd) sd = bd, bd = v, bi = m;
        else if (v < sd) sd = v;
    }
    *b1 = bd, *b2 = sd;
    return bi;
}

/* cpu_simd.h's l2_top2: the rows idx[0 .. n) of x (rows 0 .. n-1 when idx is NULL); d1, d2 may be NULL. */
static void enc_l2_top2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2)
{
    uint32_t Mp;
    float *PT = transpose_patterns(P, M, d, &Mp);
    const uint32_t nvec = Mp / W;
    float *dist = PT ? malloc((size_t)(nvec > BLKV ? Mp : 4 * BLKV * W) * sizeof(float)) : NULL;
    if (!dist) { /* no memory for the transposed bank: the scalar kernel gives the same result */
        free(PT);
        pkv_cpu_l2_top2_scalar(x, idx, n, d, P, M, best, d1, d2);
        return;
    }
    const uint32_t tp = nvec <= BLKV / 4 ? 4 : nvec <= BLKV / 2 ? 2 : 1;
    uint32_t t = 0;
    if (tp > 1)
        for (; t + tp <= n; t += tp) {
            const float *xs[4];
            for (uint32_t p = 0; p < tp; p++) xs[p] = x + (size_t)(idx ? idx[t + p] : t + p) * d;
            if (tp == 4) l2_tokens(xs, 4, PT, Mp, d, nvec, dist);
            else l2_tokens(xs, 2, PT, Mp, d, nvec, dist);
            for (uint32_t p = 0; p < tp; p++) {
                float b1, b2;
                best[t + p] = top2(dist + (size_t)p * BLKV * W, M, &b1, &b2);
                if (d1) d1[t + p] = b1, d2[t + p] = b2;
            }
        }
    for (; t < n; t++) {
        const float *xs[1] = {x + (size_t)(idx ? idx[t] : t) * d};
        for (uint32_t v0 = 0; v0 < nvec; v0 += BLKV) {
            uint32_t nv = nvec - v0 < BLKV ? nvec - v0 : BLKV;
            l2_tokens(xs, 1, PT + v0 * W, Mp, d, nv, dist + v0 * W);
        }
        float b1, b2;
        best[t] = top2(dist, M, &b1, &b2);
        if (d1) d1[t] = b1, d2[t] = b2;
    }
    free(dist);
    free(PT);
}

/* x . c of TP tokens (rows xb + p DOT_XS) against all NV vectors of patterns, with fused multiply-add:
 * for distance bounds only (cpu_kmeans.c), never compared bit for bit. TP * NV <= DOT_ACC accumulators
 * in registers (both constants at every call); each row of PT is loaded once for the TP tokens.
 * dot: [TP][NV * W]. */
#ifndef DOT_ACC
#define DOT_ACC BLKV /* the accumulators the instruction set's registers hold with room to spare */
#endif
#define DOT_XS 256 /* the stride of the token rows dot_tokens reads (head_dim <= 256): one base register
                    * and constant offsets for the broadcasts */
EINLINE void dot_tokens(const float *xb, uint32_t TP, const float *PT, uint32_t Mp, uint32_t d, uint32_t NV,
                        float *dot)
{
    VF acc[DOT_ACC];
    for (uint32_t v = 0; v < TP * NV; v++) acc[v] = vf_set1(0.0f);
    for (uint32_t i = 0; i < d; i++) {
        const float *row = PT + (size_t)i * Mp;
        VF c[DOT_ACC];
        for (uint32_t v = 0; v < NV; v++) c[v] = vf_load(row + v * W);
        for (uint32_t p = 0; p < TP; p++) {
            VF xi = vf_set1(xb[(size_t)p * DOT_XS + i]);
            for (uint32_t v = 0; v < NV; v++) acc[p * NV + v] = vf_fma(xi, c[v], acc[p * NV + v]);
        }
    }
    for (uint32_t p = 0; p < TP; p++)
        for (uint32_t v = 0; v < NV; v++) vf_store(dot + (size_t)(p * NV + v) * W, acc[p * NV + v]);
}

/* h = c2 - 2 dot over the Mp lanes of one token (c2 is +inf past M), then its smallest value, the first
 * index holding it and the smallest of the others (+inf when M == 1): in registers for banks of up to
 * 4 vectors (the lane found by a compare), else through dot. */
EINLINE uint32_t h_top2(float *dot, const float *c2, uint32_t Mp, float *h1, float *h2)
{
    VF mn = vf_set1(INFINITY);
    if (Mp <= 4 * W) {
        static const float iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        VF h[4];
        const uint32_t nv = Mp / W;
        for (uint32_t v = 0; v < nv; v++) {
            h[v] = vf_fma(vf_load(dot + v * W), vf_set1(-2.0f), vf_load(c2 + v * W));
            mn = vf_min(h[v], mn);
        }
        const float b1 = vf_hmin(mn);
        uint32_t bv = 0, l = W;
        for (; bv < nv; bv++)
            if ((l = vf_first_eq(h[bv], b1)) < W) break;
        VF mn2 = vf_set1(INFINITY);
        const MK keep = mk_ne(vf_load(iota), vf_set1((float)l)); /* every lane but l */
        for (uint32_t v = 0; v < nv; v++) mn2 = vf_min(v == bv ? vf_sel(keep, h[v], vf_set1(INFINITY)) : h[v], mn2);
        *h1 = b1, *h2 = vf_hmin(mn2);
        return bv * W + l;
    }
    for (uint32_t v = 0; v < Mp; v += W) {
        VF h = vf_fma(vf_load(dot + v), vf_set1(-2.0f), vf_load(c2 + v));
        vf_store(dot + v, h);
        mn = vf_min(h, mn);
    }
    const float b1 = vf_hmin(mn);
    uint32_t b = 0;
    while (b + 1 < Mp && !(dot[b] <= b1)) b++; /* dot[b] == b1, found before Mp */
    dot[b] = INFINITY;
    mn = vf_set1(INFINITY);
    for (uint32_t v = 0; v < Mp; v += W) mn = vf_min(vf_load(dot + v), mn);
    *h1 = b1, *h2 = vf_hmin(mn);
    return b;
}

EINLINE void copy_row(float *dst, const float *src, uint32_t d)
{
    uint32_t i = 0;
    for (; i + W <= d; i += W) vf_store(dst + i, vf_load(src + i));
    for (; i < d; i++) dst[i] = src[i];
}

/* cpu_simd.h's dots_top2 (any order of summation, FMA: bounds only). */
static void enc_dots_top2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2)
{
    uint32_t Mp;
    float *PT = transpose_patterns(P, M, d, &Mp);
    const uint32_t nvec = Mp / W;
    float *buf = PT ? malloc(((size_t)8 * Mp + Mp + (size_t)8 * DOT_XS) * sizeof(float)) : NULL;
    if (!buf) { /* the same values from plain loops */
        free(PT);
        for (uint32_t j = 0; j < n; j++) {
            const float *xt = x + (size_t)idx[j] * d;
            uint32_t b = 0;
            float f1 = INFINITY, f2 = INFINITY;
            for (uint32_t m = 0; m < M; m++) {
                float s = 0.0f;
                for (uint32_t i = 0; i < d; i++) s += xt[i] * P[(size_t)m * d + i];
                const float h = c2[m] - 2.0f * s;
                if (h < f1) f2 = f1, f1 = h, b = m;
                else if (h < f2) f2 = h;
            }
            best[j] = b, h1[j] = f1, h2[j] = f2;
        }
        return;
    }
    float *c2p = buf + (size_t)8 * Mp, *xb = c2p + Mp; /* xb: up to 8 token rows at stride DOT_XS */
    for (uint32_t m = 0; m < Mp; m++) c2p[m] = m < M ? c2[m] : INFINITY;
    uint32_t t = 0;
    /* the most tokens per pass whose TP x NV accumulators fit in DOT_ACC (16 with AVX-512's 32
     * registers, else 8) for a bank of up to 4 vectors; larger banks a token at a time */
#define PKV_DOT_PASS(TP, NV)                                                                                  \
    for (; t + (TP) <= n; t += (TP)) {                                                                        \
        for (uint32_t p = 0; p < (TP); p++) copy_row(xb + (size_t)p * DOT_XS, x + (size_t)idx[t + p] * d, d);  \
        dot_tokens(xb, (TP), PT, Mp, d, (NV), buf);                                                           \
        for (uint32_t p = 0; p < (TP); p++)                                                                   \
            best[t + p] = h_top2(buf + (size_t)p * Mp, c2p, Mp, &h1[t + p], &h2[t + p]);                      \
    }
    if (nvec == 1) PKV_DOT_PASS(8, 1)
#if DOT_ACC >= 16
    if (nvec == 2) PKV_DOT_PASS(8, 2)
    if (nvec == 3) PKV_DOT_PASS(4, 3)
    if (nvec == 4) PKV_DOT_PASS(4, 4)
#else
    if (nvec == 2) PKV_DOT_PASS(4, 2)
    if (nvec == 3) PKV_DOT_PASS(2, 3)
    if (nvec == 4) PKV_DOT_PASS(2, 4)
#endif
#undef PKV_DOT_PASS
    for (; t < n; t++) {
        const float *xt = x + (size_t)idx[t] * d;
        uint32_t v0 = 0;
        for (; v0 + DOT_ACC <= nvec; v0 += DOT_ACC) dot_tokens(xt, 1, PT + v0 * W, Mp, d, DOT_ACC, buf + v0 * W);
        for (; v0 < nvec; v0++) dot_tokens(xt, 1, PT + v0 * W, Mp, d, 1, buf + v0 * W);
        best[t] = h_top2(buf, c2p, Mp, &h1[t], &h2[t]);
    }
    free(buf);
    free(PT);
}

/* cpu_simd.h's sums: s[a_t][i] = s[a_t][i] + x_t,i for t in [t0, t1) ascending where sel[a_t], a run
 * of tokens of one centroid in registers (the same additions per element, in the same order). */
static void enc_sums(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                     float *s)
{
    if (d % W) { /* not reached: d is a multiple of 8 (and of 16 where W = 16 is used) */
        pkv_cpu_sums_scalar(x, a, t0, t1, d, sel, s);
        return;
    }
    const uint32_t nvec = d / W;
    uint32_t t = t0;
    while (t < t1) {
        const uint32_t m = a[t];
        uint32_t e = t + 1;
        while (e < t1 && a[e] == m) e++;
        if (sel[m])
            for (uint32_t v0 = 0; v0 < nvec; v0 += BLKV) {
                const uint32_t nv = nvec - v0 < BLKV ? nvec - v0 : BLKV;
                float *sm = s + (size_t)m * d + v0 * W;
                VF acc[BLKV];
                for (uint32_t v = 0; v < BLKV; v++) acc[v] = v < nv ? vf_load(sm + v * W) : vf_set1(0.0f);
                for (uint32_t u = t; u < e; u++) {
                    const float *xu = x + (size_t)u * d + v0 * W;
                    for (uint32_t v = 0; v < BLKV; v++)
                        if (v < nv) acc[v] = vf_add(acc[v], vf_load(xu + v * W));
                }
                for (uint32_t v = 0; v < BLKV; v++)
                    if (v < nv) vf_store(sm + v * W, acc[v]);
            }
        t = e;
    }
}

static void enc_argmin_l2(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out)
{
    enc_l2_top2(x, NULL, n, d, P, M, out, NULL, NULL);
}

/* Min-max distance (width of the span of x - c, folded over i ascending) of one token against nv
 * vectors of patterns. */
EINLINE void minmax_block(const float *x, const float *PT, uint32_t Mp, uint32_t d, uint32_t nv, float *dist)
{
    VF lo[BLKV], hi[BLKV];
    VF x0 = vf_set1(x[0]);
    for (uint32_t v = 0; v < BLKV; v++)
        if (v < nv) lo[v] = hi[v] = vf_sub(x0, vf_load(PT + v * W));
    for (uint32_t i = 1; i < d; i++) {
        VF xi = vf_set1(x[i]);
        const float *row = PT + (size_t)i * Mp;
        for (uint32_t v = 0; v < BLKV; v++)
            if (v < nv) {
                VF r = vf_sub(xi, vf_load(row + v * W));
                lo[v] = vf_min(r, lo[v]); /* r < lo ? r : lo */
                hi[v] = vf_max(r, hi[v]); /* r > hi ? r : hi, i.e. hi < r ? r : hi */
            }
    }
    for (uint32_t v = 0; v < nv; v++) vf_store(dist + v * W, vf_sub(hi[v], lo[v]));
}

static void enc_argmin_minmax(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    uint32_t Mp;
    float *PT = transpose_patterns(P, M, d, &Mp);
    if (!PT) {
        pkv_cpu_argmin_minmax_scalar(x, n, d, P, M, out);
        return;
    }
    float dist[BLKV * W];
    const uint32_t nvec = Mp / W;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t best = 0;
        float bd = 0.0f;
        for (uint32_t v0 = 0; v0 < nvec; v0 += BLKV) {
            uint32_t nv = nvec - v0 < BLKV ? nvec - v0 : BLKV, cnt = M - v0 * W < nv * W ? M - v0 * W : nv * W;
            minmax_block(x + (size_t)t * d, PT + v0 * W, Mp, d, nv, dist);
            float b;
            uint32_t i = first_min(dist, cnt, &b);
            if (v0 == 0 || b < bd) bd = b, best = v0 * W + i;
        }
        out[t] = (uint8_t)best;
    }
    free(PT);
}

/* ---- Chebyshev centre, channels in the lanes ----------------------------------------------------- */

static void enc_centre(const float *x, uint32_t n, uint32_t d, float *out)
{
    uint32_t i = 0;
    for (; i + W <= d; i += W) {
        VF lo = vf_load(x + i), hi = lo;
        for (uint32_t t = 1; t < n; t++) {
            VF v = vf_load(x + (size_t)t * d + i);
            lo = vf_min(v, lo);
            hi = vf_max(v, hi);
        }
        vf_store(out + i, vf_mul(vf_add(hi, lo), vf_set1(0.5f)));
    }
    for (; i < d; i++) { /* W = 16 and d = 16k + 8 */
        pkv_span s = pkv_span_of(x[i]);
        for (uint32_t t = 1; t < n; t++) s = pkv_span_add(s, x[(size_t)t * d + i]);
        out[i] = pkv_centre(s.lo, s.hi);
    }
}

/* ---- quantization ---------------------------------------------------------------------------------- */

/* Codes of W values with per-lane (or broadcast) fp16 scale s and zero z, as pkv_quant_code. inv is
 * an estimate of 1/s (0 where s == 0). */
EINLINE VF quant_codes(VF x, VF z, VF s, VF inv, float maxq)
{
    const VF zero = vf_set1(0.0f), half = vf_set1(0.5f), one = vf_set1(1.0f), mq = vf_set1(maxq);
    MK live = mk_ne(s, zero);
    VF t = vf_sub(x, z);
    VF e = vf_add(vf_mul(t, inv), half);
    VF c = vf_min(vf_max(vf_floor(e), zero), mq);
    c = vf_sel(live, c, zero);
    for (;;) { /* while (c < maxq && t >= (c + 0.5) s) c++ */
        VF up = vf_mul(vf_add(c, half), s);
        MK m = mk_and(live, mk_and(mk_lt(c, mq), mk_ge(t, up)));
        if (!mk_any(m)) break;
        c = vf_sel(m, vf_add(c, one), c);
    }
    for (;;) { /* while (c > 0 && t < (c - 0.5) s) c-- */
        VF down = vf_mul(vf_sub(c, half), s);
        MK m = mk_and(live, mk_and(mk_lt(zero, c), mk_lt(t, down)));
        if (!mk_any(m)) break;
        c = vf_sel(m, vf_sub(c, one), c);
    }
    return c;
}

static inline void put32(uint8_t *p, uint32_t w)
{
    p[0] = (uint8_t)w, p[1] = (uint8_t)(w >> 8), p[2] = (uint8_t)(w >> 16), p[3] = (uint8_t)(w >> 24);
}

/* 8 codes (bytes) as a little-endian u64, byte k at bits 8k */
static inline uint64_t get64(const uint8_t *p)
{
    uint64_t x = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&x, p, 8); /* one load (gcc does not merge the byte loads below) */
#else
    for (int k = 0; k < 8; k++) x |= (uint64_t)p[k] << (8 * k);
#endif
    return x;
}

/* 8 codes of b bits (one per byte of x, each < 2^b) -> 8 b bits, code k at bits k b (SWAR: adjacent
 * fields merged in pairs, three times) */
static inline uint32_t pack8(uint64_t x, uint32_t b)
{
    switch (b) {
    case 1: return (uint32_t)(((x & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56);
    case 2:
        x = (x | x >> 6) & 0x000F000F000F000Full;
        x = (x | x >> 12) & 0x000000FF000000FFull;
        return (uint32_t)((x | x >> 24) & 0xFFFFu);
    default: /* 4 */
        x = (x | x >> 4) & 0x00FF00FF00FF00FFull;
        x = (x | x >> 8) & 0x0000FFFF0000FFFFull;
        return (uint32_t)(x | x >> 16);
    }
}

/* One token row of codes (d values, d a multiple of 8; the rest of the row 0) into its bit planes
 * (layout.h; the same words as pkv_pack_row), 8 codes at a time. */
static void pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint8_t *dst)
{
    if (bits == 8) {
        memcpy(dst, codes, d);
        return;
    }
    const uint32_t pb = bits == 3 ? 2 : bits, cpd = 32 / pb, words = pkv_plane_words(d, pb);
    const uint64_t low = bits == 3 ? 0x0303030303030303ull : ~0ull;
    for (uint32_t j = 0; j < words; j++) {
        uint32_t w = 0;
        for (uint32_t k = 0; k < cpd && j * cpd + k < d; k += 8) w |= pack8(get64(codes + j * cpd + k) & low, pb) << (k * pb);
        put32(dst + 4 * j, w);
    }
    if (bits == 3) { /* the 1-bit plane of the top bits after the 2-bit one */
        dst += 4 * words;
        for (uint32_t j = 0; j < pkv_plane_words(d, 1); j++) {
            uint32_t w = 0;
            for (uint32_t k = 0; k < 32 && j * 32 + k < d; k += 8) w |= pack8(get64(codes + j * 32 + k) >> 2, 1) << k;
            put32(dst + 4 * j, w);
        }
    }
}

/* ---- the MSE quantizer's range search ------------------------------------------------------------ */

/* pkv_quant_params_mse's choice (src/core/quant.c, docs/NUMERICS.md "Quantizer range search") for W
 * runs of values at once, one run per lane (K: a channel over the block's tokens; V: a token over its
 * channels, transposed), each lane visiting its own candidates in the reference's order: the coarse
 * stage (the same grid candidates in every lane), then the neighbours of each lane's best. Each lane
 * runs the scalar error sum of a candidate, in the values' order from +0, over every value (the
 * reference's early stop only skips sums that cannot win: the terms are >= 0, so a stopped sum's full
 * value is >= the best too), and the first strictly least error wins, as in the reference's loop. */

/* One candidate per lane: fp16 pair c (scale | zero << 16) and its scale, zero and 1/scale (0 where
 * the scale is 0) as floats. */
typedef struct mse_lanes {
    float s[W], z[W], inv[W];
    uint32_t c[W];
} mse_lanes;

/* Grid candidate k[l] of lane l's span [lo[l], hi[l]] (pkv_mse_candidate): its fp32 steps in the lanes,
 * the fp16 roundings by the hardware (RNE, saturating as pkv_f32_to_f16 does: vf_f16_store), candidate
 * 0 (min-max's) mm[l]. For finite spans (an infinite one makes NaNs, which vf_f16_store does not keep:
 * the scalar steps then). */
static void mse_lanes_of(const float *lo, const float *hi, int finite, const uint32_t *mm, const uint32_t *k,
                         float inv_maxq, mse_lanes *out)
{
    uint16_t sh[W], zh[W];
    if (finite) {
        float fi[W], fj[W];
        for (uint32_t l = 0; l < W; l++) fi[l] = (float)(k[l] >> 3), fj[l] = (float)(k[l] & 7u);
        const VF LO = vf_load(lo), HI = vf_load(hi), w = vf_sub(HI, LO), sixteenth = vf_set1(0.0625f);
        VF lw = vf_add(LO, vf_mul(vf_mul(w, vf_load(fi)), sixteenth));
        VF hw = vf_sub(HI, vf_mul(vf_mul(w, vf_load(fj)), sixteenth));
        vf_f16_store(sh, vf_mul(vf_sub(hw, lw), vf_set1(inv_maxq)));
        vf_f16_store(zh, lw);
        for (uint32_t l = 0; l < W; l++)
            if (k[l] == 0) sh[l] = (uint16_t)(mm[l] & 0xFFFFu), zh[l] = (uint16_t)(mm[l] >> 16);
    } else
        for (uint32_t l = 0; l < W; l++) {
            uint32_t c = pkv_mse_candidate((pkv_span){lo[l], hi[l]}, k[l], inv_maxq);
            sh[l] = (uint16_t)(c & 0xFFFFu), zh[l] = (uint16_t)(c >> 16);
        }
    const VF s = vf_f16_load(sh), zero = vf_set1(0.0f), one = vf_set1(1.0f);
    const MK live = mk_ne(s, zero);
    vf_store(out->s, s);
    vf_store(out->z, vf_f16_load(zh));
    vf_store(out->inv, vf_sel(live, vf_div(one, vf_sel(live, s, one)), zero));
    for (uint32_t l = 0; l < W; l++) out->c[l] = sh[l] | (uint32_t)zh[l] << 16;
}

/* The code of t = x - z (pkv_quant_code) in every lane, as cs = code s. The code is the integer
 * nearest to t / s clamped to [0, maxq] (ties up: code = #{k >= 1 : t >= (k - 0.5) s}, the comparisons
 * exact), here from y = t * inv, inv = 1/s rounded: y = (t/s)(1 + d1)(1 + d2), |d| <= 2^-24, so for
 * |t / s| <= 257 (where the clamp does not decide) |y - t/s| < 2^-15, and where y is farther than
 * 2^-14 from a half-integer, round(y) clamped is the code (elsewhere the clamp makes it: |t/s| is far
 * past -0.5 or maxq + 0.5). Lanes with y near a half-integer set *bad, and quant_codes' corrected
 * codes replace the vector's. s = 0 (inv = 0): y = 0, code 0, as the reference. mq: maxq. */
EINLINE VF mse_code(VF x, VF z, VF s, VF inv, VF mq, MK *bad)
{
    const VF zero = vf_set1(0.0f), edge = vf_set1(0.5f - 0x1p-14f);
    VF y = vf_mul(vf_sub(x, z), inv);
    VF c = vf_round(y);
    *bad = mk_lt(edge, vf_abs(vf_sub(y, c)));
    return vf_mul(vf_min(vf_max(c, zero), mq), s);
}

/* acc + (z + cs - x)^2 (pkv_quant_err_step's term, cs = code s) */
EINLINE VF mse_term(VF acc, VF x, VF z, VF cs)
{
    VF r = vf_sub(vf_add(z, cs), x);
    return vf_add(acc, vf_mul(r, r));
}

/* The error sums of NP candidates per lane (cand[0 .. NP - 1]) over the n values x[t * stride + l] of
 * each lane l: e[q * W + l]. NP is a constant at every call (the sums stay in registers). */
EINLINE void mse_sums(const float *x, uint32_t n, size_t stride, const mse_lanes *cand, uint32_t NP, float maxq,
                      float *e)
{
    VF S[4], Z[4], I[4], E[4];
    const VF MQ = vf_set1(maxq);
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
    for (uint32_t q = 0; q < NP; q++)
        S[q] = vf_load(cand[q].s), Z[q] = vf_load(cand[q].z), I[q] = vf_load(cand[q].inv), E[q] = vf_set1(0.0f);
    for (uint32_t t = 0; t < n; t++) {
        const VF xv = vf_load(x + (size_t)t * stride);
        VF CS[4];
        MK bad[4], any;
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
        for (uint32_t q = 0; q < NP; q++) CS[q] = mse_code(xv, Z[q], S[q], I[q], MQ, &bad[q]);
        any = bad[0];
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
        for (uint32_t q = 1; q < NP; q++) any = mk_or(any, bad[q]);
        if (mk_any(any))
            for (uint32_t q = 0; q < NP; q++) CS[q] = vf_mul(quant_codes(xv, Z[q], S[q], I[q], maxq), S[q]);
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
        for (uint32_t q = 0; q < NP; q++) E[q] = mse_term(E[q], xv, Z[q], CS[q]);
    }
    for (uint32_t q = 0; q < NP; q++) vf_store(e + q * W, E[q]);
}

/* mse_sums at 2 bits (maxq 3), without the estimate: the code is #{k = 1..3 : t >= (k - 0.5) s}, t = x - z,
 * and the thresholds (k - 0.5) s are exact in fp32 (docs/NUMERICS.md "Quantizer"), so three comparisons
 * give it exactly (the thresholds increase: the last passed one names the code); the dequantized value
 * z + code s is one of four levels made once per candidate by the same two rounded steps. s = 0: the
 * thresholds are +inf, code 0, as the reference. */
EINLINE void mse_sums2(const float *x, uint32_t n, size_t stride, const mse_lanes *cand, uint32_t NP, float *e)
{
    VF Z[3], T1[3], T2[3], T3[3], L0[3], L1[3], L2[3], L3[3], E[3];
    const VF zero = vf_set1(0.0f), inf = vf_set1(INFINITY);
#if defined(__GNUC__)
#pragma GCC unroll 3
#endif
    for (uint32_t q = 0; q < NP; q++) {
        const VF S = vf_load(cand[q].s);
        const MK live = mk_ne(S, zero);
        Z[q] = vf_load(cand[q].z), E[q] = zero;
        T1[q] = vf_sel(live, vf_mul(vf_set1(0.5f), S), inf);
        T2[q] = vf_sel(live, vf_mul(vf_set1(1.5f), S), inf);
        T3[q] = vf_sel(live, vf_mul(vf_set1(2.5f), S), inf);
        L0[q] = vf_add(Z[q], vf_mul(zero, S));
        L1[q] = vf_add(Z[q], vf_mul(vf_set1(1.0f), S));
        L2[q] = vf_add(Z[q], vf_mul(vf_set1(2.0f), S));
        L3[q] = vf_add(Z[q], vf_mul(vf_set1(3.0f), S));
    }
    for (uint32_t t = 0; t < n; t++) {
        const VF xv = vf_load(x + (size_t)t * stride);
#if defined(__GNUC__)
#pragma GCC unroll 3
#endif
        for (uint32_t q = 0; q < NP; q++) {
            const VF tv = vf_sub(xv, Z[q]);
            VF dq = vf_sel(mk_ge(tv, T1[q]), L1[q], L0[q]);
            dq = vf_sel(mk_ge(tv, T2[q]), L2[q], dq);
            dq = vf_sel(mk_ge(tv, T3[q]), L3[q], dq);
            const VF r = vf_sub(dq, xv);
            E[q] = vf_add(E[q], vf_mul(r, r));
        }
    }
    for (uint32_t q = 0; q < NP; q++) vf_store(e + q * W, E[q]);
}

/* The search for W runs at once: lane l's run is x[t * stride + l], t = 0 .. n - 1, with span
 * [lo[l], hi[l]]; out[l]: its fp16 scale | zero << 16. */
static void enc_mse_lanes(const float *x, uint32_t n, size_t stride, const float *lo, const float *hi, float inv_maxq,
                          uint32_t bits, uint32_t *out)
{
    const float maxq = (float)((1u << bits) - 1u);
    uint32_t mm[W], k[4][W], bk[W];
    float be[W], e[4 * W];
    int finite = 1;
    for (uint32_t l = 0; l < W; l++) {
        finite &= isfinite(lo[l]) && isfinite(hi[l]);
        mm[l] = pkv_mse_candidate((pkv_span){lo[l], hi[l]}, 0, inv_maxq);
    }
    mse_lanes cand[4];
    /* the coarse stage: three passes of three candidates, the same in every lane */
    for (uint32_t q0 = 0; q0 < PKV_MSE_COARSE; q0 += 3) {
        for (uint32_t q = 0; q < 3; q++) {
            for (uint32_t l = 0; l < W; l++) k[q][l] = pkv_mse_coarse(q0 + q);
            mse_lanes_of(lo, hi, finite, mm, k[q], inv_maxq, &cand[q]);
        }
        if (bits == 2) mse_sums2(x, n, stride, cand, 3, e);
        else mse_sums(x, n, stride, cand, 3, maxq, e);
        for (uint32_t q = 0; q < 3; q++)
            for (uint32_t l = 0; l < W; l++)
                if (q0 + q == 0 || (e[q * W + l] < be[l] && cand[q].c[l] != out[l]))
                    be[l] = e[q * W + l], out[l] = cand[q].c[l], bk[l] = k[q][l];
    }
    /* the fine stage: the neighbours of each lane's best, two passes of four */
    for (uint32_t q0 = 0; q0 < PKV_MSE_FINE; q0 += 4) {
        for (uint32_t q = 0; q < 4; q++) {
            for (uint32_t l = 0; l < W; l++) k[q][l] = pkv_mse_fine(bk[l], q0 + q);
            mse_lanes_of(lo, hi, finite, mm, k[q], inv_maxq, &cand[q]);
        }
        if (bits == 2) {
            mse_sums2(x, n, stride, cand, 2, e);
            mse_sums2(x, n, stride, cand + 2, 2, e + 2 * W);
        } else
            mse_sums(x, n, stride, cand, 4, maxq, e);
        for (uint32_t q = 0; q < 4; q++)
            for (uint32_t l = 0; l < W; l++)
                if (e[q * W + l] < be[l] && cand[q].c[l] != out[l]) be[l] = e[q * W + l], out[l] = cand[q].c[l];
    }
}

/* The span of d values (a V token), folded in order when the result may depend on it (a zero). */
static pkv_span span_of_row(const float *x, uint32_t d)
{
    VF lo = vf_load(x), hi = lo;
    for (uint32_t i = W; i < d; i += W) {
        VF v = vf_load(x + i);
        lo = vf_min(v, lo);
        hi = vf_max(v, hi);
    }
    pkv_span s = {vf_hmin(lo), vf_hmax(hi)};
    if (s.lo == 0.0f || s.hi == 0.0f) { /* the sign of a zero depends on the order: fold as the scalar does */
        s = pkv_span_of(x[0]);
        for (uint32_t i = 1; i < d; i++) s = pkv_span_add(s, x[i]);
    }
    return s;
}

static void enc_block_encode(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka, const uint8_t *va,
                             const float *PK, const float *PV, uint8_t *blk)
{
    const uint32_t G = g->G, d = g->d;
    if (d % W) { /* not reached: d is a multiple of 8, and of 16 where W = 16 is used (else scalar) */
        pkv_block_encode(g, kx, vx, ka, va, PK, PV, blk);
        return;
    }
    memset(blk, 0, g->block_bytes);
    if (g->mode == PKV_MODE_FP16) {
        for (uint32_t i = 0; i < G * d; i += W) {
            vf_f16_store((uint16_t *)(blk + g->off_kfp16) + i, vf_load(kx + i));
            vf_f16_store((uint16_t *)(blk + g->off_vfp16) + i, vf_load(vx + i));
        }
        return;
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    float *r = malloc((size_t)G * d * sizeof(float));
    if (!r) {
        pkv_block_encode(g, kx, vx, ka, va, PK, PV, blk);
        return;
    }
    uint8_t codes[256];
    float cf[256];
    float ks[256], kz[256], kinv[256];
    const float kmax = (float)((1u << g->k_bits) - 1u), vmax = (float)((1u << g->v_bits) - 1u);

    /* K: residual per token, quantized per channel over the G tokens */
    for (uint32_t t = 0; t < G; t++)
        for (uint32_t i = 0; i < d; i += W) {
            VF x = vf_load(kx + (size_t)t * d + i);
            if (pattern) x = vf_sub(x, vf_load(PK + (size_t)ka[t] * d + i));
            vf_store(r + (size_t)t * d + i, x);
        }
    for (uint32_t i = 0; i < d; i += W) {
        VF lo = vf_load(r + i), hi = lo;
        for (uint32_t t = 1; t < G; t++) {
            VF v = vf_load(r + (size_t)t * d + i);
            lo = vf_min(v, lo);
            hi = vf_max(v, hi);
        }
        vf_store(ks + i, lo); /* ks: lo, kz: hi for now */
        vf_store(kz + i, hi);
    }
    uint32_t kc[256];
    if (pkv_geom_k_mse(g))
        for (uint32_t i = 0; i < d; i += W) enc_mse_lanes(r + i, G, d, ks + i, kz + i, g->inv_maxq_k, g->k_bits, kc + i);
    for (uint32_t i = 0; i < d; i++) {
        uint16_t sh = (uint16_t)pkv_scale_f16(ks[i], kz[i], g->inv_maxq_k), zh = (uint16_t)pkv_zero_f16(ks[i]);
        if (pkv_geom_k_mse(g)) sh = (uint16_t)(kc[i] & 0xFFFFu), zh = (uint16_t)(kc[i] >> 16);
        pkv_wr16(blk + g->off_kscale + 2 * i, sh);
        pkv_wr16(blk + g->off_kzero + 2 * i, zh);
        ks[i] = pkv_f16_to_f32(sh);
        kz[i] = pkv_f16_to_f32(zh);
        kinv[i] = ks[i] != 0.0f ? 1.0f / ks[i] : 0.0f;
    }
    for (uint32_t t = 0; t < G; t++) {
        for (uint32_t i = 0; i < d; i += W)
            vf_store(cf + i, quant_codes(vf_load(r + (size_t)t * d + i), vf_load(kz + i), vf_load(ks + i),
                                         vf_load(kinv + i), kmax));
        for (uint32_t i = 0; i < d; i += W) vf_to_u8(vf_load(cf + i), codes + i);
        pack_row(codes, d, g->k_bits, blk + g->off_kcodes + (size_t)t * g->k_row_words * 4);
        if (pattern) blk[g->off_kidx + t] = ka[t];
    }

    /* V: per token, the residual only where the gate passes; the MSE search W tokens at a time */
    float vlo[128], vhi[128];
    uint32_t vc[128];
    for (uint32_t t = 0; t < G; t++) {
        const float *x = vx + (size_t)t * d;
        float *rv = r + (size_t)t * d;
        int use = 0;
        if (pattern) {
            const float *c = PV + (size_t)va[t] * d;
            for (uint32_t i = 0; i < d; i += W) vf_store(rv + i, vf_sub(vf_load(x + i), vf_load(c + i)));
            pkv_span a = span_of_row(rv, d), b = span_of_row(x, d);
            use = pkv_v_gate(pkv_span_width(a), pkv_span_width(b), g->gate_k2);
            blk[g->off_vidx + t] = va[t];
            if (use) blk[g->off_vmask + t / 8] |= (uint8_t)(1u << (t % 8));
        }
        if (!use) memcpy(rv, x, d * sizeof(float));
        pkv_span sp = span_of_row(rv, d);
        vlo[t] = sp.lo, vhi[t] = sp.hi;
    }
    if (pkv_geom_v_mse(g)) {
        float rt[256 * W]; /* W tokens' rows transposed: channel i of lane l at rt[i * W + l] */
        for (uint32_t t0 = 0; t0 < G; t0 += W) {
            for (uint32_t l = 0; l < W; l++)
                for (uint32_t i = 0; i < d; i++) rt[i * W + l] = r[(size_t)(t0 + l) * d + i];
            enc_mse_lanes(rt, d, W, vlo + t0, vhi + t0, g->inv_maxq_v, g->v_bits, vc + t0);
        }
    }
    for (uint32_t t = 0; t < G; t++) {
        const float *rv = r + (size_t)t * d;
        uint16_t sh = (uint16_t)pkv_scale_f16(vlo[t], vhi[t], g->inv_maxq_v), zh = (uint16_t)pkv_zero_f16(vlo[t]);
        if (pkv_geom_v_mse(g)) sh = (uint16_t)(vc[t] & 0xFFFFu), zh = (uint16_t)(vc[t] >> 16);
        pkv_wr16(blk + g->off_vscale + 2 * t, sh);
        pkv_wr16(blk + g->off_vzero + 2 * t, zh);
        float s = pkv_f16_to_f32(sh), z = pkv_f16_to_f32(zh);
        VF sv = vf_set1(s), zv = vf_set1(z), iv = vf_set1(s != 0.0f ? 1.0f / s : 0.0f);
        for (uint32_t i = 0; i < d; i += W) vf_to_u8(quant_codes(vf_load(rv + i), zv, sv, iv, vmax), codes + i);
        pack_row(codes, d, g->v_bits, blk + g->off_vcodes + (size_t)t * g->v_row_words * 4);
    }
    free(r);
}
