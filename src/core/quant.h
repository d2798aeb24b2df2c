/* The quantizer, distances and gate of docs/NUMERICS.md over whole vectors, for the C core. The
 * scalar formulas (fp16, span, L2 step, scale, zero, code, gate, bit planes) are those of
 * shaders/common/pkv_math.h, shared with the GPU kernels; this adds the loops around them and the
 * packing of a token row. */
#ifndef PKV_QUANT_H
#define PKV_QUANT_H

#include <stdint.h>

#include "layout.h"
#include "pkv_math.h"

/* Min/max quantization parameters of n values with stride `stride`; returns fp16 scale and zero. */
void pkv_quant_params(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                      uint16_t *zero_h);

/* PKV_QUANTIZER_MSE's parameters (docs/NUMERICS.md): among the clipped ranges [lo + i w/16, hi - j w/16]
 * (w = hi - lo of the values, i, j in 0..PKV_MSE_CLIP_STEPS), the fp16 (scale, zero) whose decoded
 * values have the least squared error (fp32 terms summed in double, in order); min-max's (i = j = 0)
 * unless another is strictly lower. */
#define PKV_MSE_CLIP_STEPS 7u
void pkv_quant_params_mse(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                          uint16_t *zero_h);
/* Squared error of n values under fp16 (scale, zero) as pkv_quant_code and the decoder apply them. */
double pkv_quant_sq_error(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t scale_h, uint16_t zero_h);

float pkv_dist_l2(const float *x, const float *c, uint32_t d);
float pkv_dist_minmax(const float *x, const float *c, uint32_t d); /* width of the span of x - c */
float pkv_range(const float *x, uint32_t d);                      /* width of the span of x */

/* Packs/unpacks the codes of one token row (all bit planes) into/from row_words 32-bit words. */
void pkv_pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint32_t *row);
void pkv_unpack_row(const uint32_t *row, uint32_t d, uint32_t bits, uint8_t *codes);

#endif
