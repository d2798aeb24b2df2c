/* The quantizer, distances, gate and bit packing of docs/NUMERICS.md: the reference arithmetic. */
#ifndef PKV_QUANT_H
#define PKV_QUANT_H

#include <stdint.h>

#include "layout.h"

/* Min/max quantization parameters of n values with stride `stride`; returns fp16 scale and zero. */
void pkv_quant_params(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                      uint16_t *zero_h);
/* The code of x for fp16 (scale, zero) as floats: exact round-half-up of (x - z) / s, clamped. */
uint32_t pkv_quant_code(float x, float s, float z, uint32_t maxq);

float pkv_dist_l2(const float *x, const float *c, uint32_t d);
float pkv_dist_minmax(const float *x, const float *c, uint32_t d);
float pkv_range(const float *x, uint32_t d);
/* The V gate: residualise iff it pays (docs/NUMERICS.md). A = range(x - c), B = range(x). */
int pkv_gate_pass(float A, float B, float gate_k2);

/* Packs/unpacks the codes of one token row (all bit planes) into/from row_words 32-bit words. */
void pkv_pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint32_t *row);
void pkv_unpack_row(const uint32_t *row, uint32_t d, uint32_t bits, uint8_t *codes);

#endif
