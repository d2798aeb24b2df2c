/* The public fp16 conversions and the checked conversion of appended K/V, with the CPU's conversion
 * instructions where it has them: x86 F16C (8 values), AVX-512F (16 values), ARM64 NEON (4 values).
 * Every level gives the bits of the scalar rule (pkv_f32_to_f16 / pkv_f16_to_f32 of pkv_math.h):
 * the instructions round to nearest even and keep subnormals, which is that rule for every finite
 * value within +-65504; a block of values that holds any other value (which the instructions would
 * turn into Inf, or a NaN of other bits) goes through the scalar rule. PKV_CPU_SIMD=scalar (the CPU
 * backend's switch, cpu_simd.h) or PKV_NO_F16C forces the scalar path here too; PKV_CPU_SIMD=avx2
 * stops at F16C. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

static void to_f16_scalar(const float *src, uint16_t *dst, size_t i, size_t n)
{
    for (; i < n; i++) dst[i] = (uint16_t)pkv_f32_to_f16(src[i]);
}

static void to_f32_scalar(const uint16_t *src, float *dst, size_t i, size_t n)
{
    for (; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
}

/* ---- x86-64: F16C (with AVX) and AVX-512F ------------------------------------------------------ */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PKV_F16_X86 1
#include <immintrin.h>

/* mode 0: checked (returns the first rejected index); 1: unchecked (a block with a value beyond the
 * instruction's exact range goes through the scalar rule) */
__attribute__((target("avx,f16c"))) static size_t cvt_f16c(const float *src, uint16_t *dst, size_t n, int unchecked)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), lim = _mm256_set1_ps(PKV_F16_MAX);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        /* NaN, Inf or beyond fp16 range: not (|x| <= max), unordered included */
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(x, absmask), lim, _CMP_NLE_UQ))) {
            if (!unchecked) return finite_scalar(src, dst, i, n);
            to_f16_scalar(src, dst, i, i + 8);
            continue;
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    if (unchecked) {
        to_f16_scalar(src, dst, i, n);
        return n;
    }
    return finite_scalar(src, dst, i, n);
}

__attribute__((target("avx512f"))) static size_t cvt_avx512(const float *src, uint16_t *dst, size_t n, int unchecked)
{
    const __m512 lim = _mm512_set1_ps(PKV_F16_MAX);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        if (_mm512_cmp_ps_mask(_mm512_abs_ps(x), lim, _CMP_NLE_UQ)) {
            if (!unchecked) return finite_scalar(src, dst, i, n);
            to_f16_scalar(src, dst, i, i + 16);
            continue;
        }
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if (unchecked) {
        to_f16_scalar(src, dst, i, n);
        return n;
    }
    return finite_scalar(src, dst, i, n);
}

/* fp16 -> fp32 is exact for every value but NaN (whose payload the instruction keeps, quieted): a
 * block with a NaN or Inf takes the scalar rule. */
__attribute__((target("avx,f16c"))) static void to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
    const __m128i expo = _mm_set1_epi16(0x7C00);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, expo), expo))) {
            to_f32_scalar(src, dst, i, i + 8);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    to_f32_scalar(src, dst, i, n);
}
#endif

/* ---- ARM64: NEON ------------------------------------------------------------------------------- */
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define PKV_F16_NEON 1
#include <arm_neon.h>

/* FCVTN rounds by FPCR (nearest even unless changed; the library never changes it) and keeps
 * subnormals unless FZ16 is set (it is not by default). */
static size_t cvt_neon(const float *src, uint16_t *dst, size_t n, int unchecked)
{
    const float32x4_t lim = vdupq_n_f32(PKV_F16_MAX);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(src + i);
        uint32x4_t ok = vcleq_f32(vabsq_f32(x), lim); /* false for NaN */
        if (vminvq_u32(ok) == 0) {
            if (!unchecked) return finite_scalar(src, dst, i, n);
            to_f16_scalar(src, dst, i, i + 4);
            continue;
        }
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(x)));
    }
    if (unchecked) {
        to_f16_scalar(src, dst, i, n);
        return n;
    }
    return finite_scalar(src, dst, i, n);
}
#endif

/* ---- the level, chosen once ---------------------------------------------------------------------- */

/* CPUID is slow (a VM exit under a hypervisor): the CPU's levels are read once. */
static int g_level, g_has;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose_level(void)
{
    int best = PKV_F16_SCALAR;
#if PKV_F16_X86
    if (pkv_cpu_has_f16c()) best = PKV_F16_HW;
    if (best == PKV_F16_HW && __builtin_cpu_supports("avx512f")) best = PKV_F16_WIDE;
#elif PKV_F16_NEON
    best = PKV_F16_HW;
#endif
    g_has = best; /* the levels up to best are there */
    const char *e = getenv("PKV_CPU_SIMD");
    if (getenv("PKV_NO_F16C") || (e && strcmp(e, "scalar") == 0)) best = PKV_F16_SCALAR;
    else if (e && strcmp(e, "avx2") == 0 && best > PKV_F16_HW) best = PKV_F16_HW;
    g_level = best;
}

int pkv_f16_level(void)
{
    pthread_once(&g_once, choose_level);
    return g_level;
}

int pkv_f16_level_supported(int level)
{
    pthread_once(&g_once, choose_level);
    return level >= PKV_F16_SCALAR && level <= g_has;
}

static size_t convert(int level, const float *src, uint16_t *dst, size_t n, int unchecked)
{
    switch (level) {
#if PKV_F16_X86
    case PKV_F16_WIDE: return cvt_avx512(src, dst, n, unchecked);
    case PKV_F16_HW: return cvt_f16c(src, dst, n, unchecked);
#elif PKV_F16_NEON
    case PKV_F16_HW: return cvt_neon(src, dst, n, unchecked);
#endif
    default:
        if (!unchecked) return finite_scalar(src, dst, 0, n);
        to_f16_scalar(src, dst, 0, n);
        return n;
    }
}

size_t pkv_f32_to_f16_finite_at(int level, const float *src, uint16_t *dst, size_t n)
{
    return convert(pkv_f16_level_supported(level) ? level : PKV_F16_SCALAR, src, dst, n, 0);
}

void pkv_f32_to_f16_at(int level, const float *src, uint16_t *dst, size_t n)
{
    convert(pkv_f16_level_supported(level) ? level : PKV_F16_SCALAR, src, dst, n, 1);
}

void pkv_f16_to_f32_at(int level, const uint16_t *src, float *dst, size_t n)
{
#if PKV_F16_X86
    if (level >= PKV_F16_HW && pkv_f16_level_supported(PKV_F16_HW)) {
        to_f32_f16c(src, dst, n);
        return;
    }
#endif
    (void)level;
    to_f32_scalar(src, dst, 0, n);
}

size_t pkv_f32_to_f16_finite(const float *src, uint16_t *dst, size_t n)
{
    return convert(pkv_f16_level(), src, dst, n, 0);
}
/* (pkv_f16_level() <= g_has: the level in use needs no check) */

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
    convert(pkv_f16_level(), src, dst, n, 1);
    return PKV_OK;
}

pkv_status pkv_f16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f16_to_f32_array: null argument");
#if PKV_F16_X86
    if (pkv_f16_level() >= PKV_F16_HW) {
        to_f32_f16c(src, dst, n);
        return PKV_OK;
    }
#endif
    to_f32_scalar(src, dst, 0, n);
    return PKV_OK;
}
