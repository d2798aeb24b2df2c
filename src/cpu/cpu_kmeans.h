/* The CPU backend's prefill k-means (docs/NUMERICS.md "k-means"), bit-identical to the plain Lloyd
 * iteration of that page and so to the GPU backends, but with distance bounds that skip the tokens
 * whose nearest centroid provably cannot have changed and fast dot products with a rounding bound
 * that settle most of the others (cpu_kmeans.c). */
#ifndef PKV_CPU_KMEANS_H
#define PKV_CPU_KMEANS_H

#include <stdint.h>

#include "cpu_simd.h"


typedef struct pkv_kmeans {
    uint32_t cap;    /* tokens the scratch holds */
    uint32_t n, d, M; /* n: the last run's tokens */
    int plain;       /* 1: every token's distances every iteration, every chunk summed (the reference) */
    int bounded;     /* the bounds below hold for the current centroids c */
    uint32_t *assign, *count, *idx, *best;
    uint8_t *dirty;  /* [chunks][M]: a token of the chunk moved to or from m since its sum was made */
    float *part;     /* [chunks][M][d] chunk sums */
    float *tree;     /* [chunks][M][d] their pairwise tree */
    float *d1, *d2;  /* computed distances of the recomputed tokens */
    double *u, *l;   /* per token: upper bound of the distance to its centroid, lower bound to the others */
    double *delta;   /* [M] how far each centroid moved since the bounds were made */
    float *prev;     /* [M][d] the centroids before an update */
    double *nx2;     /* [n] |x_t|^2 */
    double *nc2;     /* [M] |c_m|^2 of the centroids of the current step (any order of summation) */
    float *nc2f;     /* [M] the same rounded to float (the dots' c2) */
    double c2max, cmax; /* max_m nc2[m], its square root */
    uint64_t n_steps, n_fast, n_exact; /* token assignments made, through dots, through exact distances */
    void *own;       /* the block pkv_kmeans_init allocated (NULL after pkv_kmeans_init_in) */
} pkv_kmeans;

/* Scratch for up to n tokens (of a run or of an assignment) of dimension d and M centroids; plain = 1
 * turns the bounds off. 0, or -1 when out of host memory (nothing to free then). */
int pkv_kmeans_init(pkv_kmeans *km, uint32_t n, uint32_t d, uint32_t M, int plain);
void pkv_kmeans_free(pkv_kmeans *km);
/* The same scratch in memory of the caller's (64-byte aligned, pkv_kmeans_scratch_bytes(n, d, M) bytes,
 * contents undefined): nothing to free (pkv_kmeans_free only clears km). */
size_t pkv_kmeans_scratch_bytes(uint32_t n, uint32_t d, uint32_t M);
void pkv_kmeans_init_in(pkv_kmeans *km, void *mem, uint32_t n, uint32_t d, uint32_t M, int plain);

/* k-means of x [n][d] (n <= the scratch's) into c [M][d] from the tokens init[M], at most iters
 * iterations, stopping when the largest squared centroid shift is below tol2; rcp[c] = 1/c as floats. */
void pkv_kmeans_run(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, uint32_t n, const uint32_t *init,
                    const float *rcp, uint32_t iters, float tol2, float *c);

/* out[t] = argmin_m L2(x_t, P_m) for the first nq tokens of x, P [M][d] the stored patterns (fp16
 * values of the last run's c). same = 1: x is the last run's x, whose bounds skip most tokens; same = 0
 * (a sampled run, docs/NUMERICS.md: every token against the patterns of the sample's k-means): any
 * tokens, nq <= the scratch's, through the dots and the exact kernel. */
void pkv_kmeans_assign(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, uint32_t nq, int same,
                       const float *c, const float *P, uint32_t *out);

#endif
