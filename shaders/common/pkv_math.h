/* The encoding formulas of docs/NUMERICS.md, written once for all three languages that run them:
 * the Vulkan shaders (GLSL), the OpenCL kernels (OpenCL C) and the C core (src/core, the CPU
 * reference). The body is the common subset of the three; the few differences are the macros of
 * the prelude below. Everything here must give the same bits everywhere: no division or sqrt, no
 * fused multiply-add (PKV_PRECISE in GLSL, FP_CONTRACT OFF in OpenCL C, -ffp-contract=off in C),
 * a fixed order of operations. */
#ifndef PKV_MATH_H
#define PKV_MATH_H

/* ---- prelude: one vocabulary (uint, bool, bit casts) for GLSL, OpenCL C and C ------------------ */
#if defined(__OPENCL_VERSION__) || defined(__OPENCL_C_VERSION__)
#pragma OPENCL FP_CONTRACT OFF
#define PKV_INLINE static inline
/* A compiler that fuses a*b+c despite FP_CONTRACT OFF (probed at start-up by the OpenCL backend)
 * gets the products forced through memory. */
#ifdef PKV_OCL_NO_CONTRACT
#define PKV_PRECISE volatile
#else
#define PKV_PRECISE
#endif
#define PKV_F2B(x) as_uint(x)
#define PKV_B2F(x) as_float(x)
#define PKV_U2F(x) ((float)(x))
#define PKV_F2U(x) ((uint)(x))

