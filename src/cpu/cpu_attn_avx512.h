/* The AVX-512 (F, BW, VL, DQ; FMA, F16C) vocabulary of the attention kernel (cpu_attn_simd.h): 16
 * lanes. Included by cpu_attn_avx512.c and cpu_attn_avx512vnni.c (the same kernel with the K logits
 * of 2-, 4- and 8-bit codes as int16 dot products, AVX512_VNNI), each before cpu_attn_simd.h. */
#ifndef PKV_CPU_ATTN_AVX512_H
#define PKV_CPU_ATTN_AVX512_H
#include <immintrin.h>
#include <stdint.h>
#include "cpu_vec_avx512.h"
#include <string.h>

#define ACC_REGS 16
typedef __m512i VI;

static inline VF vf_zero(void) { return _mm512_setzero_ps(); }
static inline VF vf_max(VF a, VF b) { return _mm512_max_ps(a, b); }
static inline float vf_hsum(VF v) { return _mm512_reduce_add_ps(v); }
static inline float vf_hmax(VF v) { return _mm512_reduce_max_ps(v); }
static inline VI vi_set1(uint32_t x) { return _mm512_set1_epi32((int)x); }
static inline VI vi_loadu(const void *p) { return _mm512_loadu_si512(p); }
static inline void vi_storeu(void *p, VI v) { _mm512_storeu_si512(p, v); }
static inline VI vi_from_u8(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline VI vi_and(VI a, VI b) { return _mm512_and_si512(a, b); }
#define vi_srli(v, n) _mm512_srli_epi32((v), (unsigned)(n))
static inline VF vf_from_u(VI v) { return _mm512_cvtepu32_ps(v); }
/* dst[c * dstride + r] = src[r * stride + c] for 16 rows r and columns c < ncols (<= 16): a 16 x 16
 * transpose of 32-bit words in registers (rows read with a mask, never past column ncols). */
#define VI_TRANSPOSE 1
/* The 8 x 8 transposes of both halves (r[i] = row i | row i + 8 of 8 words each): t[c] = column c of
 * the 16 rows. */
static inline void vi_transpose_halves(__m512i *r, __m512i *t)
{
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) { /* r[4g + k], 128-bit lane j: column 4(j % 2) + k */
        r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_permutex2var_epi64(r[k], lo, r[4 + k]);
        t[4 + k] = _mm512_permutex2var_epi64(r[k], hi, r[4 + k]);
    }
}

/* t[c] = word c of 16 rows of 8 words at src (contiguous: rows 2j, 2j + 1 in one 64-byte load) */
#define VI_TRANSPOSE8 1
static inline void vi_transpose8(const uint32_t *src, __m512i *t)
{
    __m512i L[8], r[8];
    for (int j = 0; j < 8; j++) L[j] = _mm512_loadu_si512(src + 16 * j);
    for (int i = 0; i < 8; i += 2) {
        r[i] = _mm512_shuffle_i64x2(L[i / 2], L[4 + i / 2], 0x44);     /* row i | row i + 8 */
        r[i + 1] = _mm512_shuffle_i64x2(L[i / 2], L[4 + i / 2], 0xEE); /* row i + 1 | row i + 9 */
    }
    vi_transpose_halves(r, t);
}

static inline void vi_transpose(const uint32_t *src, size_t stride, uint32_t ncols, uint32_t *dst, size_t dstride)
{
    __m512i r[16], t[16];
    if (ncols <= 8) { /* rows i and i + 8 in the two halves of r[i]: an 8 x 8 transpose in each half */
        if (ncols == 8 && stride == 8) { /* rows 2j, 2j + 1 in one 64-byte load */
            vi_transpose8(src, t);
            for (uint32_t c = 0; c < 8; c++) _mm512_storeu_si512(dst + c * dstride, t[c]);
            return;
        } else {
            const __mmask8 m8 = (__mmask8)((1u << ncols) - 1u);
            for (int i = 0; i < 8; i++)
                r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_maskz_loadu_epi32(m8, src + (size_t)i * stride)),
                                          _mm256_maskz_loadu_epi32(m8, src + (size_t)(i + 8) * stride), 1);
        }
        vi_transpose_halves(r, t);
        for (uint32_t c = 0; c < ncols; c++) _mm512_storeu_si512(dst + c * dstride, t[c]);
        return;
    }
    const __mmask16 m = (__mmask16)((1u << ncols) - 1u);
    for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_epi32(m, src + (size_t)i * stride);
    for (int i = 0; i < 8; i++) { /* per 128-bit lane j: (a_4j, b_4j, a_4j+1, b_4j+1), (a_4j+2, ...) */
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* r[4g + k], lane j: column 4j + k of rows 4g .. 4g + 3 */
        r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int k = 0; k < 4; k++) { /* 4 x 4 transpose of the 128-bit lanes of r[k], r[4+k], r[8+k], r[12+k] */
        __m512i x0 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0x88), x1 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0xdd);
        __m512i y0 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0x88), y1 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0xdd);
        t[k] = _mm512_shuffle_i32x4(x0, y0, 0x88);      /* column k */
        t[4 + k] = _mm512_shuffle_i32x4(x1, y1, 0x88);  /* column 4 + k */
        t[8 + k] = _mm512_shuffle_i32x4(x0, y0, 0xdd);  /* column 8 + k */
        t[12 + k] = _mm512_shuffle_i32x4(x1, y1, 0xdd); /* column 12 + k */
    }
    for (uint32_t c = 0; c < ncols; c++) _mm512_storeu_si512(dst + c * dstride, t[c]);
}
/* lane l = t[idx[l]], idx < n: permutes for tables of up to 64 entries (t readable to t + 64) */
static inline VF vf_lookup(const float *t, uint32_t n, VI idx)
{
    if (n <= 16) return _mm512_permutexvar_ps(idx, _mm512_loadu_ps(t));
    if (n <= 32) return _mm512_permutex2var_ps(_mm512_loadu_ps(t), idx, _mm512_loadu_ps(t + 16));
    if (n <= 64) {
        VF lo = _mm512_permutex2var_ps(_mm512_loadu_ps(t), idx, _mm512_loadu_ps(t + 16));
        VF hi = _mm512_permutex2var_ps(_mm512_loadu_ps(t + 32), idx, _mm512_loadu_ps(t + 48));
        return _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), lo, hi);
    }
    return _mm512_i32gather_ps(idx, (const void *)t, 4);
}
static inline VF vf_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* 4 floats; the rows r0 .. r3 of 16 tokens as 16 groups of 4: token k's at U + 4 tok4_slot(k) (k % 4
 * picks the stored vector, k / 4 its 128-bit lane) */
