/* Attention kernel for AVX-512 (F, BW, VL, DQ) with FMA and F16C: 16 lanes (cpu_attn_simd.h). */
#include "cpu_attn_avx512.h"

#include "cpu_attn_simd.h"

const pkv_cpu_kernels pkv_cpu_kernels_avx512 = {
    .level = PKV_SIMD_AVX512,
    .name = "avx512",
    PKV_AVX512_TABLE_ENTRIES,
};
