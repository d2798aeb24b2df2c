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

/* The MSE quantizer's parameters (pkv_quantizer MSE, MSE_K, MSE_V; docs/NUMERICS.md): of the clipped
 * ranges of pkv_mse_candidate visited in the order of pkv_mse_coarse then pkv_mse_fine
 * (shaders/common/pkv_math.h, shared with the GPU encoders), the first whose fp16 (scale, zero) give
 * the least fp32 squared error over the values as stored and decoded; min-max's unless another is
 * strictly lower. */
void pkv_quant_params_mse(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint16_t *scale_h,
                          uint16_t *zero_h);
/* Squared error (pkv_quant_err_step summed in order) of n values under candidate `cand` (fp16 scale
 * | zero << 16), as pkv_quant_code and the decoder apply them; the sum stops early once it is >= bound
 * (INFINITY: the whole sum), returning that partial sum. */
float pkv_quant_sq_error(const float *x, uint32_t n, uint32_t stride, uint32_t bits, uint32_t cand, float bound);

float pkv_dist_l2(const float *x, const float *c, uint32_t d);
float pkv_dist_minmax(const float *x, const float *c, uint32_t d); /* width of the span of x - c */
float pkv_range(const float *x, uint32_t d);                      /* width of the span of x */

/* Packs/unpacks the codes of one token row (all bit planes) into/from row_words 32-bit words. */
void pkv_pack_row(const uint8_t *codes, uint32_t d, uint32_t bits, uint32_t *row);
void pkv_unpack_row(const uint32_t *row, uint32_t d, uint32_t bits, uint8_t *codes);

#endif
