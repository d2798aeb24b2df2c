/* Scalar math shared by the Vulkan shaders (GLSL) and the OpenCL kernels (OpenCL C).
 * Written in the common subset of both languages; the few differences are macros below.
 * Everything here follows docs/NUMERICS.md exactly: no division or sqrt where results must match
 * the CPU bit for bit, no fused multiply-add (PKV_PRECISE / FP_CONTRACT OFF), fixed order. */
#ifndef PKV_MATH_H
#define PKV_MATH_H

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
#else
#define PKV_INLINE
#define PKV_PRECISE precise
#define PKV_F2B(x) floatBitsToUint(x)
#define PKV_B2F(x) uintBitsToFloat(x)
#define PKV_U2F(x) float(x)
#define PKV_F2U(x) uint(x)
#endif

#define PKV_NEG_INF PKV_B2F(0xff800000u)

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

/* a < b exactly as C compares finite floats (-0 == +0), computed on integer keys so that no
 * compiler can turn a select on it into a hardware min/max with a different signed-zero rule. */
PKV_INLINE bool pkv_less(float a, float b)
{
    uint ua = PKV_F2B(a), ub = PKV_F2B(b);
    if (((ua | ub) & 0x7fffffffu) == 0u) return false; /* +0 and -0 are equal */
    uint ka = (ua & 0x80000000u) != 0u ? ~ua : (ua | 0x80000000u); /* order-preserving keys */
    uint kb = (ub & 0x80000000u) != 0u ? ~ub : (ub | 0x80000000u);
    return ka < kb;
}

/* Running max / min steps used for every range: the CPU's `if (v > mx) mx = v` (ties keep the
 * current value, so the first of equal values, e.g. of -0 and +0, stays). */
PKV_INLINE float pkv_max_step(float acc, float v) { return pkv_less(acc, v) ? v : acc; }
PKV_INLINE float pkv_min_step(float acc, float v) { return pkv_less(v, acc) ? v : acc; }

/* Quantizer step 4: code = #{k >= 1 : t >= (k - 0.5) s}, clamped to maxq. The estimate may be off
 * (approximate reciprocal); the two loops make it exact, since (k - 0.5) * s is exact in fp32. */
PKV_INLINE uint pkv_quant_code(float x, float z, float s, uint maxq)
{
    if (s == 0.0f) return 0u;
    PKV_PRECISE float t = x - z;
    float e = floor(t * (1.0f / s) + 0.5f);
    e = clamp(e, 0.0f, PKV_U2F(maxq));
    uint c = PKV_F2U(e);
    for (;;) {
        PKV_PRECISE float up = (PKV_U2F(c) + 0.5f) * s;
        if (c < maxq && t >= up) c += 1u; else break;
    }
    for (;;) {
        PKV_PRECISE float down = (PKV_U2F(c) - 0.5f) * s;
        if (c > 0u && t < down) c -= 1u; else break;
    }
    return c;
}

/* Quantizer steps 1-2 from a range: the fp16 scale bits. inv_maxq = (float)(1.0 / (2^b - 1)). */
PKV_INLINE uint pkv_scale_f16(float mn, float mx, float inv_maxq)
{
    PKV_PRECISE float range = mx - mn;
    PKV_PRECISE float s = range * inv_maxq;
    return pkv_f32_to_f16(s);
}

/* The V gate: residualise iff 1 - rho^2 >= k sqrt(1 + rho^4), rho = A/B, multiplied by B^2 and
 * squared so that it needs neither division nor sqrt. k2 = k^2 is made on the host. */
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

/* One step of an L2 distance: acc + (x - c)^2, never fused. */
PKV_INLINE float pkv_l2_step(float acc, float x, float c)
{
    PKV_PRECISE float diff = x - c;
    PKV_PRECISE float sq = diff * diff;
    PKV_PRECISE float r = acc + sq;
    return r;
}

/* Chebyshev centre of one channel from its range. */
PKV_INLINE float pkv_centre(float mn, float mx)
{
    PKV_PRECISE float s = mx + mn;
    PKV_PRECISE float c = s * 0.5f;
    return c;
}

/* Bit planes (src/core/layout.h): b = 3 is a 2-bit plane then a 1-bit plane; other b one plane. */
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

#endif
