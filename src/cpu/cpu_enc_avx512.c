/* Bit-exact encoding kernels for AVX-512: 16 lanes (cpu_enc_simd.h). Compiled without contraction. */
#include <immintrin.h>
#include <stdint.h>
#include "cpu_vec_avx512.h"

typedef __mmask16 MK;

static inline VF vf_min(VF a, VF b) { return _mm512_min_ps(a, b); } /* a < b ? a : b */
static inline VF vf_max(VF a, VF b) { return _mm512_max_ps(a, b); } /* a > b ? a : b */
static inline VF vf_floor(VF a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
static inline VF vf_round(VF a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline VF vf_abs(VF a) { return _mm512_abs_ps(a); }
static inline VF vf_div(VF a, VF b) { return _mm512_div_ps(a, b); }
static inline float vf_hmin(VF v) { return _mm512_reduce_min_ps(v); }
static inline float vf_hmax(VF v) { return _mm512_reduce_max_ps(v); }
static inline MK mk_lt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline MK mk_ge(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline MK mk_ne(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
static inline MK mk_and(MK a, MK b) { return (MK)(a & b); }
static inline MK mk_or(MK a, MK b) { return (MK)(a | b); }
static inline int mk_any(MK m) { return m != 0; }
static inline VF vf_sel(MK m, VF a, VF b) { return _mm512_mask_blend_ps(m, b, a); }
static inline void vf_to_u8(VF v, uint8_t *out) { _mm_storeu_si128((__m128i *)out, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v))); }
static inline VF vf_f16_load(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
/* values already on the fp16 grid (or anything, saturating like pkv_f32_to_f16: clamp, then RNE) */
static inline void vf_f16_store(uint16_t *p, VF v)
{
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-65504.0f)), _mm512_set1_ps(65504.0f));
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* the first lane of v equal to x, W when none */
static inline uint32_t vf_first_eq(VF v, float x)
{
    unsigned m = _mm512_cmp_ps_mask(v, _mm512_set1_ps(x), _CMP_EQ_OQ);
    return m ? (uint32_t)__builtin_ctz(m) : 16u;
}
#define DOT_ACC 16 /* of 32 registers */
#include "cpu_enc_simd.h"

void pkv_cpu_f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) { enc_f16_to_f32(src, dst, n); }
void pkv_cpu_argmin_l2_avx512(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out)
{
    enc_argmin_l2(x, n, d, P, M, out);
}
void pkv_cpu_l2_top2_avx512(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2)
{
    enc_l2_top2(x, idx, n, d, P, M, best, d1, d2);
}
void pkv_cpu_dots_top2_avx512(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2)
{
    enc_dots_top2(x, idx, n, d, P, M, c2, best, h1, h2);
}
void pkv_cpu_sums_avx512(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s)
{
    enc_sums(x, a, t0, t1, d, sel, s);
}
void pkv_cpu_argmin_minmax_avx512(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    enc_argmin_minmax(x, n, d, P, M, out);
}
void pkv_cpu_block_encode_avx512(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                                 const uint8_t *va, const float *PK, const float *PV, uint8_t *blk)
{
    enc_block_encode(g, kx, vx, ka, va, PK, PV, blk);
}
void pkv_cpu_centre_avx512(const float *x, uint32_t n, uint32_t d, float *out) { enc_centre(x, n, d, out); }
