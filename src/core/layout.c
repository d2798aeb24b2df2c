#include "layout.h"

#include <math.h>

static uint32_t align16(uint32_t x) { return (x + 15u) & ~15u; }

void pkv_geom_init(pkv_geom *g, const pkv_cache_config *c)
{
    *g = (pkv_geom){0};
    g->mode = (uint32_t)c->mode;
    g->d = c->head_dim;
    g->G = c->group_size;
    g->R = c->window ? c->window : c->group_size;
    g->H = c->n_kv_heads;
    g->k_bits = c->k_bits;
    g->v_bits = c->v_bits;
    g->M = c->n_patterns;
    g->capacity = c->bank_capacity;
    g->k_assign = c->k_assign;
    g->quantizer = pkv_quantizer_resolve(c->mode, c->quantizer);
    g->k_row_words = pkv_row_words(g->d, g->k_bits);
    g->v_row_words = pkv_row_words(g->d, g->v_bits);

    const uint32_t d = g->d, G = g->G;
    uint32_t off = 0, payload = 0;
    if (c->mode == PKV_MODE_FP16) {
        g->off_kfp16 = off; off = align16(off + G * d * 2);
        g->off_vfp16 = off; off = align16(off + G * d * 2);
        g->block_payload[0] = 4 * G * d;
    } else {
        uint32_t codes = G * g->k_row_words * 4 + G * g->v_row_words * 4;
        uint32_t scales = 4 * d + 4 * G;
        g->off_kcodes = off; off = align16(off + G * g->k_row_words * 4);
        g->off_kscale = off; off = align16(off + d * 2);
        g->off_kzero = off; off = align16(off + d * 2);
        g->off_vcodes = off; off = align16(off + G * g->v_row_words * 4);
        g->off_vscale = off; off = align16(off + G * 2);
        g->off_vzero = off; off = align16(off + G * 2);
        g->block_payload[0] = codes;
        g->block_payload[1] = scales;
        if (c->mode == PKV_MODE_PATTERN) {
            /* k_assign NONE: keys use no pattern, so K reads V's index (into a K bank of zeros) */
            const int shared = c->k_assign == PKV_K_ASSIGN_NONE;
            g->off_kidx = off;
            if (!shared) off = align16(off + G);
            g->off_vidx = off; off = align16(off + G);
            g->off_vmask = off; off = align16(off + G / 8);
            g->block_payload[2] = shared ? G : 2 * G;
            g->block_payload[3] = G / 8;
        }
    }
    g->block_bytes = off;
    for (int i = 0; i < 4; i++) payload += g->block_payload[i];
    g->block_payload[4] = g->block_bytes - payload;
    g->chunk_bytes = 2 * PKV_CHUNK_PATTERNS * d * 2;
    g->window_bytes = 2 * g->R * d * 2;
    double k = 2.0 * PKV_GATE_Z / sqrt(5.0 * (double)d);
    g->gate_k2 = (float)(k * k);
    g->inv_maxq_k = pkv_inv_maxq(g->k_bits);
    g->inv_maxq_v = pkv_inv_maxq(g->v_bits);
}
