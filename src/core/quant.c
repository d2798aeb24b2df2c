#include "quant.h"

#include <math.h>

#include "f16.h"

void pkv_quant_params(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                      uint16_t *zero_h)
{
    pkv_span s = pkv_span_of(x[0]);
    for (uint32_t i = 1; i < n; i++) s = pkv_span_add(s, x[(uint64_t)i * stride]);
    *scale_h = (uint16_t)pkv_scale_f16(s.lo, s.hi, pkv_inv_maxq(bits));
    *zero_h = (uint16_t)pkv_zero_f16(s.lo);
}

float pkv_quant_sq_error(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint32_t cand, float bound)
{
    const float s = pkv_f16_to_f32(cand & 0xFFFFu), z = pkv_f16_to_f32(cand >> 16), rs = 1.0f / s;
    const uint32_t maxq = (1u << bits) - 1u;
    float e = 0.0f;
    for (uint32_t i = 0; i < n && e < bound; i++) e = pkv_quant_err_step(e, x[(uint64_t)i * stride], z, s, rs, maxq);
    return e;
}

void pkv_quant_params_mse(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                          uint16_t *zero_h)
{
    pkv_span s = pkv_span_of(x[0]);
    for (uint32_t i = 1; i < n; i++) s = pkv_span_add(s, x[(uint64_t)i * stride]);
    const float inv = pkv_inv_maxq(bits);
    uint32_t best_c = pkv_mse_candidate(s, 0, inv), best_k = 0;
    float best = pkv_quant_sq_error(x, n, stride, bits, best_c, INFINITY);
    for (uint32_t v = 1; v < PKV_MSE_VISITS && best > 0.0f; v++) {
        /* the coarse stage, then the neighbours of its best */
        uint32_t k = v < PKV_MSE_COARSE ? pkv_mse_coarse(v) : pkv_mse_fine(best_k, v - PKV_MSE_COARSE);
        uint32_t c = pkv_mse_candidate(s, k, inv);
        if (c == best_c) continue; /* the same (scale, zero): the same error */
        float e = pkv_quant_sq_error(x, n, stride, bits, c, best);
        if (e < best) best = e, best_c = c, best_k = v < PKV_MSE_COARSE ? k : best_k;
    }
    *scale_h = (uint16_t)(best_c & 0xFFFFu);
    *zero_h = (uint16_t)(best_c >> 16);
}

float pkv_dist_l2(const float *x, const float *c, uint32_t d)
{
    float acc = 0.0f;
    for (uint32_t i = 0; i < d; i++) acc = pkv_l2_step(acc, x[i], c[i]);
    return acc;
}

float pkv_dist_minmax(const float *x, const float *c, uint32_t d)
{
    pkv_span s = pkv_span_of(x[0] - c[0]);
    for (uint32_t i = 1; i < d; i++) s = pkv_span_add(s, x[i] - c[i]);
    return pkv_span_width(s);
}

float pkv_range(const float *x, uint32_t d)
{
    pkv_span s = pkv_span_of(x[0]);
    for (uint32_t i = 1; i < d; i++) s = pkv_span_add(s, x[i]);
    return pkv_span_width(s);
}

void pkv_pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint32_t *row)
{
    uint32_t *w = row;
    for (uint32_t p = 0; p < pkv_plane_count(bits); p++) {
        uint32_t pb = pkv_plane_bits(bits, p), nw = pkv_plane_words(d, pb);
        for (uint32_t i = 0; i < nw; i++) w[i] = 0;
        for (uint32_t c = 0; c < d; c++)
            w[pkv_code_word(c, pb)] |= pkv_code_plane_part(codes[c], bits, p) << pkv_code_shift(c, pb);
        w += nw;
    }
}

void pkv_unpack_row(const uint32_t *row, uint32_t d, uint32_t bits, uint8_t *codes)
{
    const uint32_t *w = row;
    for (uint32_t c = 0; c < d; c++) codes[c] = 0;
    for (uint32_t p = 0; p < pkv_plane_count(bits); p++) {
        uint32_t pb = pkv_plane_bits(bits, p), low = p == 0 ? 0 : 2, mask = (1u << pb) - 1u;
        for (uint32_t c = 0; c < d; c++)
            codes[c] |= (uint8_t)(((w[pkv_code_word(c, pb)] >> pkv_code_shift(c, pb)) & mask) << low);
        w += pkv_plane_words(d, pb);
    }
}
