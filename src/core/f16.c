#include "f16.h"

#include <string.h>

#include "internal.h"

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t pkv_f32_to_f16(float f)
{
    uint32_t x = bits_of(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);       /* NaN */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7BFFu);      /* rounds to >= 65520: saturate */
    if (ax < 0x38800000u) {                                         /* subnormal or zero in fp16 */
        if (ax < 0x33000000u) return (uint16_t)sign;                /* < 2^-25: rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - e;                                  /* 14 .. 24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((ax >> 13) - (112u << 10));                       /* rebias exponent 127 -> 15 */
    uint32_t rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    if (h > 0x7BFFu) h = 0x7BFFu;
    return (uint16_t)(sign | h);
}

float pkv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0) {
        if (m == 0) return float_of(sign);
        float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    if (e == 31) return float_of(sign | 0x7F800000u | (m << 13));
    return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

pkv_status pkv_f32_to_f16_array(const float *src, uint16_t *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f32_to_f16_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = pkv_f32_to_f16(src[i]);
    return PKV_OK;
}

pkv_status pkv_f16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f16_to_f32_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
    return PKV_OK;
}
