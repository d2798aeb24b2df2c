/* Attention kernel for AVX2 with FMA and F16C: 8 lanes (cpu_attn_simd.h). */
#include <immintrin.h>
#include <stdint.h>
#include "cpu_vec_avx2.h"
#include <string.h>

#define ACC_REGS 8
typedef __m256i VI;

static inline VF vf_zero(void) { return _mm256_setzero_ps(); }
static inline VF vf_max(VF a, VF b) { return _mm256_max_ps(a, b); }
static inline float vf_hsum(VF v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float vf_hmax(VF v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline VI vi_set1(uint32_t x) { return _mm256_set1_epi32((int)x); }
static inline VI vi_loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void vi_storeu(void *p, VI v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline VI vi_from_u8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
/* 4 floats; the rows r0 .. r3 of 8 tokens as 8 groups of 4: token k's at U + 4 tok4_slot(k) */
typedef __m128 F4;
static inline F4 f4_load(const float *p) { return _mm_load_ps(p); }
static inline void f4_store(float *p, F4 v) { _mm_store_ps(p, v); }
static inline F4 f4_add(F4 a, F4 b) { return _mm_add_ps(a, b); }
static inline uint32_t tok4_slot(uint32_t k) { return (k % 4) * 2 + k / 4; }
static inline void vf_tok4(VF r0, VF r1, VF r2, VF r3, float *U)
{
    VF t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    VF t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    _mm256_store_ps(U, _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))));
    _mm256_store_ps(U + 8, _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))));
    _mm256_store_ps(U + 16, _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))));
    _mm256_store_ps(U + 24, _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))));
}
static inline VI vi_and(VI a, VI b) { return _mm256_and_si256(a, b); }
#define vi_srli(v, n) _mm256_srli_epi32((v), (int)(n))
/* exact for values < 2^31 (the kernel never converts more) */
static inline VF vf_from_u(VI v) { return _mm256_cvtepi32_ps(v); }
/* dst[c * dstride + r] = src[r * stride + c] for 8 rows r and columns c < ncols (<= 8): an 8 x 8
 * transpose of 32-bit words in registers (rows read with a mask, never past column ncols). */
#define VI_TRANSPOSE 1
static inline void vi_transpose(const uint32_t *src, size_t stride, uint32_t ncols, uint32_t *dst, size_t dstride)
{
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)ncols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_maskload_epi32((const int *)(src + (size_t)i * stride), m);
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) { /* r[4g + k], lane j: column 4j + k of rows 4g .. 4g + 3 */
        r[4 * g] = _mm256_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 1] = _mm256_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 2] = _mm256_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        r[4 * g + 3] = _mm256_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm256_permute2x128_si256(r[k], r[4 + k], 0x20);     /* column k */
        t[4 + k] = _mm256_permute2x128_si256(r[k], r[4 + k], 0x31); /* column 4 + k */
    }
    for (uint32_t c = 0; c < ncols; c++) _mm256_storeu_si256((__m256i *)(dst + c * dstride), t[c]);
}
static inline VF vf_lookup(const float *t, uint32_t n, VI idx)
{
    if (n <= 8) return _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), idx);
    return _mm256_i32gather_ps(t, idx, 4);
}
static inline VF vf_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* 2^x for x <= 64; 0 for x <= -127 (and -inf). */
static inline VF vf_exp2(VF x)
{
    const VF lo = _mm256_set1_ps(-127.0f);
    VF keep = _mm256_cmp_ps(x, lo, _CMP_GT_OQ);
    x = _mm256_max_ps(x, lo);
    VF n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    VF f = _mm256_sub_ps(x, n);
    VF p = _mm256_set1_ps(1.525273380405984e-05f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381608e-04f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618129107628477e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550410866482158e-02f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402265069591007e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471805599453e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    /* 2^n for n in [-126, 64]; n = -127 only with keep = 0 */
    VI e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(_mm256_max_ps(n, _mm256_set1_ps(-126.0f))),
                                              _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* Codes of channels [8v, 8v + 8) of a bit plane's token row, exact, in channel order. 1- and 2-bit
 * fields: each lane's field shifted to bit 0 indexes a table of 8 floats (vpermps reads only the low
 * 3 bits of the index, so the bits above the field need no mask): one shift and one permute. */
static inline VF v_codes(const uint8_t *row, int bits, uint32_t v)
{
    switch (bits) {
    case 1: {
        VI sh = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)(v & 3) * 8));
        VI x = _mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(row + 4 * (v / 4))), sh);
        return _mm256_permutevar8x32_ps(_mm256_setr_ps(0, 1, 0, 1, 0, 1, 0, 1), x); /* low 3 bits index */
    }
    case 2: {
        VI sh = _mm256_add_epi32(_mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), _mm256_set1_epi32((int)(v & 1) * 16));
        VI x = _mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(row + 4 * (v / 2))), sh);
        return _mm256_permutevar8x32_ps(_mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3), x);
    }
    case 4: {
        const VI sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
        VI x = _mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(row + 4 * v)), sh);
        return _mm256_cvtepi32_ps(_mm256_and_si256(x, _mm256_set1_epi32(15)));
    }
    default:
        return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + 8 * v))));
    }
}

#include "cpu_attn_simd.h"

const pkv_cpu_kernels pkv_cpu_kernels_avx2 = {
    .level = PKV_SIMD_AVX2,
    .name = "avx2",
    .attn_unit = attn_unit_simd,
    .dot = dot_simd,
    .axpy = axpy_simd,
    .dots = dots_simd,
    .mix = mix_simd,
    .f16_to_f32 = pkv_cpu_f16_to_f32_avx2,
    .argmin_l2 = pkv_cpu_argmin_l2_avx2,
    .l2_top2 = pkv_cpu_l2_top2_avx2,
    .dots_top2 = pkv_cpu_dots_top2_avx2,
    .sums = pkv_cpu_sums_avx2,
    .argmin_minmax = pkv_cpu_argmin_minmax_avx2,
    .block_encode = pkv_cpu_block_encode_avx2,
    .centre = pkv_cpu_centre_avx2,
};
