/* Encoding and decoding one block (G tokens of one layer and kv head): the reference that every
 * backend's kernels reproduce bit for bit (docs/NUMERICS.md). */
#ifndef PKV_BLOCK_H
#define PKV_BLOCK_H

#include <stdint.h>

#include "layout.h"

/* kx, vx: [G][d] fp32 values (from fp16). ka, va: pattern index per token; PK, PV: [n][d] fp32
 * patterns (from fp16). Unused in DIRECT and FP16 modes (may be NULL). */
void pkv_block_encode(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka, const uint8_t *va,
                      const float *PK, const float *PV, uint8_t *block);
/* Dequantizes a block into k, v [G][d]. */
void pkv_block_decode(const pkv_geom *g, const uint8_t *block, const float *PK, const float *PV, float *k, float *v);

/* fp16 bank chunks -> fp32 patterns [n][d] for K and V; chunks[ci] holds patterns 32 ci .. 32 ci + 31. */
void pkv_bank_load(const pkv_geom *g, const uint8_t *const *chunks, uint32_t n, float *PK, float *PV);

static inline uint16_t pkv_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void pkv_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

#endif
