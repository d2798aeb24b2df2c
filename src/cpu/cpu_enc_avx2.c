/* Bit-exact encoding kernels for AVX2 with F16C: 8 lanes (cpu_enc_simd.h). Compiled without
 * contraction. */
#include <immintrin.h>
#include <stdint.h>
#include "cpu_vec_avx2.h"

typedef __m256 MK;

static inline VF vf_min(VF a, VF b) { return _mm256_min_ps(a, b); } /* a < b ? a : b */
static inline VF vf_max(VF a, VF b) { return _mm256_max_ps(a, b); } /* a > b ? a : b */
static inline VF vf_floor(VF a) { return _mm256_floor_ps(a); }
static inline VF vf_round(VF a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline VF vf_abs(VF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline VF vf_div(VF a, VF b) { return _mm256_div_ps(a, b); }
static inline float vf_hmin(VF v)
{
    __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    s = _mm_min_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float vf_hmax(VF v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline MK mk_lt(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline MK mk_ge(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline MK mk_ne(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
static inline MK mk_and(MK a, MK b) { return _mm256_and_ps(a, b); }
static inline MK mk_or(MK a, MK b) { return _mm256_or_ps(a, b); }
static inline int mk_any(MK m) { return _mm256_movemask_ps(m) != 0; }
static inline VF vf_sel(MK m, VF a, VF b) { return _mm256_blendv_ps(b, a, m); }
static inline void vf_to_u8(VF v, uint8_t *out)
{
    __m256i i = _mm256_cvttps_epi32(v);
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(w, w));
}
static inline VF vf_f16_load(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline void vf_f16_store(uint16_t *p, VF v)
{
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-65504.0f)), _mm256_set1_ps(65504.0f));
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* the first lane of v equal to x, W when none */
static inline uint32_t vf_first_eq(VF v, float x)
{
    int m = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(x), _CMP_EQ_OQ));
    return m ? (uint32_t)__builtin_ctz((unsigned)m) : 8u;
}
#include "cpu_enc_simd.h"

void pkv_cpu_f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) { enc_f16_to_f32(src, dst, n); }
void pkv_cpu_argmin_l2_avx2(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out)
{
    enc_argmin_l2(x, n, d, P, M, out);
}
void pkv_cpu_l2_top2_avx2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2)
{
    enc_l2_top2(x, idx, n, d, P, M, best, d1, d2);
}
void pkv_cpu_dots_top2_avx2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2)
{
    enc_dots_top2(x, idx, n, d, P, M, c2, best, h1, h2);
}
void pkv_cpu_sums_avx2(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s)
{
    enc_sums(x, a, t0, t1, d, sel, s);
}
void pkv_cpu_argmin_minmax_avx2(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    enc_argmin_minmax(x, n, d, P, M, out);
}
void pkv_cpu_block_encode_avx2(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                               const uint8_t *va, const float *PK, const float *PV, uint8_t *blk)
{
    enc_block_encode(g, kx, vx, ka, va, PK, PV, blk);
}
void pkv_cpu_centre_avx2(const float *x, uint32_t n, uint32_t d, float *out) { enc_centre(x, n, d, out); }
