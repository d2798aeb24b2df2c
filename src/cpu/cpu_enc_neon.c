/* Bit-exact encoding kernels for ARM64 NEON: 4 lanes (cpu_enc_simd.h). Compiled without contraction.
 * NEON's FMIN/FMAX order -0 below +0, unlike the scalar steps `v < acc ? v : acc`, so min and max
 * are compare-and-select here. */
#include <arm_neon.h>
#include <stdint.h>
#include "cpu_vec_neon.h"

typedef uint32x4_t MK;

static inline VF vf_min(VF a, VF b) { return vbslq_f32(vcltq_f32(a, b), a, b); } /* a < b ? a : b */
static inline VF vf_max(VF a, VF b) { return vbslq_f32(vcgtq_f32(a, b), a, b); } /* a > b ? a : b */
static inline VF vf_floor(VF a) { return vrndmq_f32(a); }
static inline VF vf_round(VF a) { return vrndnq_f32(a); }
static inline VF vf_abs(VF a) { return vabsq_f32(a); }
static inline VF vf_div(VF a, VF b) { return vdivq_f32(a, b); }
static inline float vf_hmin(VF v) { return vminvq_f32(v); } /* a zero result is folded again in order */
static inline float vf_hmax(VF v) { return vmaxvq_f32(v); }
static inline MK mk_lt(VF a, VF b) { return vcltq_f32(a, b); }
static inline MK mk_ge(VF a, VF b) { return vcgeq_f32(a, b); }
static inline MK mk_ne(VF a, VF b) { return vmvnq_u32(vceqq_f32(a, b)); }
static inline MK mk_and(MK a, MK b) { return vandq_u32(a, b); }
static inline MK mk_or(MK a, MK b) { return vorrq_u32(a, b); }
static inline int mk_any(MK m) { return vmaxvq_u32(m) != 0; }
static inline VF vf_sel(MK m, VF a, VF b) { return vbslq_f32(m, a, b); }
static inline void vf_to_u8(VF v, uint8_t *out)
{
    uint32_t c[4];
    vst1q_u32(c, vcvtq_u32_f32(v));
    for (int l = 0; l < 4; l++) out[l] = (uint8_t)c[l];
}
static inline VF vf_f16_load(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline void vf_f16_store(uint16_t *p, VF v)
{
    v = vminq_f32(vmaxq_f32(v, vdupq_n_f32(-65504.0f)), vdupq_n_f32(65504.0f));
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v)));
}

/* the first lane of v equal to x, W when none */
static inline uint32_t vf_first_eq(VF v, float x)
{
    float t[4];
    vst1q_f32(t, v);
    uint32_t l = 0;
    while (l < 4 && !(t[l] == x)) l++;
    return l;
}
#include "cpu_enc_simd.h"

void pkv_cpu_f16_to_f32_neon(const uint16_t *src, float *dst, size_t n) { enc_f16_to_f32(src, dst, n); }
void pkv_cpu_argmin_l2_neon(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out)
{
    enc_argmin_l2(x, n, d, P, M, out);
}
void pkv_cpu_l2_top2_neon(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2)
{
    enc_l2_top2(x, idx, n, d, P, M, best, d1, d2);
}
void pkv_cpu_dots_top2_neon(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2)
{
    enc_dots_top2(x, idx, n, d, P, M, c2, best, h1, h2);
}
void pkv_cpu_sums_neon(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s)
{
    enc_sums(x, a, t0, t1, d, sel, s);
}
void pkv_cpu_argmin_minmax_neon(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    enc_argmin_minmax(x, n, d, P, M, out);
}
void pkv_cpu_block_encode_neon(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                               const uint8_t *va, const float *PK, const float *PV, uint8_t *blk)
{
    enc_block_encode(g, kx, vx, ka, va, PK, PV, blk);
}
void pkv_cpu_centre_neon(const float *x, uint32_t n, uint32_t d, float *out) { enc_centre(x, n, d, out); }