#elif defined(__STDC__) || defined(__cplusplus) /* C: the core, built with -ffp-contract=off */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#define PKV_LANG_C 1
#define PKV_INLINE static inline
#define PKV_PRECISE
static inline uint32_t pkv_float_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float pkv_bits_float(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
#define PKV_F2B(x) pkv_float_bits(x)
#define PKV_B2F(x) pkv_bits_float(x)
#define PKV_U2F(x) ((float)(x))
#define PKV_F2U(x) ((uint32_t)(x))
/* The body says `uint` as GLSL and OpenCL C do; in C that is uint32_t, for this header only
 * (undefined again at its end). */
#define uint uint32_t

#else /* GLSL */
#define PKV_LANG_GLSL 1
#define PKV_INLINE
#define PKV_PRECISE precise
#define PKV_F2B(x) floatBitsToUint(x)
#define PKV_B2F(x) uintBitsToFloat(x)
#define PKV_U2F(x) float(x)
#define PKV_F2U(x) uint(x)
#endif

#define PKV_NEG_INF PKV_B2F(0xff800000u)

/* ---- fp16 ------------------------------------------------------------------------------------------ */

/* fp32 -> fp16 bits, round to nearest even, saturating to +-65504 (never Inf). */
PKV_INLINE uint pkv_f32_to_f16(float f)
{
    uint bits = PKV_F2B(f);
    uint sign = (bits >> 16) & 0x8000u;
    uint a = bits & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;   /* NaN (never produced by valid input) */
    if (a >= 0x477ff000u) return sign | 0x7bffu;  /* >= 65520 rounds past 65504: saturate */
    if (a < 0x38800000u) {                        /* below 2^-14: fp16 subnormal or zero */
        uint e = a >> 23;
        if (e < 102u) return sign;                /* below 2^-25: rounds to zero */
        uint mant = (a & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e;                    /* 14 .. 24 */
        uint q = mant >> shift;
        uint rem = mant & ((1u << shift) - 1u);
        uint half_ulp = 1u << (shift - 1u);
        if (rem > half_ulp || (rem == half_ulp && (q & 1u) != 0u)) q += 1u;
        return sign | q;
    }
    uint h = (a - 0x38000000u) >> 13;             /* rebias the exponent, keep 10 mantissa bits */
    uint rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) h += 1u;
    return sign | h;
}

/* fp16 bits -> fp32, exact (subnormals built by an exact multiply, never flushed). */
PKV_INLINE float pkv_f16_to_f32(uint h)
{
    uint sign = (h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1fu;
    uint m = h & 0x3ffu;
    if (e == 0u) {
        float v = PKV_U2F(m) * 5.9604644775390625e-8f; /* m * 2^-24 */
        return sign != 0u ? -v : v;
    }
    if (e == 31u) return PKV_B2F(sign | 0x7f800000u | (m << 13));
    return PKV_B2F(sign | ((e + 112u) << 23) | (m << 13));
}

/* ---- comparisons and ranges ------------------------------------------------------------------------ */

/* a < b exactly as C compares finite floats (-0 == +0). The GPU languages compute it on integer
 * keys, so that no compiler can turn a select on it into a hardware min/max with another
 * signed-zero rule; in C it is the comparison itself. */
#ifdef PKV_LANG_C
PKV_INLINE bool pkv_less(float a, float b) { return a < b; }
#else
PKV_INLINE bool pkv_less(float a, float b)
{
    uint ua = PKV_F2B(a), ub = PKV_F2B(b);
    if (((ua | ub) & 0x7fffffffu) == 0u) return false; /* +0 and -0 are equal */
    uint ka = (ua & 0x80000000u) != 0u ? ~ua : (ua | 0x80000000u); /* order-preserving keys */
    uint kb = (ub & 0x80000000u) != 0u ? ~ub : (ub | 0x80000000u);
    return ka < kb;
}
#endif

/* Running max / min steps: `if (v > mx) mx = v` (ties keep the current value, so the first of
 * equal values, e.g. of -0 and +0, stays). */
PKV_INLINE float pkv_max_step(float acc, float v) { return pkv_less(acc, v) ? v : acc; }
PKV_INLINE float pkv_min_step(float acc, float v) { return pkv_less(v, acc) ? v : acc; }

/* The smallest and largest of a run of values, folded in order: pkv_span_of(x_0), then
 * pkv_span_add for x_1, x_2, ... Every range of the algorithm is one: the quantizer's (min, max),
 * the Chebyshev centre's, and the min-max distance, the width of the residual's span. */
struct pkv_span {
    float lo;
    float hi;
};
#ifndef PKV_LANG_GLSL /* GLSL names the type by its struct tag already */
typedef struct pkv_span pkv_span;
#endif

PKV_INLINE pkv_span pkv_span_of(float v)
{
    pkv_span s;
    s.lo = v;
    s.hi = v;
    return s;
}

PKV_INLINE pkv_span pkv_span_add(pkv_span s, float v)
{
    s.lo = pkv_min_step(s.lo, v);
    s.hi = pkv_max_step(s.hi, v);
    return s;
}

/* max - min: the range R(x) of SPEC.md, and the min-max distance when the values are x - c. */
PKV_INLINE float pkv_span_width(pkv_span s)
{
    PKV_PRECISE float w = s.hi - s.lo;
    return w;
}

/* Chebyshev centre of one channel from its span: (max + min) / 2. */
PKV_INLINE float pkv_centre(float mn, float mx)
{
    PKV_PRECISE float s = mx + mn;
    PKV_PRECISE float c = s * 0.5f;
    return c;
}

/* ---- k-means sums ---------------------------------------------------------------------------------- */

/* The centroid update sums tokens in chunks of PKV_KMEANS_CHUNK consecutive tokens (sequentially
 * inside a chunk, from +0), then the chunk sums pairwise, level by level: at each level element j
 * becomes v[2j] + v[2j+1], and an odd last element moves up unchanged (docs/NUMERICS.md). Every
 * backend sums in exactly this order, in parallel over chunks. */
#define PKV_KMEANS_CHUNK 512u

/* ---- k-means sample -------------------------------------------------------------------------------- */

/* k-means runs over S of the n tokens of a mine (pkv_cache_config.kmeans_sample; S = n when that is 0
 * or n <= it): sample j is token floor(j n / S), written without 64-bit products as j q + (j r) / S
 * with q = n / S, r = n % S (integer division; j r < S^2 <= 65535^2 < 2^32). S = n gives j. */
#define PKV_KMEANS_SAMPLE_DEFAULT 2048u
#define PKV_KMEANS_SAMPLE_MAX 65535u
PKV_INLINE uint pkv_sample_count(uint n, uint cap) { return (cap == 0u || n <= cap) ? n : cap; }
PKV_INLINE uint pkv_sample_token(uint j, uint n, uint s)
{
    uint q = n / s, r = n % s;
    return j * q + (j * r) / s;
}

/* ---- distances ------------------------------------------------------------------------------------- */

/* One step of an L2 distance: acc + (x - c)^2, never fused. Also k-means' centroid shift. */
PKV_INLINE float pkv_l2_step(float acc, float x, float c)
{
    PKV_PRECISE float diff = x - c;
    PKV_PRECISE float sq = diff * diff;
    PKV_PRECISE float r = acc + sq;
    return r;
}

/* ---- the quantizer ------------------------------------------------------------------------------- */

#ifdef PKV_LANG_C
/* 1 / (2^b - 1) as a correctly rounded fp32 division, made on the host (devices never divide) and
 * passed to the kernels with the cache's geometry. */
PKV_INLINE float pkv_inv_maxq(uint b) { return 1.0f / PKV_U2F((1u << b) - 1u); }
#endif

/* Steps 1-2, from the span of the values: the fp16 scale and zero. */
PKV_INLINE uint pkv_scale_f16(float mn, float mx, float inv_maxq)
{
    PKV_PRECISE float range = mx - mn;
    PKV_PRECISE float s = range * inv_maxq;
    return pkv_f32_to_f16(s);
}
PKV_INLINE uint pkv_zero_f16(float mn) { return pkv_f32_to_f16(mn); }

/* Step 4: code = #{k >= 1 : t >= (k - 0.5) s}, clamped to maxq, with s and z the fp16 scale and
 * zero read back as floats, computed in float (its exact value; no float-integer conversions, which
 * run at a quarter of the fp32 rate on GPUs). The estimate round(t rs) (rs: 1 / s to within a few
 * ulp, which a caller quantizing many values with one s computes once: pkv_quant_code_r), clamped
 * to 0 .. maxq, is within one of the code, so one step up and one down make it exact, since
 * (k - 0.5) * s is exact in fp32. The rounding adds and subtracts 1.5 * 2^23 (exact for |t rs| < 2^22;
 * beyond it the clamp gives 0 or maxq, which is then the code). */
PKV_INLINE float pkv_quant_codef_r(float x, float z, float s, float rs, uint maxq)
{
    if (s == 0.0f) return 0.0f;
    const float mq = PKV_U2F(maxq);
    PKV_PRECISE float t = x - z;
    PKV_PRECISE float m = t * rs + 12582912.0f;
    PKV_PRECISE float e = m - 12582912.0f;
    float c = e > 0.0f ? (e < mq ? e : mq) : 0.0f;
    PKV_PRECISE float up = (c + 0.5f) * s;
    if (c < mq && t >= up) c += 1.0f;
    PKV_PRECISE float down = (c - 0.5f) * s;
    if (c > 0.0f && t < down) c -= 1.0f;
    return c;
}
PKV_INLINE uint pkv_quant_code_r(float x, float z, float s, float rs, uint maxq)
{
    return PKV_F2U(pkv_quant_codef_r(x, z, s, rs, maxq));
}
PKV_INLINE uint pkv_quant_code(float x, float z, float s, uint maxq) { return pkv_quant_code_r(x, z, s, 1.0f / s, maxq); }

/* The MSE quantizer's range search (pkv_quantizer MSE, MSE_K, MSE_V; docs/NUMERICS.md "Quantizer range
 * search"). Grid candidate k = 8 i + j (i, j in 0 .. PKV_MSE_CLIP_STEPS) of a run of values with span s
 * is the clipped range [lo + i w/16, hi - j w/16], w = hi - lo; candidate 0 is min-max's. The search
 * visits PKV_MSE_VISITS of them in two stages: the PKV_MSE_COARSE candidates pkv_mse_coarse(0 ..),
 * min-max's first, then the PKV_MSE_FINE grid neighbours pkv_mse_fine(kb, 0 ..) of the coarse stage's
 * best kb. It keeps the first visited candidate of least squared error, the error of each being the
 * fp32 sum, in the values' order from +0, of pkv_quant_err_step. Every backend visits the same
 * candidates in the same order; none of its shortcuts changes the answer: a candidate whose pair
 * equals the best's is skipped (a neighbour clamped onto an earlier candidate is one), a sum stops
 * once it reaches the best error, the search stops once the best error is 0. */
#define PKV_MSE_CLIP_STEPS 7u
#define PKV_MSE_COARSE 9u
#define PKV_MSE_FINE 8u
#define PKV_MSE_VISITS 17u

/* Coarse candidate q (0 .. 8): min-max's (k = 0), then (i, j) in {1, 3, 5}^2 row by row without (5, 5). */
PKV_INLINE uint pkv_mse_coarse(uint q)
{
    if (q == 0u) return 0u;
    uint i = 1u + 2u * ((q - 1u) / 3u), j = 1u + 2u * ((q - 1u) % 3u);
    return 8u * i + j;
}

/* Fine candidate n (0 .. 7) around grid candidate kb = 8 i + j: (i + di, j + dj), di and dj in -1 .. 1
 * row by row without (0, 0), each coordinate clamped to 0 .. PKV_MSE_CLIP_STEPS. */
PKV_INLINE uint pkv_mse_fine(uint kb, uint n)
{
    uint m = n < 4u ? n : n + 1u; /* 0 .. 8 without the centre */
    uint i = (kb >> 3) + m / 3u, j = (kb & 7u) + m % 3u; /* one more than the coordinate */
    i = i < 1u ? 0u : i > PKV_MSE_CLIP_STEPS + 1u ? PKV_MSE_CLIP_STEPS : i - 1u;
    j = j < 1u ? 0u : j > PKV_MSE_CLIP_STEPS + 1u ? PKV_MSE_CLIP_STEPS : j - 1u;
    return 8u * i + j;
}

/* Candidate k's fp16 scale (low 16 bits) and zero (high 16 bits). */
PKV_INLINE uint pkv_mse_candidate(pkv_span s, uint k, float inv_maxq)
{
    if (k == 0u) return pkv_scale_f16(s.lo, s.hi, inv_maxq) | (pkv_zero_f16(s.lo) << 16);
    PKV_PRECISE float w = s.hi - s.lo;
    PKV_PRECISE float wi = w * PKV_U2F(k >> 3);
    PKV_PRECISE float ci = wi * 0.0625f;
    PKV_PRECISE float lo = s.lo + ci;
    PKV_PRECISE float wj = w * PKV_U2F(k & 7u);
    PKV_PRECISE float cj = wj * 0.0625f;
    PKV_PRECISE float hi = s.hi - cj;
    return pkv_scale_f16(lo, hi, inv_maxq) | (pkv_zero_f16(lo) << 16);
}

/* One value's term of a candidate's error: acc + (z + code s - x)^2, code as pkv_quant_code gives it
 * (s and z the candidate's fp16 scale and zero read back as floats, rs 1 / s to a few ulp). The
 * terms are >= 0, so the running sum never decreases: a search may stop summing a candidate once its
 * sum reaches the best error so far (it cannot be strictly lower). */
PKV_INLINE float pkv_quant_err_step(float acc, float x, float z, float s, float rs, uint maxq)
{
    PKV_PRECISE float cs = pkv_quant_codef_r(x, z, s, rs, maxq) * s;
    PKV_PRECISE float dq = z + cs;
    PKV_PRECISE float r = dq - x;
    PKV_PRECISE float sq = r * r;
    PKV_PRECISE float e = acc + sq;
    return e;
}

/* The same term at 2 bits (maxq 3) without computing the code: it is the number of thresholds
 * (k - 0.5) s, k = 1..3, that t = x - z reaches (exact products; +inf when s = 0, code 0), and z + code s
 * one of four levels made once per candidate by the same two rounded steps: about 10 operations per
 * value instead of 25 (the GPUs' range search; the CPU's vectorised mse_sums2 does the same). */
struct pkv_levels2 {
    float t1, t2, t3; /* thresholds of t for codes 1, 2, 3 */
    float l0, l1, l2, l3; /* z + code s */
};
#ifndef PKV_LANG_GLSL
typedef struct pkv_levels2 pkv_levels2;
#endif
PKV_INLINE pkv_levels2 pkv_levels2_of(float z, float s)
{
    pkv_levels2 L;
    const float inf = PKV_B2F(0x7f800000u);
    PKV_PRECISE float c0 = 0.0f * s;
    PKV_PRECISE float c1 = 1.0f * s;
    PKV_PRECISE float c2 = 2.0f * s;
    PKV_PRECISE float c3 = 3.0f * s;
    PKV_PRECISE float l0 = z + c0;
    PKV_PRECISE float l1 = z + c1;
    PKV_PRECISE float l2 = z + c2;
    PKV_PRECISE float l3 = z + c3;
    PKV_PRECISE float h1 = 0.5f * s;
    PKV_PRECISE float h2 = 1.5f * s;
    PKV_PRECISE float h3 = 2.5f * s;
    L.t1 = s == 0.0f ? inf : h1;
    L.t2 = s == 0.0f ? inf : h2;
    L.t3 = s == 0.0f ? inf : h3;
    L.l0 = l0; L.l1 = l1; L.l2 = l2; L.l3 = l3;
    return L;
}
PKV_INLINE float pkv_quant_err_step2(float acc, float x, float z, pkv_levels2 L)
{
    PKV_PRECISE float t = x - z;
    float dq = t >= L.t3 ? L.l3 : (t >= L.t2 ? L.l2 : (t >= L.t1 ? L.l1 : L.l0));
    PKV_PRECISE float r = dq - x;
    PKV_PRECISE float sq = r * r;
    PKV_PRECISE float e = acc + sq;
    return e;
}

/* ---- the V gate ---------------------------------------------------------------------------------- */

/* Residualise V iff 1 - rho^2 >= k sqrt(1 + rho^4), rho = A/B, A = the min-max distance to the
 * pattern, B = R(x). Multiplied by B^2 and squared, so that it needs neither division nor sqrt;
 * k2 = k^2 = (2 z / sqrt(5 d))^2 is made on the host in double and rounded once. */
PKV_INLINE bool pkv_v_gate(float A, float B, float k2)
{
    PKV_PRECISE float bb = B * B;
    PKV_PRECISE float aa = A * A;
    PKV_PRECISE float L = bb - aa;
    PKV_PRECISE float lhs = L * L;
    PKV_PRECISE float b4 = bb * bb;
    PKV_PRECISE float a4 = aa * aa;
    PKV_PRECISE float sum4 = b4 + a4;
    PKV_PRECISE float rhs = k2 * sum4;
    return B > 0.0f && L >= 0.0f && lhs >= rhs;
}

/* ---- bit planes of the codes (the block layout, src/core/layout.h) --------------------------------- */

/* b = 3 is a 2-bit plane then a 1-bit plane (code = lo | hi << 2); other b one plane. */
PKV_INLINE uint pkv_plane_count(uint b) { return b == 3u ? 2u : 1u; }
PKV_INLINE uint pkv_plane_bits(uint b, uint plane) { return b == 3u ? (plane == 0u ? 2u : 1u) : b; }
PKV_INLINE uint pkv_plane_words(uint d, uint bits) { return (d * bits + 31u) / 32u; }
PKV_INLINE uint pkv_row_words(uint d, uint b)
{
    return b == 3u ? pkv_plane_words(d, 2u) + pkv_plane_words(d, 1u) : pkv_plane_words(d, b);
}
/* Word and shift of channel c inside a plane of `bits` bits. */
PKV_INLINE uint pkv_code_word(uint c, uint bits) { return (c * bits) >> 5; }
PKV_INLINE uint pkv_code_shift(uint c, uint bits) { return (c * bits) & 31u; }
/* The part of `code` stored in `plane`. */
PKV_INLINE uint pkv_code_plane_part(uint code, uint b, uint plane)
{
    return b == 3u ? (plane == 0u ? (code & 3u) : (code >> 2)) : code;
}

#ifdef PKV_LANG_C
#undef uint
#endif
#endif
