/* Run-time choice of the CPU backend's kernels: a table of function pointers per instruction-set
 * level (portable scalar C, AVX2+FMA+F16C, AVX-512, NEON), picked by CPU feature detection when the
 * backend is created. PKV_CPU_SIMD=scalar|avx2|avx512|avx512vnni|neon|auto forces a level (a level this CPU or
 * build lacks falls back to the best one below it, with a warning in the context's log).
 *
 * Two kinds of kernels:
 * - attention (cpu_attn_*.c): free arithmetic (FMA, any order), judged against fp64 within the
 *   tolerance of docs/NUMERICS.md; those files are compiled with contraction allowed;
 * - encoding (cpu_enc_*.c): bit-exact with the scalar reference and the GPU backends. They vectorise
 *   only across independent values (tokens, centroids, channels), so every value sees the same fp32
 *   operations in the same order as in docs/NUMERICS.md; compiled with -ffp-contract=off. */
#ifndef PKV_CPU_SIMD_H
#define PKV_CPU_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef enum pkv_simd_level {
    PKV_SIMD_SCALAR = 0,
    PKV_SIMD_NEON = 1,
    PKV_SIMD_AVX2 = 2,
    PKV_SIMD_AVX512 = 3,
    PKV_SIMD_AVX512VNNI = 4, /* AVX-512 plus AVX512_VNNI and AVX512_VBMI (Ice Lake, Zen 4 and later): the K logits
                              * of 2/4/8-bit codes and 2/4-bit V as int16 dot products */
    PKV_SIMD_TOP = PKV_SIMD_AVX512VNNI,
} pkv_simd_level;

/* ---- attention ------------------------------------------------------------------------------------- */

/* A run of at most G tokens of one (sequence, kv head): a block, or a piece of the fp16 window. */
typedef struct pkv_attn_chunk {
    const uint8_t *blk;     /* a block (any mode), or NULL for a window piece */
    const uint8_t *wk, *wv; /* window piece: fp16 K rows and V rows [n][d] */
    uint32_t first, n;      /* index of its first token in the sequence, tokens */
} pkv_attn_chunk;

/* One unit of work: some consecutive chunks of one (sequence, kv head), for all its query rows
 * (the GQA heads of the kv head times the query positions). */
typedef struct pkv_attn_unit {
    const pkv_geom *g;
    uint32_t rows;
    const float *q;           /* [rows][d]: q * scale * log2(e) (logits in base 2) */
    const uint32_t *visible;  /* [rows]: row r sees tokens 0 .. visible[r] - 1 */
    const float *qc;          /* [rows][nb]: q . P_K[m] (same prescale); NULL when nb == 0 */
    uint32_t nb;              /* patterns (PATTERN mode), else 0 */
    const pkv_attn_chunk *chunks;
    uint32_t n_chunks;
    struct pkv_backend *be;   /* the unit's scratch memory is this backend's (pkv_cpu_scratch_take) */
} pkv_attn_unit;

/* The unit's result per row, softmax in base 2 with the running max m: l = sum_t 2^(x_t - m),
 * acc[i] = sum_t 2^(x_t - m) v_t,i without the patterns, S[m] = histogram of the gated weights.
 * m = -inf (and l = 0) for a row that saw no token. */
typedef struct pkv_attn_part {
    float *m, *l;   /* [rows] */
    float *acc;     /* [rows][d] */
    float *S;       /* [rows][nb] */
} pkv_attn_part;

/* ---- the table ------------------------------------------------------------------------------------- */

typedef struct pkv_cpu_kernels {
    pkv_simd_level level;
    const char *name;
    /* attention: one unit; returns nonzero when it could not allocate its scratch */
    int (*attn_unit)(const pkv_attn_unit *u, const pkv_attn_part *out);
    float (*dot)(const float *a, const float *b, uint32_t n);          /* n multiple of 8 */
    void (*axpy)(float a, const float *x, float *y, uint32_t n);       /* y += a x, n multiple of 8 */
    /* out[r * n + m] = q_r . P_m, q [rows][d], P [n][d] (the logits' pattern shares q . P_K) */
    void (*dots)(const float *q, uint32_t rows, const float *P, uint32_t n, uint32_t d, float *out);
    /* acc[r * stride + i] += sum_m S[r * n + m] P[m][i] (the patterns' share of V, sum_m S[m] P_V[m]) */
    void (*mix)(const float *S, uint32_t rows, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride);
    /* exact: fp16 -> fp32 */
    void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
    /* bit-exact encoding (docs/NUMERICS.md) */
    /* out[t] = argmin_m L2(x_t, P_m) over m < M, for n tokens x [n][d], patterns P [M][d] */
    void (*argmin_l2)(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out);
    /* The same for the rows idx[0 .. n) of x (rows 0 .. n-1 when idx is NULL): best[j] = the argmin
     * (ties: the lowest m), d1[j] its computed distance, d2[j] the smallest computed distance of the
     * other patterns (= d1[j] on a tie, +inf when M == 1); d1 and d2 may be NULL (cpu_kmeans.c) */
    void (*l2_top2)(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                    uint32_t *best, float *d1, float *d2);
    /* For the rows idx[0 .. n) of x: h_m = c2[m] - 2 x_t . P_m over m < M, the dot summed in any order
     * with fused multiply-add (h within (2 d + 1) 2^-24 (|x_t| |P_m| + |c2[m]|) of exact: distance
     * bounds only, cpu_kmeans.c); best[j] = an index of the smallest h, h1[j] = that h, h2[j] = the
     * smallest h of the others (+inf when M == 1). NULL in the scalar table */
    void (*dots_top2)(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                      const float *c2, uint32_t *best, float *h1, float *h2);
    /* k-means chunk sums, exact: s[a_t][i] = s[a_t][i] + x_t,i for t = t0 .. t1-1 in order, only
     * where sel[a_t] (x [..][d], s [M][d]) */
    void (*sums)(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel, float *s);
    /* out[t] = argmin_m MinMax(x_t, P_m) */
    void (*argmin_minmax)(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out);
    /* pkv_block_encode's bytes */
    void (*block_encode)(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka, const uint8_t *va,
                         const float *PK, const float *PV, uint8_t *blk);
    /* per channel i: (max_t x_t,i + min_t x_t,i) * 0.5 over n tokens x [n][d] (Chebyshev centre) */
    void (*centre)(const float *x, uint32_t n, uint32_t d, float *out);
} pkv_cpu_kernels;

