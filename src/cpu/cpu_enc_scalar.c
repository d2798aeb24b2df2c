/* The scalar encoding helpers of the kernel table: docs/NUMERICS.md written plainly (the reference
 * the vectorised versions are tested against byte for byte). */
#include <math.h>

#include "cpu_simd.h"
#include "quant.h"

void pkv_cpu_f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
}

void pkv_cpu_l2_top2_scalar(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                            uint32_t *best, float *d1, float *d2)
{
    for (uint32_t j = 0; j < n; j++) {
        const float *xt = x + (size_t)(idx ? idx[j] : j) * d;
        uint32_t bi = 0;
        float bd = pkv_dist_l2(xt, P, d), sd = INFINITY;
        for (uint32_t m = 1; m < M; m++) {
            float v = pkv_dist_l2(xt, P + (size_t)m * d, d);
            if (v < bd) sd = bd, bd = v, bi = m;
            else if (v < sd) sd = v;
        }
        best[j] = bi;
        if (d1) d1[j] = bd, d2[j] = sd;
    }
}

void pkv_cpu_argmin_l2_scalar(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out)
{
    pkv_cpu_l2_top2_scalar(x, NULL, n, d, P, M, out, NULL, NULL);
}

void pkv_cpu_sums_scalar(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                         float *s)
{
    for (uint32_t t = t0; t < t1; t++) {
        if (!sel[a[t]]) continue;
        float *sm = s + (size_t)a[t] * d;
        const float *xt = x + (size_t)t * d;
        for (uint32_t i = 0; i < d; i++) sm[i] = sm[i] + xt[i];
    }
}

void pkv_cpu_argmin_minmax_scalar(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    for (uint32_t t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        uint32_t best = 0;
        float bd = pkv_dist_minmax(xt, P, d);
        for (uint32_t m = 1; m < M; m++) {
            float v = pkv_dist_minmax(xt, P + (size_t)m * d, d);
            if (v < bd) bd = v, best = m;
        }
        out[t] = (uint8_t)best;
    }
}

void pkv_cpu_centre_scalar(const float *x, uint32_t n, uint32_t d, float *out)
{
    for (uint32_t i = 0; i < d; i++) {
        pkv_span s = pkv_span_of(x[i]);
        for (uint32_t t = 1; t < n; t++) s = pkv_span_add(s, x[(size_t)t * d + i]);
        out[i] = pkv_centre(s.lo, s.hi);
    }
}
