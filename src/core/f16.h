/* IEEE binary16 <-> binary32, round to nearest even, saturating to +-65504 (docs/NUMERICS.md):
 * pkv_f32_to_f16 and pkv_f16_to_f32 of shaders/common/pkv_math.h, the same functions the GPU
 * kernels run. */
#ifndef PKV_F16_H
#define PKV_F16_H

#include "pkv_math.h"

#define PKV_F16_MAX 65504.0f

#include <stddef.h>
#include <stdint.h>

/* fp32 -> fp16 of values that must be finite and within +-65504 (the K/V an append stores): converts
 * src[0..n) and returns n, or stops at the first value that is not and returns its index. Uses the
 * x86 F16C instructions where the CPU has them (the same bits as pkv_f32_to_f16 for such values:
 * IEEE round to nearest even, subnormals kept). */
size_t pkv_f32_to_f16_finite(const float *src, uint16_t *dst, size_t n);

/* The index of the first fp16 value of h[0..n) that is NaN or Inf, or n (scans blocks of values
 * without a branch per value, so that the compiler vectorizes it). */
size_t pkv_f16_find_nonfinite(const uint16_t *h, size_t n);

#endif
