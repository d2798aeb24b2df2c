/* The NEON vector primitives that the attention (contraction allowed) and the encoding kernels
 * (no contraction) share; each includer adds its own. */
#ifndef PKV_CPU_VEC_NEON_H
#define PKV_CPU_VEC_NEON_H

#include <arm_neon.h>
#include <stdint.h>

#define W 4
typedef float32x4_t VF;

static inline VF vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, VF v) { vst1q_f32(p, v); }
static inline VF vf_set1(float x) { return vdupq_n_f32(x); }
static inline VF vf_add(VF a, VF b) { return vaddq_f32(a, b); }
static inline VF vf_sub(VF a, VF b) { return vsubq_f32(a, b); }
static inline VF vf_mul(VF a, VF b) { return vmulq_f32(a, b); }
/* a * b + c rounded once: attention, and the encoding kernels' bounds only (never a stored value) */
static inline VF vf_fma(VF a, VF b, VF c) { return vfmaq_f32(c, a, b); }

#endif
