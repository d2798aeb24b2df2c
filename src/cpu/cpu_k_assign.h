/* Key assignment variants of the CPU encoder (pkv_k_assign; cpu_k_assign.c). */
#ifndef PKV_CPU_K_ASSIGN_H
#define PKV_CPU_K_ASSIGN_H

#include <stdint.h>

#include "cpu_simd.h"

/* The patterns (of P [M][d]) of n keys x [n][d] under variant (pkv_k_assign), at a flush
 * (at_flush = 1) or at prefill mining (0); for RANGE, n is a multiple of the group size G. 0, or -1
 * when out of host memory. */
int pkv_cpu_assign_k(const pkv_cpu_kernels *k, uint32_t variant, int at_flush, const float *x, uint32_t n, uint32_t G,
                     uint32_t d, const float *P, uint32_t M, uint8_t *out);

/* RANGE alone (tests). */
int pkv_cpu_assign_k_range(const pkv_cpu_kernels *k, const float *x, uint32_t n, uint32_t G, uint32_t d,
                           const float *P, uint32_t M, uint8_t *out);

#endif
