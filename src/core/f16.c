/* The public fp16 conversions: arrays through the shared scalar functions; the checked conversion
 * of appended K/V, with F16C where the CPU has it. */
#include <math.h>
#include <stdlib.h>

#include "cpu_features.h"
#include "f16.h"
#include "internal.h"

static size_t finite_scalar(const float *src, uint16_t *dst, size_t i, size_t n)
{
    for (; i < n; i++) {
        if (!isfinite(src[i]) || fabsf(src[i]) > PKV_F16_MAX) return i;
        dst[i] = (uint16_t)pkv_f32_to_f16(src[i]);
    }
    return n;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static size_t finite_f16c(const float *src, uint16_t *dst, size_t n)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), lim = _mm256_set1_ps(PKV_F16_MAX);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        /* NaN, Inf or beyond fp16 range: not (|x| <= max), unordered included */
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(x, absmask), lim, _CMP_NLE_UQ)))
            return finite_scalar(src, dst, i, n);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    return finite_scalar(src, dst, i, n);
}
#endif

size_t pkv_f32_to_f16_finite(const float *src, uint16_t *dst, size_t n)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (pkv_cpu_has_f16c() && !getenv("PKV_NO_F16C")) return finite_f16c(src, dst, n);
#endif
    return finite_scalar(src, dst, 0, n);
}

size_t pkv_f16_find_nonfinite(const uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 512 <= n; i += 512) {
        uint32_t bad = 0;
        for (size_t k = 0; k < 512; k++) bad |= (uint32_t)((h[i + k] & 0x7C00u) == 0x7C00u);
        if (bad) break;
    }
    for (; i < n; i++)
        if ((h[i] & 0x7C00u) == 0x7C00u) return i;
    return n;
}

pkv_status pkv_f32_to_f16_array(const float *src, uint16_t *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f32_to_f16_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = (uint16_t)pkv_f32_to_f16(src[i]);
    return PKV_OK;
}

pkv_status pkv_f16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f16_to_f32_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
    return PKV_OK;
}
