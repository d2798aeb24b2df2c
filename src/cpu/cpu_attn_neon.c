/* Attention kernel for ARM64 NEON (AdvSIMD, baseline on every ARM64 CPU): 4 lanes (cpu_attn_simd.h). */
#include <arm_neon.h>
#include <stdint.h>
#include "cpu_vec_neon.h"
#include <string.h>

#define ACC_REGS 16
typedef uint32x4_t VI;

static inline VF vf_zero(void) { return vdupq_n_f32(0.0f); }
static inline VF vf_max(VF a, VF b) { return vmaxq_f32(a, b); }
static inline float vf_hsum(VF v) { return vaddvq_f32(v); }
static inline float vf_hmax(VF v) { return vmaxvq_f32(v); }
static inline VI vi_set1(uint32_t x) { return vdupq_n_u32(x); }
static inline VI vi_loadu(const void *p) { return vld1q_u32((const uint32_t *)p); }
static inline void vi_storeu(void *p, VI v) { vst1q_u32((uint32_t *)p, v); }
static inline VI vi_from_u8(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(w)))));
}
/* 4 floats; the rows r0 .. r3 of 4 tokens as 4 groups of 4 (a 4 x 4 transpose): token k's at U + 4 k */
typedef float32x4_t F4;
static inline F4 f4_load(const float *p) { return vld1q_f32(p); }
static inline void f4_store(float *p, F4 v) { vst1q_f32(p, v); }
static inline F4 f4_add(F4 a, F4 b) { return vaddq_f32(a, b); }
static inline uint32_t tok4_slot(uint32_t k) { return k; }
static inline void vf_tok4(VF r0, VF r1, VF r2, VF r3, float *U)
{
    float64x2_t t0 = vreinterpretq_f64_f32(vzip1q_f32(r0, r1)), t1 = vreinterpretq_f64_f32(vzip2q_f32(r0, r1));
    float64x2_t t2 = vreinterpretq_f64_f32(vzip1q_f32(r2, r3)), t3 = vreinterpretq_f64_f32(vzip2q_f32(r2, r3));
    vst1q_f32(U, vreinterpretq_f32_f64(vzip1q_f64(t0, t2)));
    vst1q_f32(U + 4, vreinterpretq_f32_f64(vzip2q_f64(t0, t2)));
    vst1q_f32(U + 8, vreinterpretq_f32_f64(vzip1q_f64(t1, t3)));
    vst1q_f32(U + 12, vreinterpretq_f32_f64(vzip2q_f64(t1, t3)));
}
static inline VI vi_and(VI a, VI b) { return vandq_u32(a, b); }
static inline VI vi_srli(VI v, int n) { return vshlq_u32(v, vdupq_n_s32(-n)); }
static inline VF vf_from_u(VI v) { return vcvtq_f32_u32(v); }
static inline VI vi_gather_rows(const uint32_t *p, VI idx)
{
    uint32_t i[4], r[4];
    vst1q_u32(i, idx);
    for (int l = 0; l < 4; l++) r[l] = p[i[l]];
    return vld1q_u32(r);
}
static inline VF vf_lookup(const float *t, uint32_t n, VI idx)
{
    (void)n;
    uint32_t i[4];
    float r[4];
    vst1q_u32(i, idx);
    for (int l = 0; l < 4; l++) r[l] = t[i[l]];
    return vld1q_f32(r);
}
static inline VF vf_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

/* 2^x for x <= 64; 0 for x <= -127 (and -inf). */
static inline VF vf_exp2(VF x)
{
    const VF lo = vdupq_n_f32(-127.0f);
    uint32x4_t keep = vcgtq_f32(x, lo);
    x = vmaxq_f32(x, lo);
    VF n = vrndnq_f32(x);
    VF f = vsubq_f32(x, n);
    VF p = vdupq_n_f32(1.525273380405984e-05f);
    p = vfmaq_f32(vdupq_n_f32(1.5403530393381608e-04f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.3333558146428443e-03f), p, f);
    p = vfmaq_f32(vdupq_n_f32(9.618129107628477e-03f), p, f);
    p = vfmaq_f32(vdupq_n_f32(5.550410866482158e-02f), p, f);
    p = vfmaq_f32(vdupq_n_f32(2.402265069591007e-01f), p, f);
    p = vfmaq_f32(vdupq_n_f32(6.931471805599453e-01f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, f);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(vmaxq_f32(n, vdupq_n_f32(-126.0f))), vdupq_n_s32(127)), 23);
    VF r = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r), keep));
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* Codes of channels [4v, 4v + 4) of a bit plane's token row, exact, in channel order. */
static inline VF v_codes(const uint8_t *row, int bits, uint32_t v)
{
    static const int32_t base[4][4] = {{0, -1, -2, -3}, {0, -2, -4, -6}, {0, -4, -8, -12}, {0, -8, -16, -24}};
    const int bi = bits == 1 ? 0 : bits == 2 ? 1 : bits == 4 ? 2 : 3;
    const uint32_t per = 32u / (uint32_t)bits / 4u; /* vectors per word */
    const uint32_t word = v / per, off = (v % per) * 4u * (uint32_t)bits;
    int32x4_t sh = vsubq_s32(vld1q_s32(base[bi]), vdupq_n_s32((int32_t)off));
    VI x = vshlq_u32(vdupq_n_u32(rd32(row + 4 * word)), sh);
    return vcvtq_f32_u32(vandq_u32(x, vdupq_n_u32((1u << bits) - 1u)));
}

#include "cpu_attn_simd.h"

const pkv_cpu_kernels pkv_cpu_kernels_neon = {
    .level = PKV_SIMD_NEON,
    .name = "neon",
    .attn_unit = attn_unit_simd,
    .dot = dot_simd,
    .axpy = axpy_simd,
    .dots = dots_simd,
    .mix = mix_simd,
    .f16_to_f32 = pkv_cpu_f16_to_f32_neon,
    .argmin_l2 = pkv_cpu_argmin_l2_neon,
    .l2_top2 = pkv_cpu_l2_top2_neon,
    .dots_top2 = pkv_cpu_dots_top2_neon,
    .sums = pkv_cpu_sums_neon,
    .argmin_minmax = pkv_cpu_argmin_minmax_neon,
    .block_encode = pkv_cpu_block_encode_neon,
    .centre = pkv_cpu_centre_neon,
};
