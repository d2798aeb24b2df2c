#include "quant.h"

#include "f16.h"

static const float inv_maxq[9] = {0, 0, 1.0f / 3.0f, 1.0f / 7.0f, 1.0f / 15.0f, 0, 0, 0, 1.0f / 255.0f};

void pkv_quant_params(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                      uint16_t *zero_h)
{
    float mn = x[0], mx = x[0];
    for (uint32_t i = 1; i < n; i++) {
        float v = x[(uint64_t)i * stride];
        if (v < mn) mn = v;
        if (v > mx) mx = v;
    }
    *scale_h = pkv_f32_to_f16((mx - mn) * inv_maxq[bits]);
    *zero_h = pkv_f32_to_f16(mn);
}

uint32_t pkv_quant_code(float x, float s, float z, uint32_t maxq)
{
    if (s == 0.0f) return 0;
    float t = x - z;
    float est = t / s + 0.5f; /* any estimate; the loops below make it exact */
    int c = est <= 0.0f ? 0 : est >= (float)maxq ? (int)maxq : (int)est;
    while (c < (int)maxq && t >= ((float)c + 0.5f) * s) c++;
    while (c > 0 && t < ((float)c - 0.5f) * s) c--;
    return (uint32_t)c;
}

float pkv_dist_l2(const float *x, const float *c, uint32_t d)
{
    float acc = 0.0f;
    for (uint32_t i = 0; i < d; i++) {
        float diff = x[i] - c[i];
        acc = acc + diff * diff;
    }
    return acc;
}

float pkv_dist_minmax(const float *x, const float *c, uint32_t d)
{
    float mn = x[0] - c[0], mx = mn;
    for (uint32_t i = 1; i < d; i++) {
        float r = x[i] - c[i];
        if (r < mn) mn = r;
        if (r > mx) mx = r;
    }
    return mx - mn;
}

float pkv_range(const float *x, uint32_t d)
{
    float mn = x[0], mx = x[0];
    for (uint32_t i = 1; i < d; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    return mx - mn;
}

int pkv_gate_pass(float A, float B, float gate_k2)
{
    if (!(B > 0.0f)) return 0;
    float bb = B * B, aa = A * A;
    float L = bb - aa;
    if (L < 0.0f) return 0;
    float lhs = L * L;
    float b4 = bb * bb, a4 = aa * aa;
    float rhs = gate_k2 * (b4 + a4);
    return lhs >= rhs;
}

void pkv_pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint32_t *row)
{
    uint32_t *w = row;
    for (uint32_t p = 0; p < pkv_plane_count(bits); p++) {
        uint32_t pb = pkv_plane_bits(bits, p), shift_src = p == 0 ? 0 : 2, mask = (1u << pb) - 1u;
        uint32_t nw = pkv_plane_words(d, pb);
        for (uint32_t i = 0; i < nw; i++) w[i] = 0;
        for (uint32_t c = 0; c < d; c++) {
            uint32_t v = ((uint32_t)codes[c] >> shift_src) & mask;
            w[(c * pb) / 32] |= v << ((c * pb) % 32);
        }
        w += nw;
    }
}

void pkv_unpack_row(const uint32_t *row, uint32_t d, uint32_t bits, uint8_t *codes)
{
    const uint32_t *w = row;
    for (uint32_t c = 0; c < d; c++) codes[c] = 0;
    for (uint32_t p = 0; p < pkv_plane_count(bits); p++) {
        uint32_t pb = pkv_plane_bits(bits, p), shift_dst = p == 0 ? 0 : 2, mask = (1u << pb) - 1u;
        for (uint32_t c = 0; c < d; c++)
            codes[c] |= (uint8_t)(((w[(c * pb) / 32] >> ((c * pb) % 32)) & mask) << shift_dst);
        w += pkv_plane_words(d, pb);
    }
}
