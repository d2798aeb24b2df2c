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
static inline VI vi_add(VI a, VI b) { return _mm512_add_epi32(a, b); }
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

/* 2- and 4-bit V codes for vpdpwssd, two tokens per lane. v_pairs interleaves the 16-bit halves of
 * the code words of token rows 2j and 2j + 1 (vpunpck[lh]wd: no cross-lane shuffle): a half of a word
 * of the first row, then the same half of the second row, as one 32-bit dword. v_pair_codes then
 * broadcasts the dwords of one channel vector from memory (a load, 64 bits for 2-bit codes, 128 for
 * 4-bit), shifts each 16-bit half by its lane's field offset (vpsrlvw) and ANDs the field: the first
 * row's code in the lane's low int16, the second's in its high one. Of these only vpsrlvw takes from
 * vpdpwssd's pipes on Zen 4, about 0.2 cycle each next to one vpdpwssd per cycle (vpmultishiftqb,
 * vpermd, vpternlogd and vprolvd, used before, about one cycle each). The lanes hold the vector's
 * channels in an order of their own (v_pair_codes), put back by v_unperm once per block. */

/* words of one pair in vp: rows of up to 8 words (256 bits each) or up to 16 */
static inline uint32_t vp_pair_words(uint32_t rw) { return rw <= 8 ? 16 : 32; }

/* the 64-bit slot of word w's two interleaved halves in its pair: vpunpck[lh]wd work per 128-bit
 * lane (4 words): words 4L, 4L + 1 in the low result, 4L + 2, 4L + 3 in the high one */
static inline uint32_t vp_slot(uint32_t rw, uint32_t w)
{
    return (w % 4 < 2 ? 0 : vp_pair_words(rw) / 4) + 2 * (w / 4) + w % 2;
}

/* out: npairs pairs of vp_pair_words(rw) words, rows 2j and 2j + 1 of codes (rw <= 16 words a row, read
 * with a mask: never past a row's rw words) */
static inline void v_pairs(const uint8_t *codes, uint32_t rw, uint32_t npairs, uint32_t *out)
{
    const uint32_t *p = (const uint32_t *)codes;
    if (rw <= 8) {
        const __mmask8 m = (__mmask8)((1u << rw) - 1u);
        for (uint32_t j = 0; j < npairs; j++, p += 2 * rw, out += 16) {
            __m256i a = rw == 8 ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi32(m, p);
            __m256i b = rw == 8 ? _mm256_loadu_si256((const __m256i *)(p + rw)) : _mm256_maskz_loadu_epi32(m, p + rw);
            _mm256_storeu_si256((__m256i *)out, _mm256_unpacklo_epi16(a, b));
            _mm256_storeu_si256((__m256i *)(out + 8), _mm256_unpackhi_epi16(a, b));
        }
        return;
    }
    const __mmask16 m = (__mmask16)((1u << rw) - 1u);
    for (uint32_t j = 0; j < npairs; j++, p += 2 * rw, out += 32) {
        __m512i a = _mm512_maskz_loadu_epi32(m, p), b = _mm512_maskz_loadu_epi32(m, p + rw);
        _mm512_storeu_si512(out, _mm512_unpacklo_epi16(a, b));
        _mm512_storeu_si512(out + 16, _mm512_unpackhi_epi16(a, b));
    }
}

/* Channel vector v (channels [16v, 16v + 16)) of a pair interleaved by v_pairs at pr: per lane, the
 * first row's code | the second's << 16, lanes in v_pair_lane's order. 2-bit: the two dwords of word
 * v (its low and high halves: channels 0-7 and 8-15), lane 2m + i = field m of half i (channel
 * 8i + m). 4-bit: the four dwords of words 2v and 2v + 1, lane 4p + j = field p of dword j (channel
 * 8 (j / 2) + 4 (j % 2) + p). */
static inline VI v_pair_codes(const uint32_t *pr, uint32_t rw, int B, uint32_t v)
{
    if (B == 2) {
        const VI sh = _mm512_setr_epi32(0, 0, 0x00020002, 0x00020002, 0x00040004, 0x00040004, 0x00060006, 0x00060006,
                                        0x00080008, 0x00080008, 0x000A000A, 0x000A000A, 0x000C000C, 0x000C000C,
                                        0x000E000E, 0x000E000E);
        long long x;
        memcpy(&x, pr + 2 * vp_slot(rw, v), 8);
        return _mm512_and_si512(_mm512_srlv_epi16(_mm512_set1_epi64(x), sh), _mm512_set1_epi32(0x00030003));
    }
    const VI sh = _mm512_setr_epi32(0, 0, 0, 0, 0x00040004, 0x00040004, 0x00040004, 0x00040004, 0x00080008, 0x00080008,
                                    0x00080008, 0x00080008, 0x000C000C, 0x000C000C, 0x000C000C, 0x000C000C);
    const VI x = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(pr + 2 * vp_slot(rw, 2 * v))));
    return _mm512_and_si512(_mm512_srlv_epi16(x, sh), _mm512_set1_epi32(0x000F000F));
}

/* v_pair_codes's lanes back in channel order (lane c = channel c) */
static inline VI v_unperm(VI a, int B)
{
    const VI i2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const VI i4 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(B == 2 ? i2 : i4, a);
}

#include "cpu_attn_simd.h"

const pkv_cpu_kernels pkv_cpu_kernels_avx512vnni = {
    .level = PKV_SIMD_AVX512VNNI,
    .name = "avx512vnni",
    PKV_AVX512_TABLE_ENTRIES,
};
