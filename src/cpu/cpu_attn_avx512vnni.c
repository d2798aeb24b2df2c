/* Attention kernel for AVX-512 with AVX512_VNNI: the AVX-512 kernel (cpu_attn_avx512.h,
 * cpu_attn_simd.h) with the K logits of 2-, 4- and 8-bit codes as int16 dot products (vpdpwssd: two
 * channels' codes of a token against q_i s_i rounded to int16 per row and block; docs/NUMERICS.md). */
#include "cpu_attn_avx512.h"

/* acc + a.lo * b.lo + a.hi * b.hi per 32-bit lane (int16 halves) */
#define PKV_VNNI 1
static inline VI vi_dpwssd(VI acc, VI a, VI b)
{
#if defined(__GNUC__) && !defined(__clang__)
    /* GCC 12 copies the accumulator to a fresh register and back around the builtin (and spills
     * them): the instruction in place, tied to the accumulator */
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
#else
    return _mm512_dpwssd_epi32(acc, a, b);
#endif
}
static inline VF vf_from_i(VI v) { return _mm512_cvtepi32_ps(v); }
static inline VF vf_abs(VF v) { return _mm512_abs_ps(v); }

/* The vpermw index of kq_pack for B-bit codes (2, 4, 8): int16 lane 2m, 2m + 1 = channels k and k + half
 * of word m / half (half = 16 / B, k = m % half) within 32 channels. Built once per unit. */
static inline VI kq_index(int B)
{
    const int half = 16 / B, cpd = 32 / B;
    int16_t ix[32];
    for (int m = 0; m < 16; m++) ix[2 * m] = (int16_t)(m / half * cpd + m % half), ix[2 * m + 1] = (int16_t)(ix[2 * m] + half);
    return _mm512_loadu_si512(ix);
}

/* kq[pair] = the int16 pair (c_k, c_k+half) of a code word's fields k and k + half (half = 16 / B),
 * words in order, from the coefficients c[0 .. dp) (dp a multiple of 16, zero past d) rounded to
 * nearest after scaling by inv: 32 channels at a time, one vpermw per 32 (B = 2, 4, 8 divide 32) with
 * the index idx = kq_index(B). */
static inline void kq_pack(const float *c, uint32_t dp, float inv, VI idx, int32_t *kq)
{
    int16_t c16[256 + 32];
    uint32_t i = 0;
    for (; i < dp; i += 16)
        _mm256_storeu_si256((__m256i *)(c16 + i), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(c + i), _mm512_set1_ps(inv)))));
    for (; i % 32; i++) c16[i] = 0;
    for (uint32_t j = 0; j < i; j += 32) _mm512_storeu_si512(kq + j / 2, _mm512_permutexvar_epi16(idx, _mm512_loadu_si512(c16 + j)));
}

/* wq[j] = the int16 pair (w_2j, w_2j+1) of w[0 .. n) (n a multiple of 16) scaled by inv, rounded */
static inline void wq_pack(const float *w, uint32_t n, float inv, int32_t *wq)
{
    for (uint32_t t = 0; t < n; t += 16)
        _mm256_storeu_si256((__m256i *)((int16_t *)wq + t),
                            _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(w + t), _mm512_set1_ps(inv)))));
}

/* Channels [16v, 16v + 16) of two token rows (row0, row1) of a V plane of B = 2 or 4 bits: lane c
 * holds row0's code as its low int16 and row1's as its high one. Row0's field shifted down to bit 0,
 * row1's rotated to bit 16, one select and one AND. */
static inline VI v_pair_codes(const uint8_t *row0, const uint8_t *row1, int B, uint32_t v)
{
    VI a, b, sh, rot, mask;
    if (B == 2) {
        sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        rot = _mm512_setr_epi32(16, 14, 12, 10, 8, 6, 4, 2, 0, 30, 28, 26, 24, 22, 20, 18);
        a = _mm512_set1_epi32((int)rd32(row0 + 4 * v));
        b = _mm512_set1_epi32((int)rd32(row1 + 4 * v));
        mask = _mm512_set1_epi32(0x00030003);
    } else {
        const VI sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        sh = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        rot = _mm512_setr_epi32(16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20);
        a = _mm512_permutexvar_epi32(sel, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(row0 + 8 * v))));
        b = _mm512_permutexvar_epi32(sel, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(row1 + 8 * v))));
        mask = _mm512_set1_epi32(0x000F000F);
    }
    a = _mm512_srlv_epi32(a, sh);
    b = _mm512_rolv_epi32(b, rot);
    /* low halves from a, high halves from b (0xD8: C ? B : A, C = 0xFFFF0000) */
    VI x = _mm512_ternarylogic_epi32(a, b, _mm512_set1_epi32((int)0xFFFF0000u), 0xD8);
    return _mm512_and_si512(x, mask);
}

/* out[j][2w], out[j][2w + 1] = word w of rows 2j and 2j + 1 (rw <= 16 words a row), j < npairs */
static inline void v_pairs(const uint8_t *codes, uint32_t rw, uint32_t npairs, uint32_t *out)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __mmask16 m = (__mmask16)((1u << rw) - 1u);
    const uint32_t *p = (const uint32_t *)codes;
    if (rw == 8) { /* head_dim 128: both rows in one 64-byte load */
        const __m512i lo8 = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        for (uint32_t j = 0; j < npairs; j++, p += 16, out += 16)
            _mm512_storeu_si512(out, _mm512_permutexvar_epi32(lo8, _mm512_loadu_si512(p)));
        return;
    }
    for (uint32_t j = 0; j < npairs; j++, p += 2 * rw, out += 2 * rw) {
        __m512i a = _mm512_maskz_loadu_epi32(m, p), b = _mm512_maskz_loadu_epi32(m, p + rw);
        _mm512_storeu_si512(out, _mm512_permutex2var_epi32(a, lo, b));
        if (rw > 8) _mm512_storeu_si512(out + 16, _mm512_permutex2var_epi32(a, hi, b));
    }
}

/* Channels [16v, 16v + 16) of a pair of 2-bit token rows interleaved by v_pairs (the words of both
 * rows at pr + 2v): lane c = code of the first row | code of the second << 16. One broadcast, one
 * vpmultishiftqb (each qword lane picks the four bytes of its two channels at their bit offsets: 2c in
 * the first word, 32 + 2c in the second) and one AND. */
static inline VI v_pair_codes2(const uint32_t *pr, uint32_t v)
{
    uint64_t x;
    memcpy(&x, pr + 2 * v, 8);
    /* qword lane q (channels 2q, 2q + 1): bytes 0, 2, 4, 6 from bits 4q, 32 + 4q, 4q + 2, 34 + 4q (the
     * other bytes are cleared by the AND) */
#define CTL(q) (0x0022000200200000ll + (long long)(4 * (q)) * 0x0001000100010001ll)
    const __m512i ctl = _mm512_setr_epi64(CTL(0), CTL(1), CTL(2), CTL(3), CTL(4), CTL(5), CTL(6), CTL(7));
#undef CTL
    VI y = _mm512_multishift_epi64_epi8(ctl, _mm512_set1_epi64((long long)x));
    return _mm512_and_si512(y, _mm512_set1_epi32(0x00030003));
}

#include "cpu_attn_simd.h"

const pkv_cpu_kernels pkv_cpu_kernels_avx512vnni = {
    .level = PKV_SIMD_AVX512VNNI,
    .name = "avx512vnni",
    PKV_AVX512_TABLE_ENTRIES,
};
