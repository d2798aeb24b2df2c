#include "block.h"

#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "quant.h"

static void write_row(uint8_t *dst, const uint32_t *row, uint32_t words)
{
    for (uint32_t w = 0; w < words; w++)
        for (int b = 0; b < 4; b++) dst[w * 4 + b] = (uint8_t)(row[w] >> (8 * b));
}

static void read_row(const uint8_t *src, uint32_t *row, uint32_t words)
{
    for (uint32_t w = 0; w < words; w++)
        row[w] = (uint32_t)src[w * 4] | (uint32_t)src[w * 4 + 1] << 8 | (uint32_t)src[w * 4 + 2] << 16 |
                 (uint32_t)src[w * 4 + 3] << 24;
}

void pkv_block_encode(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka, const uint8_t *va,
                      const float *PK, const float *PV, uint8_t *blk)
{
    const uint32_t G = g->G, d = g->d;
    memset(blk, 0, g->block_bytes);
    if (g->mode == PKV_MODE_FP16) {
        for (uint32_t i = 0; i < G * d; i++) {
            pkv_wr16(blk + g->off_kfp16 + 2 * i, (uint16_t)pkv_f32_to_f16(kx[i]));
            pkv_wr16(blk + g->off_vfp16 + 2 * i, (uint16_t)pkv_f32_to_f16(vx[i]));
        }
        return;
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    float r[128 * 256];
    uint8_t codes[256];
    uint32_t row[72];

    /* K: residual per token, quantized per channel over the G tokens. */
    for (uint32_t t = 0; t < G; t++)
        for (uint32_t i = 0; i < d; i++) r[t * d + i] = pattern ? kx[t * d + i] - PK[(size_t)ka[t] * d + i] : kx[t * d + i];
    const uint32_t kmax = (1u << g->k_bits) - 1u, vmax = (1u << g->v_bits) - 1u;
    float ks[256], kz[256];
    for (uint32_t i = 0; i < d; i++) {
        uint16_t sh, zh;
        if (pkv_geom_k_mse(g))
            pkv_quant_params_mse(r + i, G, d, g->k_bits, &sh, &zh);
        else pkv_quant_params(r + i, G, d, g->k_bits, &sh, &zh);
        pkv_wr16(blk + g->off_kscale + 2 * i, sh);
        pkv_wr16(blk + g->off_kzero + 2 * i, zh);
        ks[i] = pkv_f16_to_f32(sh);
        kz[i] = pkv_f16_to_f32(zh);
    }
    for (uint32_t t = 0; t < G; t++) {
        for (uint32_t i = 0; i < d; i++) codes[i] = (uint8_t)pkv_quant_code(r[t * d + i], kz[i], ks[i], kmax);
        pkv_pack_row(codes, d, g->k_bits, row);
        write_row(blk + g->off_kcodes + (size_t)t * g->k_row_words * 4, row, g->k_row_words);
        if (pattern) blk[g->off_kidx + t] = ka[t];
    }

    /* V: per token, residual only where the gate passes. */
    for (uint32_t t = 0; t < G; t++) {
        const float *x = vx + (size_t)t * d;
        float *rv = r;
        int use = 0;
        if (pattern) {
            const float *c = PV + (size_t)va[t] * d;
            use = pkv_v_gate(pkv_dist_minmax(x, c, d), pkv_range(x, d), g->gate_k2);
            blk[g->off_vidx + t] = va[t];
            if (use) blk[g->off_vmask + t / 8] |= (uint8_t)(1u << (t % 8));
        }
        for (uint32_t i = 0; i < d; i++) rv[i] = use ? x[i] - PV[(size_t)va[t] * d + i] : x[i];
        uint16_t sh, zh;
        if (pkv_geom_v_mse(g))
            pkv_quant_params_mse(rv, d, 1, g->v_bits, &sh, &zh);
        else pkv_quant_params(rv, d, 1, g->v_bits, &sh, &zh);
        pkv_wr16(blk + g->off_vscale + 2 * t, sh);
        pkv_wr16(blk + g->off_vzero + 2 * t, zh);
        float s = pkv_f16_to_f32(sh), z = pkv_f16_to_f32(zh);
        for (uint32_t i = 0; i < d; i++) codes[i] = (uint8_t)pkv_quant_code(rv[i], z, s, vmax);
        pkv_pack_row(codes, d, g->v_bits, row);
        write_row(blk + g->off_vcodes + (size_t)t * g->v_row_words * 4, row, g->v_row_words);
    }
}

void pkv_block_decode(const pkv_geom *g, const uint8_t *blk, const float *PK, const float *PV, float *k, float *v)
{
    const uint32_t G = g->G, d = g->d;
    if (g->mode == PKV_MODE_FP16) {
        for (uint32_t i = 0; i < G * d; i++) {
            k[i] = pkv_f16_to_f32(pkv_rd16(blk + g->off_kfp16 + 2 * i));
            v[i] = pkv_f16_to_f32(pkv_rd16(blk + g->off_vfp16 + 2 * i));
        }
        return;
    }
    const int pattern = g->mode == PKV_MODE_PATTERN;
    uint8_t codes[256];
    uint32_t row[72];
    for (uint32_t t = 0; t < G; t++) {
        read_row(blk + g->off_kcodes + (size_t)t * g->k_row_words * 4, row, g->k_row_words);
        pkv_unpack_row(row, d, g->k_bits, codes);
        for (uint32_t i = 0; i < d; i++) {
            float s = pkv_f16_to_f32(pkv_rd16(blk + g->off_kscale + 2 * i));
            float z = pkv_f16_to_f32(pkv_rd16(blk + g->off_kzero + 2 * i));
            float val = z + (float)codes[i] * s;
            k[t * d + i] = pattern ? val + PK[(size_t)blk[g->off_kidx + t] * d + i] : val;
        }
        read_row(blk + g->off_vcodes + (size_t)t * g->v_row_words * 4, row, g->v_row_words);
        pkv_unpack_row(row, d, g->v_bits, codes);
        float s = pkv_f16_to_f32(pkv_rd16(blk + g->off_vscale + 2 * t));
        float z = pkv_f16_to_f32(pkv_rd16(blk + g->off_vzero + 2 * t));
        int use = pattern && (blk[g->off_vmask + t / 8] >> (t % 8) & 1);
        for (uint32_t i = 0; i < d; i++) {
            float val = z + (float)codes[i] * s;
            v[t * d + i] = use ? val + PV[(size_t)blk[g->off_vidx + t] * d + i] : val;
        }
    }
}

void pkv_bank_load(const pkv_geom *g, const uint8_t *const *chunks, uint32_t n, float *PK, float *PV)
{
    const uint32_t d = g->d;
    for (uint32_t m = 0; m < n; m++) {
        const uint8_t *c = chunks[m / PKV_CHUNK_PATTERNS];
        uint32_t j = m % PKV_CHUNK_PATTERNS;
        for (uint32_t i = 0; i < d; i++) {
            PK[(size_t)m * d + i] = pkv_f16_to_f32(pkv_rd16(c + ((size_t)j * d + i) * 2));
            PV[(size_t)m * d + i] = pkv_f16_to_f32(pkv_rd16(c + ((size_t)(PKV_CHUNK_PATTERNS + j) * d + i) * 2));
        }
    }
}
