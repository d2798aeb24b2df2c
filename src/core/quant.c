#include "quant.h"

#include "f16.h"

void pkv_quant_params(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                      uint16_t *zero_h)
{
    pkv_span s = pkv_span_of(x[0]);
    for (uint32_t i = 1; i < n; i++) s = pkv_span_add(s, x[(uint64_t)i * stride]);
    *scale_h = (uint16_t)pkv_scale_f16(s.lo, s.hi, pkv_inv_maxq(bits));
    *zero_h = (uint16_t)pkv_zero_f16(s.lo);
}

double pkv_quant_sq_error(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t scale_h, uint16_t zero_h)
{
    const float s = pkv_f16_to_f32(scale_h), z = pkv_f16_to_f32(zero_h);
    const uint32_t maxq = (1u << bits) - 1u;
    double e = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        float v = x[(uint64_t)i * stride], r = z + (float)pkv_quant_code(v, z, s, maxq) * s - v;
        e += (double)r * r;
    }
    return e;
}

void pkv_quant_params_mse(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                          uint16_t *zero_h)
{
    pkv_span s = pkv_span_of(x[0]);
    for (uint32_t i = 1; i < n; i++) s = pkv_span_add(s, x[(uint64_t)i * stride]);
    const float w = s.hi - s.lo, inv = pkv_inv_maxq(bits);
    uint16_t bs = (uint16_t)pkv_scale_f16(s.lo, s.hi, inv), bz = (uint16_t)pkv_zero_f16(s.lo);
    double best = pkv_quant_sq_error(x, n, stride, bits, bs, bz);
    for (uint32_t i = 0; i <= PKV_MSE_CLIP_STEPS && best > 0.0; i++)
        for (uint32_t j = 0; j <= PKV_MSE_CLIP_STEPS; j++) {
            if (!i && !j) continue;
            float lo = s.lo + w * (float)i * 0.0625f, hi = s.hi - w * (float)j * 0.0625f;
            uint16_t cs = (uint16_t)pkv_scale_f16(lo, hi, inv), cz = (uint16_t)pkv_zero_f16(lo);
            double e = pkv_quant_sq_error(x, n, stride, bits, cs, cz);
            if (e < best) best = e, bs = cs, bz = cz;
        }
    *scale_h = bs;
    *zero_h = bz;
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
