/* IEEE binary16 <-> binary32, round to nearest even, saturating to +-65504 (docs/NUMERICS.md):
 * pkv_f32_to_f16 and pkv_f16_to_f32 of shaders/common/pkv_math.h, the same functions the GPU
 * kernels run. */
#ifndef PKV_F16_H
#define PKV_F16_H

#include "pkv_math.h"

#define PKV_F16_MAX 65504.0f

#include <stddef.h>
#include <stdint.h>

/* The conversion instructions used (f16.c): the scalar rule, x86 F16C or ARM64 NEON, x86 AVX-512F. */
enum { PKV_F16_SCALAR = 0, PKV_F16_HW = 1, PKV_F16_WIDE = 2 };
/* The level the conversions below use: the best this CPU has, unless PKV_CPU_SIMD=scalar or PKV_NO_F16C
 * (scalar) or PKV_CPU_SIMD=avx2 (at most F16C) says otherwise. */
int pkv_f16_level(void);
int pkv_f16_level_supported(int level);

/* fp32 -> fp16 of values that must be finite and within +-65504 (the K/V an append stores): converts
 * src[0..n) and returns n, or stops at the first value that is not and returns its index. Uses the
 * CPU's conversion instructions where it has them (the same bits as pkv_f32_to_f16 for such values:
 * IEEE round to nearest even, subnormals kept). */
size_t pkv_f32_to_f16_finite(const float *src, uint16_t *dst, size_t n);

/* The same at a given level (one this CPU lacks: the scalar rule), and the unchecked conversions of
 * pkv_f32_to_f16_array / pkv_f16_to_f32_array at a level: for tests, which compare every level. */
size_t pkv_f32_to_f16_finite_at(int level, const float *src, uint16_t *dst, size_t n);
void pkv_f32_to_f16_at(int level, const float *src, uint16_t *dst, size_t n);
void pkv_f16_to_f32_at(int level, const uint16_t *src, float *dst, size_t n);

/* The index of the first fp16 value of h[0..n) that is NaN or Inf, or n (scans blocks of values
 * without a branch per value, so that the compiler vectorizes it). */
size_t pkv_f16_find_nonfinite(const uint16_t *h, size_t n);

#endif
