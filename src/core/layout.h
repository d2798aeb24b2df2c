/* The byte layout of blocks, bank chunks and windows: one definition for every backend.
 * docs/FORMAT.md describes the same thing in prose. */
#ifndef PKV_LAYOUT_H
#define PKV_LAYOUT_H

#include <stdint.h>
#include "patternkv.h"
#include "pkv_math.h"

#define PKV_CHUNK_PATTERNS 32u    /* patterns per bank chunk */
#define PKV_MAX_BANK 256u         /* indices are u8 */
#define PKV_MAX_CHUNKS (PKV_MAX_BANK / PKV_CHUNK_PATTERNS)
#define PKV_GATE_Z 1.645          /* one-sided 95% */

/* Everything an op needs to know about a cache's shape, derived once from its config. All offsets
 * are bytes from the start of a slot and multiples of 16 (sections can be read with 16-byte loads). */
typedef struct pkv_geom {
    uint32_t mode;              /* pkv_mode */
    uint32_t d, G, R, H;        /* head_dim, group size, window, kv heads */
    uint32_t k_bits, v_bits;
    uint32_t M, capacity;       /* initial patterns, bank capacity */
    uint32_t k_assign;          /* pkv_k_assign (PATTERN): how keys choose their pattern */
    uint32_t quantizer;         /* pkv_quantizer: how (scale, zero) are chosen */
    uint32_t k_row_words;       /* 32-bit words per token row of K codes (all bit planes) */
    uint32_t v_row_words;
    /* block sections */
    uint32_t off_kcodes, off_kscale, off_kzero;   /* [G][k_row_words] u32, [d] f16, [d] f16 */
    uint32_t off_vcodes, off_vscale, off_vzero;   /* [G][v_row_words] u32, [G] f16, [G] f16 */
    uint32_t off_kidx, off_vidx, off_vmask;       /* [G] u8, [G] u8, [G/8] bytes (PATTERN only) */
    uint32_t off_kfp16, off_vfp16;                /* FP16 mode: [G][d] f16 each */
    uint32_t block_bytes;
    uint32_t block_payload[5];  /* bytes of: codes, scales+zeros, indices, masks, padding */
    /* bank chunk: K patterns [32][d] f16 then V patterns [32][d] f16 */
    uint32_t chunk_bytes;
    /* window slot: K [R][d] f16 then V [R][d] f16 */
    uint32_t window_bytes;
    float gate_k2;              /* (2 z / sqrt(5 d))^2, computed in double then rounded once */
    float inv_maxq_k, inv_maxq_v; /* pkv_inv_maxq of k_bits and v_bits, for the quantizer's scale */
} pkv_geom;

/* Bit planes of a b-bit code (pkv_plane_count, pkv_plane_bits, pkv_plane_words, pkv_row_words in
 * shaders/common/pkv_math.h): b=3 is stored as a 2-bit plane then a 1-bit plane (code = lo | hi<<2);
 * other b as one plane. Each plane of a row is ceil(d*bits/32) words; channel c of a plane with
 * `bits` bits lives in word (c*bits)/32 at shift (c*bits)%32, little-endian. */

/* PKV_QUANTIZER_AUTO's choice for a mode: MSE (K and V clipped) for PATTERN, the best PATTERN quantizer
 * at 2, 3 and 4 bits on both evaluated models over 11 windows (bench/RESULTS.md, 2026-12-05); MINMAX
 * otherwise; others as given. */
static inline uint32_t pkv_quantizer_resolve(uint32_t mode, uint32_t q)
{
    return q != PKV_QUANTIZER_AUTO ? q : mode == PKV_MODE_PATTERN ? PKV_QUANTIZER_MSE : PKV_QUANTIZER_MINMAX;
}

/* Whether K's channels / V's tokens take the MSE quantizer's range search (pkv_quantizer MSE, MSE_K,
 * MSE_V) rather than min-max: the encoders' switch on every backend. */
static inline int pkv_geom_k_mse(const pkv_geom *g)
{
    return g->quantizer == PKV_QUANTIZER_MSE || g->quantizer == PKV_QUANTIZER_MSE_K;
}
static inline int pkv_geom_v_mse(const pkv_geom *g)
{
    return g->quantizer == PKV_QUANTIZER_MSE || g->quantizer == PKV_QUANTIZER_MSE_V;
}

/* The GPU encoders' range search (Vulkan quant_search.comp, OpenCL ocl_quant_search): the block halves
 * it searches (K bit 0, V bit 1; none in FP16 mode), the longest run it stages (d values of a V token
 * or G of a K channel), and its runs per workgroup: 16, or 8 when a run may hold more than 128
 * values, so that the staged values stay within 8 KiB (docs/NUMERICS.md "Quantizer range search"). */
static inline uint32_t pkv_geom_mse_halves(const pkv_geom *g)
{
    return g->mode == PKV_MODE_FP16 ? 0u : (uint32_t)pkv_geom_k_mse(g) | (uint32_t)pkv_geom_v_mse(g) << 1;
}
static inline uint32_t pkv_geom_mse_run_max(const pkv_geom *g) { return g->d > g->G ? g->d : g->G; }
static inline uint32_t pkv_geom_mse_runs_per_group(const pkv_geom *g) { return pkv_geom_mse_run_max(g) <= 128 ? 16u : 8u; }

/* Fills g from a validated config. */
void pkv_geom_init(pkv_geom *g, const pkv_cache_config *c);

#endif