typedef __m128 F4;
static inline F4 f4_load(const float *p) { return _mm_load_ps(p); }
static inline void f4_store(float *p, F4 v) { _mm_store_ps(p, v); }
static inline F4 f4_add(F4 a, F4 b) { return _mm_add_ps(a, b); }
static inline uint32_t tok4_slot(uint32_t k) { return (k % 4) * 4 + k / 4; }
static inline void vf_tok4(VF r0, VF r1, VF r2, VF r3, float *U)
{
    VF t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
    VF t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
    _mm512_store_ps(U, _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_store_ps(U + 16, _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))));
    _mm512_store_ps(U + 32, _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
    _mm512_store_ps(U + 48, _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))));
}

/* 2^x for x <= 64; 0 for x <= -127 (and -inf). Degree-7 polynomial on [-0.5, 0.5]: relative error
 * about 1e-7. */
static inline VF vf_exp2(VF x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
    VF n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    VF f = _mm512_sub_ps(x, n);
    VF p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381608e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    VF r = _mm512_scalef_ps(p, n);
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-127.0f), _CMP_GT_OQ), r);
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* Codes of channels [16v, 16v + 16) of a bit plane's token row, exact, in channel order: each lane's
 * field shifted to bit 0 indexes a table of 16 floats (vpermps reads only the low 4 bits of the index,
 * so the bits above the field need no mask): one shift and one permute, no convert. */
static inline VF v_codes(const uint8_t *row, int bits, uint32_t v)
{
    switch (bits) {
    case 1: {
        const VI sh = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                       _mm512_set1_epi32((int)(v & 1) * 16));
        VI x = _mm512_srlv_epi32(_mm512_set1_epi32((int)rd32(row + 4 * (v / 2))), sh);
        return _mm512_permutexvar_ps(x, _mm512_setr_ps(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1));
    }
    case 2: {
        const VI sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        VI x = _mm512_srlv_epi32(_mm512_set1_epi32((int)rd32(row + 4 * v)), sh);
        return _mm512_permutexvar_ps(x, _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3));
    }
    case 4: {
        const VI sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const VI sh = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        VI x = _mm512_permutexvar_epi32(sel, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(row + 8 * v))));
        x = _mm512_srlv_epi32(x, sh);
        return _mm512_permutexvar_ps(x, _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    }
    default:
        return _mm512_cvtepu32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + 16 * v))));
    }
}

/* The entries of an AVX-512 kernel table that do not depend on the attention file (the encoding
 * kernels of cpu_enc_avx512.c) and those that cpu_attn_simd.h defines in the includer. */
#define PKV_AVX512_TABLE_ENTRIES                                                                                       \
    .attn_unit = attn_unit_simd, .dot = dot_simd, .axpy = axpy_simd, .dots = dots_simd, .mix = mix_simd,               \
    .f16_to_f32 = pkv_cpu_f16_to_f32_avx512, .argmin_l2 = pkv_cpu_argmin_l2_avx512, .l2_top2 = pkv_cpu_l2_top2_avx512, \
    .dots_top2 = pkv_cpu_dots_top2_avx512, .sums = pkv_cpu_sums_avx512,                                                \
    .argmin_minmax = pkv_cpu_argmin_minmax_avx512, .block_encode = pkv_cpu_block_encode_avx512,                         \
    .centre = pkv_cpu_centre_avx512

#endif
