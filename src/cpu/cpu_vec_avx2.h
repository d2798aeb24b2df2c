/* The AVX2 vector primitives that the attention (contraction allowed) and the encoding kernels
 * (no contraction) share; each includer adds its own. */
#ifndef PKV_CPU_VEC_AVX2_H
#define PKV_CPU_VEC_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#define W 8
typedef __m256 VF;

static inline VF vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, VF v) { _mm256_storeu_ps(p, v); }
static inline VF vf_set1(float x) { return _mm256_set1_ps(x); }
static inline VF vf_add(VF a, VF b) { return _mm256_add_ps(a, b); }
static inline VF vf_sub(VF a, VF b) { return _mm256_sub_ps(a, b); }
static inline VF vf_mul(VF a, VF b) { return _mm256_mul_ps(a, b); }
/* a * b + c rounded once: attention, and the encoding kernels' bounds only (never a stored value) */
static inline VF vf_fma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }

#endif