/* The best level this CPU and build support. */
pkv_simd_level pkv_cpu_simd_best(void);
/* Whether a level is compiled in and supported by this CPU. */
int pkv_cpu_simd_supported(pkv_simd_level level);
const char *pkv_cpu_simd_name(pkv_simd_level level);
/* The level PKV_CPU_SIMD asks for (or the best one); *note gets a sentence when the request could not
 * be honoured (unknown name, unsupported level), else "". */
pkv_simd_level pkv_cpu_simd_choose(char *note, size_t note_len);
const pkv_cpu_kernels *pkv_cpu_kernels_for(pkv_simd_level level);

/* The tables (NULL-free only for the levels built here). */
extern const pkv_cpu_kernels pkv_cpu_kernels_scalar;
#if defined(PKV_CPU_X86)
extern const pkv_cpu_kernels pkv_cpu_kernels_avx2;
extern const pkv_cpu_kernels pkv_cpu_kernels_avx512;
extern const pkv_cpu_kernels pkv_cpu_kernels_avx512vnni;
#endif
#if defined(PKV_CPU_NEON)
extern const pkv_cpu_kernels pkv_cpu_kernels_neon;
#endif

/* Scalar pieces shared by the tables (cpu_attn_scalar.c, cpu_enc_scalar.c). */
int pkv_cpu_attn_unit_scalar(const pkv_attn_unit *u, const pkv_attn_part *out);
float pkv_cpu_dot_scalar(const float *a, const float *b, uint32_t n);
void pkv_cpu_axpy_scalar(float a, const float *x, float *y, uint32_t n);
void pkv_cpu_dots_scalar(const float *q, uint32_t rows, const float *P, uint32_t n, uint32_t d, float *out);
void pkv_cpu_mix_scalar(const float *S, uint32_t rows, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride);
void pkv_cpu_f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n);
void pkv_cpu_argmin_l2_scalar(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out);
void pkv_cpu_l2_top2_scalar(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2);
void pkv_cpu_sums_scalar(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s);
void pkv_cpu_argmin_minmax_scalar(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out);
void pkv_cpu_centre_scalar(const float *x, uint32_t n, uint32_t d, float *out);

/* The encoding kernels of each level (cpu_enc_<level>.c), bit-exact with the scalar ones. */
void pkv_cpu_f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n);
void pkv_cpu_argmin_l2_avx2(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out);
void pkv_cpu_l2_top2_avx2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2);
void pkv_cpu_dots_top2_avx2(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2);
void pkv_cpu_sums_avx2(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s);
void pkv_cpu_argmin_minmax_avx2(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out);
void pkv_cpu_block_encode_avx2(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                               const uint8_t *va, const float *PK, const float *PV, uint8_t *blk);
void pkv_cpu_centre_avx2(const float *x, uint32_t n, uint32_t d, float *out);
void pkv_cpu_f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n);
void pkv_cpu_argmin_l2_avx512(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out);
void pkv_cpu_l2_top2_avx512(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2);
void pkv_cpu_dots_top2_avx512(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2);
void pkv_cpu_sums_avx512(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s);
void pkv_cpu_argmin_minmax_avx512(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out);
void pkv_cpu_block_encode_avx512(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                                 const uint8_t *va, const float *PK, const float *PV, uint8_t *blk);
void pkv_cpu_centre_avx512(const float *x, uint32_t n, uint32_t d, float *out);
void pkv_cpu_f16_to_f32_neon(const uint16_t *src, float *dst, size_t n);
void pkv_cpu_argmin_l2_neon(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint32_t *out);
void pkv_cpu_l2_top2_neon(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                        uint32_t *best, float *d1, float *d2);
void pkv_cpu_dots_top2_neon(const float *x, const uint32_t *idx, uint32_t n, uint32_t d, const float *P, uint32_t M,
                          const float *c2, uint32_t *best, float *h1, float *h2);
void pkv_cpu_sums_neon(const float *x, const uint32_t *a, uint32_t t0, uint32_t t1, uint32_t d, const uint8_t *sel,
                      float *s);
void pkv_cpu_argmin_minmax_neon(const float *x, uint32_t n, uint32_t d, const float *P, uint32_t M, uint8_t *out);
void pkv_cpu_block_encode_neon(const pkv_geom *g, const float *kx, const float *vx, const uint8_t *ka,
                               const uint8_t *va, const float *PK, const float *PV, uint8_t *blk);
void pkv_cpu_centre_neon(const float *x, uint32_t n, uint32_t d, float *out);

#endif
