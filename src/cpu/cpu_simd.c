/* Run-time dispatch of the CPU kernels (cpu_simd.h). */
#include "cpu_features.h"
#include "cpu_simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "block.h"

const pkv_cpu_kernels pkv_cpu_kernels_scalar = {
    .level = PKV_SIMD_SCALAR,
    .name = "scalar",
    .attn_unit = pkv_cpu_attn_unit_scalar,
    .dot = pkv_cpu_dot_scalar,
    .axpy = pkv_cpu_axpy_scalar,
    .dots = pkv_cpu_dots_scalar,
    .mix = pkv_cpu_mix_scalar,
    .f16_to_f32 = pkv_cpu_f16_to_f32_scalar,
    .argmin_l2 = pkv_cpu_argmin_l2_scalar,
    .l2_top2 = pkv_cpu_l2_top2_scalar,
    .sums = pkv_cpu_sums_scalar,
    .argmin_minmax = pkv_cpu_argmin_minmax_scalar,
    .block_encode = pkv_block_encode,
    .centre = pkv_cpu_centre_scalar,
};

const char *pkv_cpu_simd_name(pkv_simd_level level)
{
    switch (level) {
    case PKV_SIMD_SCALAR: return "scalar";
    case PKV_SIMD_NEON: return "neon";
    case PKV_SIMD_AVX2: return "avx2";
    case PKV_SIMD_AVX512: return "avx512";
    case PKV_SIMD_AVX512VNNI: return "avx512vnni";
    }
    return "?";
}

int pkv_cpu_simd_supported(pkv_simd_level level)
{
    switch (level) {
    case PKV_SIMD_SCALAR: return 1;
#if defined(PKV_CPU_X86)
    case PKV_SIMD_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && pkv_cpu_has_f16c();
    case PKV_SIMD_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && pkv_cpu_has_f16c();
    case PKV_SIMD_AVX512VNNI:
        return pkv_cpu_simd_supported(PKV_SIMD_AVX512) && __builtin_cpu_supports("avx512vnni") &&
               __builtin_cpu_supports("avx512vbmi");
#endif
#if defined(PKV_CPU_NEON)
    case PKV_SIMD_NEON: return 1; /* baseline on ARM64 */
#endif
    default: return 0;
    }
}

pkv_simd_level pkv_cpu_simd_best(void)
{
    for (int l = PKV_SIMD_TOP; l > PKV_SIMD_SCALAR; l--)
        if (pkv_cpu_simd_supported((pkv_simd_level)l)) return (pkv_simd_level)l;
    return PKV_SIMD_SCALAR;
}

pkv_simd_level pkv_cpu_simd_choose(char *note, size_t note_len)
{
    if (note_len) note[0] = '\0';
    const char *e = getenv("PKV_CPU_SIMD");
    pkv_simd_level best = pkv_cpu_simd_best();
    if (!e || !*e || !strcasecmp(e, "auto")) return best;
    for (int l = PKV_SIMD_SCALAR; l <= PKV_SIMD_TOP; l++) {
        if (strcasecmp(e, pkv_cpu_simd_name((pkv_simd_level)l))) continue;
        if (pkv_cpu_simd_supported((pkv_simd_level)l)) return (pkv_simd_level)l;
        /* unsupported: the best supported level below it */
        pkv_simd_level got = PKV_SIMD_SCALAR;
        for (int k = l - 1; k > PKV_SIMD_SCALAR; k--)
            if (pkv_cpu_simd_supported((pkv_simd_level)k)) { got = (pkv_simd_level)k; break; }
        snprintf(note, note_len, "PKV_CPU_SIMD=%s: not supported by this CPU or build, using %s", e,
                 pkv_cpu_simd_name(got));
        return got;
    }
    snprintf(note, note_len, "PKV_CPU_SIMD=%s: unknown (scalar, neon, avx2, avx512, avx512vnni, auto), using %s", e,
             pkv_cpu_simd_name(best));
    return best;
}

const pkv_cpu_kernels *pkv_cpu_kernels_for(pkv_simd_level level)
{
    switch (level) {
#if defined(PKV_CPU_X86)
    case PKV_SIMD_AVX2: return &pkv_cpu_kernels_avx2;
    case PKV_SIMD_AVX512: return &pkv_cpu_kernels_avx512;
    case PKV_SIMD_AVX512VNNI: return &pkv_cpu_kernels_avx512vnni;
#endif
#if defined(PKV_CPU_NEON)
    case PKV_SIMD_NEON: return &pkv_cpu_kernels_neon;
#endif
    default: return &pkv_cpu_kernels_scalar;
    }
}
