/* The vectorised attention kernel, written once over a small vector vocabulary that each
 * instruction-set file (cpu_attn_avx2.c, cpu_attn_avx512.c, cpu_attn_neon.c) defines before including
 * this file: W lanes of float (VF) and uint32 (VI), and
 *   vf_load vf_store vf_set1 vf_zero vf_add vf_mul vf_fma(a,b,c)=a*b+c vf_max vf_hsum vf_hmax vf_exp2
 *   vi_set1 vi_loadu vi_storeu vi_and vi_srli(v, const) vf_from_u (exact for values < 2^31)
 *   vi_from_u8(p): W bytes -> W uint32 lanes
 *   F4 (4 floats) with f4_load f4_store f4_add; vf_tok4(r0, r1, r2, r3, U): the 4 x W values of 4 rows
 *   as W groups of 4 (token k's at U + 4 tok4_slot(k)), for the V histogram
 *   vi_gather_rows(p, idx): lane l = p[idx[l]] (32-bit words; only without VI_TRANSPOSE)
 *   optionally vi_transpose (and VI_TRANSPOSE defined): a W x W transpose of 32-bit words in registers
 *   vf_f16(p): W fp16 values -> fp32; v_codes(row, bits, v): codes of channels [vW, vW + W) of one
 *   token row of a bit plane of `bits` (1, 2, 4, 8) bits, as exact floats, in channel order.
 *   ACC_REGS: how many VF accumulators the V pass may keep in registers.
 *
 * One unit (cpu_simd.h) = some chunks of one (sequence, kv head), for all its query rows, taken in
 * tiles of up to 4 rows; per chunk and tile:
 * - K logits with tokens in the lanes: the block's code words are transposed once per block and tile
 *   (word-major, so word j of W tokens is one load; gathered one word at a time where the
 *   instruction set has no vi_transpose), each channel's field is isolated by one AND (or one shift
 *   for the top field of a word) and converted exactly; its power of two is folded into the coefficient q_i * s_i (per channel,
 *   per block), so a channel costs AND + convert + one FMA per row. The zero-point term
 *   sum_i q_i z_i once per block, q.C_K[a_t] gathered from the per-unit table.
 * - softmax in base 2, running max moved only when a chunk exceeds it by 2^8 (docs/NUMERICS.md);
 * - V with channels in the lanes: acc[r] += (p_t s_t) * code_t for every row of the tile with the
 *   codes unpacked once per token (a shift and a table permute for 1-, 2- and 4-bit fields where the
 *   permute has enough lanes); the zero-point share sum_t p_t z_t is one number per row, added
 *   to every channel at the end; the gated weights go into the histogram S[a_t].
 * fp16 chunks (the window, FP16 mode) run the same softmax with channels in the lanes for K too. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "cpu_backend.h"
#include "cpu_simd.h"
#include "pkv_math.h"

#define RT 4 /* rows per tile */
#define LAZY_MAX 8.0f

#if defined(__GNUC__)
#define AINLINE static inline __attribute__((always_inline))
#else
#define AINLINE static inline
#endif

typedef struct unit_scratch {
    float lg[RT][128];      /* logits, then weights p */
    float w[RT][128];       /* p * vs */
    float vs[128], vz[128];
    uint32_t kidx[128];
    float coef[RT][2][256]; /* per plane: q_i s_i * plane multiplier * fold */
    float fold[2][256];     /* per plane and channel: multiplier * 2^-shift (1 for top fields) */
    float ks[256], kz[256];
    float zs[RT];
    uint32_t dp;            /* d rounded up to W: the rows below are padded with zeros */
    float *q, *acc;         /* [rows][dp] */
    /* not zeroed (attn_unit_simd): written before they are read */
    /* the tile's histogram of gated weights: copy t % 4 (four independent chains when runs of tokens
     * share a pattern), pattern (bin nb: tokens whose gate is 0), row of the tile; bins 0 .. nb
     * zeroed by tile_rows */
    _Alignas(64) float H[4][257][RT];
#ifdef VI_TRANSPOSE
    uint32_t kt[64 * 128];  /* the block's K code words transposed: kt[word * G + token], every word a
                             * block's k_plane reads written by its transpose first */
#endif
#ifdef PKV_VNNI
    int vnni;               /* this geometry's K logits go through k_plane_q (set per unit) */
    int vq;                 /* and its V through v_pass_q (2- and 4-bit V codes) */
    VI kqi;                 /* kq_pack's index for the unit's k_bits */
    int32_t kq[RT][128 + 16]; /* per row: the coefficients q_i s_i rounded to int16 as pairs (two channels of
                             * a code word: k and k + half of its fields) in the order k_plane_q reads;
                             * kq_pack writes every pair of the dp channels, past d zeros */
    float ka[RT];           /* per row: the pairs' scale (q_i s_i ~ ka * int16) */
    int32_t wq[RT][64];     /* per row: the weights p_t s_t rounded to int16, tokens (2j, 2j + 1) in pair j,
                             * all n of the chunk written by wq_pack */
    float wb[RT];           /* per row: their scale (p_t s_t ~ wb * int16) */
    uint32_t vp[64 * 32];   /* 2- and 4-bit V: the block's code words of rows 2j and 2j + 1 interleaved (v_pairs),
                             * the pairs v_pass_q reads */
#endif
} unit_scratch;

/* n <= W fp16 values, the rest of the lanes 0 (never reads past p + n) */
AINLINE VF vf_f16n(const uint16_t *p, uint32_t n)
{
    if (n >= W) return vf_f16(p);
    uint16_t tmp[W] = {0};
    memcpy(tmp, p, n * sizeof *p);
    return vf_f16(tmp);
}

/* ---- K logits of a compressed block, tokens in the lanes --------------------------------------- */

/* One plane of `B` bits for TT tiles of W tokens (TT * NR independent FMA chains):
 * acc[tt][r] += sum_c coef[r][c] * field_c over the plane's words. */
#define TT 2
/* field masks fm << (k * B) for B = 1, 2, 4, 8 (index B - 1) */
static const uint32_t kmask[8][32] = {
#define M1(k) (1u << (k))
    {M1(0), M1(1), M1(2), M1(3), M1(4), M1(5), M1(6), M1(7), M1(8), M1(9), M1(10), M1(11), M1(12), M1(13), M1(14), M1(15),
     M1(16), M1(17), M1(18), M1(19), M1(20), M1(21), M1(22), M1(23), M1(24), M1(25), M1(26), M1(27), M1(28), M1(29), M1(30), M1(31)},
    {3u << 0, 3u << 2, 3u << 4, 3u << 6, 3u << 8, 3u << 10, 3u << 12, 3u << 14, 3u << 16, 3u << 18, 3u << 20, 3u << 22,
     3u << 24, 3u << 26, 3u << 28, 3u << 30},
    {0},
    {15u << 0, 15u << 4, 15u << 8, 15u << 12, 15u << 16, 15u << 20, 15u << 24, 15u << 28},
    {0}, {0}, {0},
    {255u << 0, 255u << 8, 255u << 16, 255u << 24},
#undef M1
};

/* Word j of W consecutive token rows, one token per lane: a load from the transposed copy where the
 * instruction set has a register transpose (VI_TRANSPOSE), else a gather from the rows. */
AINLINE VI k_word(const uint32_t *p, VI idx)
{
#ifdef VI_TRANSPOSE
    (void)idx;
    return vi_loadu(p);
#else
    return vi_gather_rows(p, idx);
#endif
}

/* word j of tile u at base + u * tile_stride + j * word_stride */
AINLINE void k_plane(const uint32_t *base, size_t tile_stride, size_t word_stride, VI idx, uint32_t words,
                     const float *coef, size_t cs, int NR, int B, VF (*acc)[RT])
{
    const uint32_t cpd = 32u / (uint32_t)B;
    for (uint32_t j = 0; j < words; j++) {
        VI v[TT];
        for (int u = 0; u < TT; u++) v[u] = k_word(base + u * tile_stride + j * word_stride, idx);
        const float *cf = coef + (size_t)j * cpd;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 32
#endif
        for (uint32_t k = 0; k < cpd; k++) {
            VF f[TT];
            for (int u = 0; u < TT; u++)
                f[u] = k + 1 == cpd ? vf_from_u(vi_srli(v[u], (int)(k * B))) : vf_from_u(vi_and(v[u], vi_set1(kmask[B - 1][k])));
            for (int r = 0; r < NR; r++) {
                VF c = vf_set1(cf[r * cs + k]);
                for (int u = 0; u < TT; u++) acc[u][r] = vf_fma(f[u], c, acc[u][r]);
            }
        }
    }
}

#ifdef PKV_VNNI
/* The same with integer dot products: a word of 32 / B fields holds channels k and k + 16 / B at bits
 * k B and k B + 16, so one shift and one AND leave two channels' codes as the int16 halves of each
 * lane, and one vpdpwssd per row adds both products (q_i s_i as int16, kq): half the multiply-adds of
 * k_plane, no conversion. acc[tt][r] += sum over pairs of kq[r][pair] . (code, code'). */
AINLINE void k_plane_q(const uint32_t *base, size_t tile_stride, size_t word_stride, VI idx, uint32_t words,
                       const int32_t *kq, size_t cs, int NR, int B, VI (*acc)[RT])
{
    const uint32_t half = 16u / (uint32_t)B;
    const VI mask = vi_set1(((1u << B) - 1u) * 0x00010001u);
    for (uint32_t j = 0; j < words; j++) {
        VI v[TT];
        for (int u = 0; u < TT; u++) v[u] = k_word(base + u * tile_stride + j * word_stride, idx);
        const int32_t *cf = kq + (size_t)j * half;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
        for (uint32_t k = 0; k < half; k++) {
            VI f[TT];
            for (int u = 0; u < TT; u++) f[u] = vi_and(k ? vi_srli(v[u], (int)(k * B)) : v[u], mask);
            for (int r = 0; r < NR; r++) {
                VI c = vi_set1((uint32_t)cf[r * cs + k]);
                for (int u = 0; u < TT; u++) acc[u][r] = vi_dpwssd(acc[u][r], f[u], c);
            }
        }
    }
}
#endif

/* The logits of a block's tokens [t, t + W) for row r: the dot products' sum x plus zt (and, in PATTERN
 * mode, q.C_K[a_t] from the row's table qc; NULL otherwise) */
AINLINE void k_store(unit_scratch *sc, int r, uint32_t t, VF x, const float *zt, const float *const *qc, uint32_t nb)
{
    x = vf_add(x, vf_set1(zt[r]));
    if (qc) x = vf_add(x, vf_lookup(qc[r], nb, vi_loadu(sc->kidx + t)));
    vf_store(&sc->lg[r][t], x);
}

#if defined(PKV_VNNI) && defined(VI_TRANSPOSE8)
/* head_dim 128, 2-bit K (8 code words a token): each tile's words transposed in registers and used there
 * (no round trip through kt; two dp chains per row). A function of its own: inlined into
 * k_logits_block it made GCC 12 lay out the other widths' loops worse (4-bit ~5% slower). */
__attribute__((noinline)) static void k_logits_b2_d128(uint32_t G, const uint32_t *codes, unit_scratch *sc,
                                                       const float *zt, const float *const *qc, uint32_t nb, int NR)
{
    const VI mask = vi_set1(0x00030003u);
    for (uint32_t t0 = 0; t0 < G; t0 += W) {
        VI v[8], acc[2][RT];
        vi_transpose8(codes + (size_t)t0 * 8, v);
        for (int r = 0; r < NR; r++) acc[0][r] = acc[1][r] = vi_set1(0);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
        for (uint32_t j = 0; j < 8; j++) {
            const int32_t *cf = &sc->kq[0][0] + (size_t)j * 8;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (uint32_t k = 0; k < 8; k++) { /* two chains per row: k even and odd */
                const VI f = vi_and(k ? vi_srli(v[j], (int)(2 * k)) : v[j], mask);
                for (int r = 0; r < NR; r++) acc[k & 1][r] = vi_dpwssd(acc[k & 1][r], f, vi_set1((uint32_t)cf[r * 144 + k]));
            }
        }
        for (int r = 0; r < NR; r++)
            k_store(sc, r, t0, vf_mul(vf_from_i(vi_add(acc[0][r], acc[1][r])), vf_set1(sc->ka[r])), zt, qc, nb);
    }
}
#endif

AINLINE void k_logits_block(const pkv_geom *g, const uint8_t *blk, unit_scratch *sc, const float *zt,
                            const float *const *qc, uint32_t nb, int NR)
{
    const uint32_t G = g->G, d = g->d, rw = g->k_row_words, b = g->k_bits;
    uint32_t idxv[W];
    for (uint32_t l = 0; l < W; l++) idxv[l] = l * rw;
    VI idx = vi_loadu(idxv);
    const uint32_t *codes = (const uint32_t *)(blk + g->off_kcodes);
    const size_t cs = 2 * 256;
#if defined(PKV_VNNI) && defined(VI_TRANSPOSE8)
    if (sc->vnni && b == 2 && rw == 8) {
        k_logits_b2_d128(G, (const uint32_t *)(blk + g->off_kcodes), sc, zt, qc, nb, NR);
        return;
    }
#endif
#ifdef VI_TRANSPOSE
    for (uint32_t t0 = 0; t0 < G; t0 += W)
        for (uint32_t c0 = 0; c0 < rw; c0 += W)
            vi_transpose(codes + (size_t)t0 * rw + c0, rw, rw - c0 < W ? rw - c0 : W, sc->kt + (size_t)c0 * G + t0, G);
    const uint32_t *src = sc->kt;
    const size_t ts = W, ws = G, step = 1; /* tile, word and token strides in src */
#else
    const uint32_t *src = codes;
    const size_t ts = (size_t)W * rw, ws = 1, step = rw;
#endif
    const size_t hi = pkv_plane_words(d, 2) * ws; /* 3 bits: the 1-bit plane after the 2-bit one */
#ifdef PKV_VNNI
    if (sc->vnni) {
        for (uint32_t t0 = 0; t0 < G; t0 += TT * W) {
            VI acc[TT][RT];
            for (int u = 0; u < TT; u++)
                for (int r = 0; r < NR; r++) acc[u][r] = vi_set1(0);
            const uint32_t *base = src + (size_t)t0 * step;
            const int32_t *kq = &sc->kq[0][0];
            switch (b) {
            case 2: k_plane_q(base, ts, ws, idx, pkv_plane_words(d, 2), kq, 144, NR, 2, acc); break;
            case 4: k_plane_q(base, ts, ws, idx, pkv_plane_words(d, 4), kq, 144, NR, 4, acc); break;
            default: k_plane_q(base, ts, ws, idx, pkv_plane_words(d, 8), kq, 144, NR, 8, acc); break;
            }
            for (int u = 0; u < TT; u++)
                for (int r = 0; r < NR; r++)
                    k_store(sc, r, t0 + u * W, vf_mul(vf_from_i(acc[u][r]), vf_set1(sc->ka[r])), zt, qc, nb);
        }
        return;
    }
#endif
    for (uint32_t t0 = 0; t0 < G; t0 += TT * W) { /* G is a multiple of 32 >= TT * W */
        VF acc[TT][RT];
        for (int u = 0; u < TT; u++)
            for (int r = 0; r < NR; r++) acc[u][r] = vf_zero();
        const uint32_t *base = src + (size_t)t0 * step;
        switch (b) {
        case 2: k_plane(base, ts, ws, idx, pkv_plane_words(d, 2), &sc->coef[0][0][0], cs, NR, 2, acc); break;
        case 4: k_plane(base, ts, ws, idx, pkv_plane_words(d, 4), &sc->coef[0][0][0], cs, NR, 4, acc); break;
        case 8: k_plane(base, ts, ws, idx, pkv_plane_words(d, 8), &sc->coef[0][0][0], cs, NR, 8, acc); break;
        default:
            k_plane(base, ts, ws, idx, pkv_plane_words(d, 2), &sc->coef[0][0][0], cs, NR, 2, acc);
            k_plane(base + hi, ts, ws, idx, pkv_plane_words(d, 1), &sc->coef[0][1][0], cs, NR, 1, acc);
        }
        for (int u = 0; u < TT; u++)
            for (int r = 0; r < NR; r++) k_store(sc, r, t0 + u * W, acc[u][r], zt, qc, nb);
    }
}

/* ---- V of a compressed block, channels in the lanes ------------------------------------------- */

AINLINE VF v_code_vec(const uint8_t *row, int B, uint32_t hi_off, uint32_t v)
{
    if (B == 3) return vf_fma(v_codes(row + hi_off, 1, v), vf_set1(4.0f), v_codes(row, 2, v));
    return v_codes(row, B, v);
}

/* CHc (a constant) vectors of channels from v0, for NR rows: acc in registers over the tokens. */
AINLINE void v_pass(const uint8_t *codes, uint32_t rb, uint32_t hi_off, const unit_scratch *sc, float *const *acc_mem,
                    uint32_t n, uint32_t v0, int NR, int B, int CHc)
{
    VF acc[ACC_REGS];
    for (int r = 0; r < NR; r++)
        for (int k = 0; k < CHc; k++) acc[r * CHc + k] = vf_load(acc_mem[r] + (v0 + k) * W);
    for (uint32_t t = 0; t < n; t++) {
        const uint8_t *row = codes + (size_t)t * rb;
        VF wr[RT];
        for (int r = 0; r < NR; r++) wr[r] = vf_set1(sc->w[r][t]);
        for (int k = 0; k < CHc; k++) {
            VF c = v_code_vec(row, B, hi_off, v0 + k);
            for (int r = 0; r < NR; r++) acc[r * CHc + k] = vf_fma(c, wr[r], acc[r * CHc + k]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int k = 0; k < CHc; k++) vf_store(acc_mem[r] + (v0 + k) * W, acc[r * CHc + k]);
}

#ifdef PKV_VNNI
/* The same with integer dot products over pairs of tokens: v_pair_codes gives, per channel lane, the
 * codes of tokens t and t + 1 as int16 halves, and one vpdpwssd per row adds both against the pair of
 * int16 weights wq: half the multiply-adds of v_pass. The block's int32 sums are scaled by wb and
 * added to acc_mem at the end. n may be odd: the weight after the last token is 0 (a block's rows
 * go to G, even). */
AINLINE void v_pass_q(uint32_t rw, const unit_scratch *sc, float *const *acc_mem, uint32_t n, uint32_t v0, int NR, int B,
                      int CHc)
{
    VI acc[ACC_REGS];
    const uint32_t ps = vp_pair_words(rw);
    for (int i = 0; i < NR * CHc; i++) acc[i] = vi_set1(0);
    for (uint32_t t = 0; t < n; t += 2) {
        const uint32_t *pr = sc->vp + (size_t)(t / 2) * ps;
        VI wr[RT];
        for (int r = 0; r < NR; r++) wr[r] = vi_set1((uint32_t)sc->wq[r][t / 2]);
        for (int k = 0; k < CHc; k++) {
            VI c = v_pair_codes(pr, rw, B, v0 + k);
            for (int r = 0; r < NR; r++) acc[r * CHc + k] = vi_dpwssd(acc[r * CHc + k], c, wr[r]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int k = 0; k < CHc; k++) {
            float *a = acc_mem[r] + (v0 + k) * W;
            vf_store(a, vf_fma(vf_from_i(v_unperm(acc[r * CHc + k], B)), vf_set1(sc->wb[r]), vf_load(a)));
        }
}
#endif

AINLINE void v_block_b(const pkv_geom *g, const uint8_t *blk, unit_scratch *sc, float *const *acc_mem, uint32_t n,
                       int NR, int B)
{
    const uint32_t nv = sc->dp / W, rb = g->v_row_words * 4, hi_off = pkv_plane_words(g->d, 2) * 4;
    const uint8_t *codes = blk + g->off_vcodes;
    /* the widest power-of-two pass that fits the registers, then single vectors */
    const int CH = ACC_REGS / NR >= 8 ? 8 : ACC_REGS / NR >= 4 ? 4 : ACC_REGS / NR >= 2 ? 2 : 1;
    uint32_t v0 = 0;
#ifdef PKV_VNNI
    if (sc->vq && (B == 2 || B == 4)) {
        const uint32_t rw = rb / 4;
        v_pairs(codes, rw, (n + 1) / 2, sc->vp);
        if (CH == 8)
            for (; v0 + 8 <= nv; v0 += 8) v_pass_q(rw, sc, acc_mem, n, v0, NR, B, 8);
        if (CH >= 4)
            for (; v0 + 4 <= nv; v0 += 4) v_pass_q(rw, sc, acc_mem, n, v0, NR, B, 4);
        if (CH >= 2)
            for (; v0 + 2 <= nv; v0 += 2) v_pass_q(rw, sc, acc_mem, n, v0, NR, B, 2);
        for (; v0 < nv; v0++) v_pass_q(rw, sc, acc_mem, n, v0, NR, B, 1);
        return;
    }
#endif
    if (CH == 8)
        for (; v0 + 8 <= nv; v0 += 8) v_pass(codes, rb, hi_off, sc, acc_mem, n, v0, NR, B, 8);
    if (CH >= 4)
        for (; v0 + 4 <= nv; v0 += 4) v_pass(codes, rb, hi_off, sc, acc_mem, n, v0, NR, B, 4);
    if (CH >= 2)
        for (; v0 + 2 <= nv; v0 += 2) v_pass(codes, rb, hi_off, sc, acc_mem, n, v0, NR, B, 2);
    for (; v0 < nv; v0++) v_pass(codes, rb, hi_off, sc, acc_mem, n, v0, NR, B, 1);
}

AINLINE void v_block(const pkv_geom *g, const uint8_t *blk, unit_scratch *sc, float *const *acc_mem, uint32_t n,
                     int NR)
{
    switch (g->v_bits) {
    case 2: v_block_b(g, blk, sc, acc_mem, n, NR, 2); break;
    case 4: v_block_b(g, blk, sc, acc_mem, n, NR, 4); break;
    case 8: v_block_b(g, blk, sc, acc_mem, n, NR, 8); break;
    default: v_block_b(g, blk, sc, acc_mem, n, NR, 3); break;
    }
}

/* ---- fp16 chunks: K logits and V with channels in the lanes ------------------------------------ */

AINLINE void k_logits_f16(const uint8_t *kp, uint32_t n, uint32_t d, const float *const *q, unit_scratch *sc, int NR)
{
    const uint32_t nv = sc->dp / W;
    for (uint32_t t = 0; t < n; t++) {
        const uint16_t *row = (const uint16_t *)(kp + (size_t)t * d * 2);
        VF acc[RT];
        for (int r = 0; r < NR; r++) acc[r] = vf_zero();
        for (uint32_t v = 0; v < nv; v++) {
            VF k = vf_f16n(row + v * W, d - v * W);
            for (int r = 0; r < NR; r++) acc[r] = vf_fma(k, vf_load(q[r] + v * W), acc[r]);
        }
        for (int r = 0; r < NR; r++) sc->lg[r][t] = vf_hsum(acc[r]);
    }
}

AINLINE void v_f16(const uint8_t *vp, uint32_t n, uint32_t d, unit_scratch *sc, float *const *acc_mem, int NR)
{
    const uint32_t nv = sc->dp / W, CH = ACC_REGS / (uint32_t)NR;
    for (uint32_t v0 = 0; v0 < nv; v0 += CH) {
        const uint32_t ch = nv - v0 < CH ? nv - v0 : CH;
        VF acc[ACC_REGS];
        for (int r = 0; r < NR; r++)
            for (uint32_t k = 0; k < ch; k++) acc[r * CH + k] = vf_load(acc_mem[r] + (v0 + k) * W);
        for (uint32_t t = 0; t < n; t++) {
            const uint16_t *row = (const uint16_t *)(vp + (size_t)t * d * 2);
            VF wr[RT];
            for (int r = 0; r < NR; r++) wr[r] = vf_set1(sc->w[r][t]);
            for (uint32_t k = 0; k < ch; k++) {
                VF c = vf_f16n(row + (v0 + k) * W, d - (v0 + k) * W);
                for (int r = 0; r < NR; r++) acc[r * CH + k] = vf_fma(c, wr[r], acc[r * CH + k]);
            }
        }
        for (int r = 0; r < NR; r++)
            for (uint32_t k = 0; k < ch; k++) vf_store(acc_mem[r] + (v0 + k) * W, acc[r * CH + k]);
    }
}

/* ---- softmax of one row over one chunk ---------------------------------------------------------- */

/* lg[0 .. n) holds the logits (base 2); tokens >= vis are not seen. Turns lg into weights p (0 for
 * unseen tokens), moves the running max when needed (rescaling the row's state), adds sum p to l and
 * sum p_t vz_t to zs[r], and writes w[t] = p_t vs_t in the same pass; returns max |w_t|. */
static float row_softmax(unit_scratch *sc, int r, uint32_t n, uint32_t vis, float *m, float *l, float *acc,
                         uint32_t d, uint32_t nb)
{
    float *x = sc->lg[r], *wr = sc->w[r];
    for (uint32_t t = vis; t < ((n + W - 1) / W) * W; t++) x[t] = -INFINITY;
    VF mx = vf_set1(-INFINITY);
    for (uint32_t t = 0; t < n; t += W) mx = vf_max(mx, vf_load(x + t));
    float mb = vf_hmax(mx);
    if (*m == -INFINITY) {
        *m = mb;
    } else if (mb > *m + LAZY_MAX) {
        float f = exp2f(*m - mb);
        *l *= f, sc->zs[r] *= f;
        for (uint32_t i = 0; i < d; i++) acc[i] *= f;
        for (uint32_t k = 0; k < nb; k++) sc->H[0][k][r] *= f, sc->H[1][k][r] *= f, sc->H[2][k][r] *= f, sc->H[3][k][r] *= f;
        *m = mb;
    }
    VF mm = vf_set1(*m), lsum = vf_zero(), zs = vf_zero(), wmx = vf_zero();
    for (uint32_t t = 0; t < n; t += W) {
        VF p = vf_exp2(vf_sub(vf_load(x + t), mm)), w = vf_mul(p, vf_load(sc->vs + t));
        vf_store(x + t, p);
        vf_store(wr + t, w);
        lsum = vf_add(lsum, p);
        zs = vf_fma(p, vf_load(sc->vz + t), zs);
        wmx = vf_max(wmx, vf_max(w, vf_sub(vf_zero(), w)));
    }
    for (uint32_t t = vis; t < n; t++) x[t] = 0.0f, wr[t] = 0.0f;
    *l += vf_hsum(lsum);
    sc->zs[r] += vf_hsum(zs);
    return vf_hmax(wmx);
}

/* ---- one unit ------------------------------------------------------------------------------------ */

/* the tokens of chunk ch that query row `row` sees (0 .. ch->n) */
AINLINE uint32_t chunk_vis(const pkv_attn_unit *u, const pkv_attn_chunk *ch, uint32_t row)
{
    const uint32_t v = u->visible[row];
    return v <= ch->first ? 0 : (v - ch->first < ch->n ? v - ch->first : ch->n);
}

AINLINE void tile_chunk(const pkv_attn_unit *u, const pkv_attn_part *out, const pkv_attn_chunk *ch, unit_scratch *sc,
                        uint32_t r0, int NR)
{
    const pkv_geom *g = u->g;
    const uint32_t d = g->d, nb = u->nb;
    const int fp16 = !ch->blk || g->mode == PKV_MODE_FP16;
    const int pattern = ch->blk && g->mode == PKV_MODE_PATTERN;
    const uint32_t n = ch->n;
    uint32_t vmax = 0;
    for (int r = 0; r < NR; r++) {
        const uint32_t v = chunk_vis(u, ch, r0 + (uint32_t)r);
        if (v > vmax) vmax = v;
    }
    if (!vmax) return;
    const float *q[RT];
    float *acc[RT];
    const uint32_t dp = sc->dp;
    for (int r = 0; r < NR; r++) q[r] = sc->q + (size_t)(r0 + r) * dp, acc[r] = sc->acc + (size_t)(r0 + r) * dp;
    /* logits */
    if (fp16) {
        const uint8_t *kp = ch->blk ? ch->blk + g->off_kfp16 : ch->wk;
        k_logits_f16(kp, n, d, q, sc, NR);
        for (uint32_t t = 0; t < (n + W - 1) / W * W; t++) sc->vs[t] = 1.0f, sc->vz[t] = 0.0f;
    } else {
        const uint8_t *blk = ch->blk;
        float zt[RT];
        const uint32_t planes = g->k_bits == 3 ? 2 : 1;
        for (int r = 0; r < NR; r++) {
            VF z = vf_zero();
#ifdef PKV_VNNI
            if (sc->vnni) { /* q_i s_i rounded to int16 against the row's largest: ka = max |q_i s_i| / 32767 */
                VF mx = vf_zero();
                for (uint32_t i = 0; i < dp; i += W) {
                    VF qs = vf_mul(vf_load(q[r] + i), vf_load(sc->ks + i));
                    z = vf_fma(vf_load(q[r] + i), vf_load(sc->kz + i), z);
                    vf_store(&sc->coef[r][0][i], qs);
                    mx = vf_max(mx, vf_abs(qs));
                }
                const float m = vf_hmax(mx);
                kq_pack(sc->coef[r][0], dp, m > 0.0f ? 32767.0f / m : 0.0f, sc->kqi, sc->kq[r]);
                sc->ka[r] = m > 0.0f ? m / 32767.0f : 0.0f;
                zt[r] = vf_hsum(z);
                continue;
            }
#endif
            for (uint32_t i = 0; i < dp; i += W) {
                VF qs = vf_mul(vf_load(q[r] + i), vf_load(sc->ks + i));
                z = vf_fma(vf_load(q[r] + i), vf_load(sc->kz + i), z);
                for (uint32_t p = 0; p < planes; p++) vf_store(&sc->coef[r][p][i], vf_mul(qs, vf_load(&sc->fold[p][i])));
            }
            zt[r] = vf_hsum(z);
        }
        const float *qc[RT];
        for (int r = 0; r < NR; r++) qc[r] = pattern ? u->qc + (size_t)(r0 + r) * nb : NULL;
        k_logits_block(g, blk, sc, zt, pattern ? qc : NULL, nb, NR);
    }
    /* softmax, weights, histogram */
    const uint8_t *blk = ch->blk;
    float wmax[RT]; /* per row: the largest |p_t s_t| (wq_pack's scale) */
    for (int r = 0; r < NR; r++) {
        wmax[r] = 0.0f;
        /* recomputed, not kept in an array from the loop above: GCC 12.2 at -O2 with
         * -fsanitize=address,undefined loaded row 1's entry of such an array for row 0 here (the
         * load's address disagreed with the ASan check just before it; test_attention's PATTERN 4-bit
         * q_len 2 case, a window chunk whose last token row 0 does not see) */
        const uint32_t vis = chunk_vis(u, ch, r0 + (uint32_t)r);
        if (!vis) {
            memset(sc->w[r], 0, n * sizeof(float));
            memset(sc->lg[r], 0, n * sizeof(float));
            continue;
        }
        wmax[r] = row_softmax(sc, r, n, vis, &out->m[r0 + r], &out->l[r0 + r], acc[r], dp, nb);
    }
    if (pattern) { /* the histogram of the gated weights (p = 0 for unseen tokens and rows, and past vmax up to
                    * the block's G): the tile's rows of W tokens turned into W groups of 4 rows (vf_tok4), then
                    * one 4-wide add per token into its pattern's bin (bin nb when its gate is 0) */
        const uint8_t *vidx = blk + g->off_vidx, *mask = blk + g->off_vmask;
        _Alignas(64) float U[RT * W];
        for (uint32_t t0 = 0; t0 < vmax; t0 += W) {
            VF rv[RT];
            for (int r = 0; r < RT; r++) rv[r] = r < NR ? vf_load(&sc->lg[r][t0]) : vf_zero();
            vf_tok4(rv[0], rv[1], rv[2], rv[3], U);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
            for (uint32_t k = 0; k < W; k++) {
                const uint32_t t = t0 + k, a = mask[t >> 3] >> (t & 7) & 1u ? vidx[t] : nb;
                float *h = sc->H[k & 3][a];
                f4_store(h, f4_add(f4_load(h), f4_load(U + 4 * tok4_slot(k))));
            }
        }
    }
#ifdef PKV_VNNI
    if (!fp16 && sc->vq) /* the weights as int16 against each row's largest (0 for a row that sees none) */
        for (int r = 0; r < NR; r++) {
            const float m = wmax[r];
            wq_pack(sc->w[r], n, m > 0.0f ? 32767.0f / m : 0.0f, sc->wq[r]);
            sc->wb[r] = m > 0.0f ? m / 32767.0f : 0.0f;
        }
#else
    (void)wmax;
#endif
    if (fp16) v_f16(ch->blk ? ch->blk + g->off_vfp16 : ch->wv, vmax, d, sc, acc, NR);
    else v_block(g, ch->blk, sc, acc, vmax, NR);
}

AINLINE void tile_rows(const pkv_attn_unit *u, const pkv_attn_part *out, unit_scratch *sc, uint32_t r0, int NR)
{
    const pkv_geom *g = u->g;
    const uint32_t d = g->d, G = g->G;
    for (int r = 0; r < NR; r++) sc->zs[r] = 0.0f;
    for (int k = 0; k < 4 && u->nb; k++) memset(sc->H[k], 0, (u->nb + 1) * sizeof sc->H[k][0]);
    for (uint32_t c = 0; c < u->n_chunks; c++) {
        const pkv_attn_chunk *ch = &u->chunks[c];
#if defined(__GNUC__)
        /* the next block into the caches while this one computes: blocks sit wherever the block
         * table puts them, so the hardware prefetchers start each one cold */
        if (c + 1 < u->n_chunks && u->chunks[c + 1].blk)
            for (uint32_t off = 0; off < g->block_bytes; off += 64) __builtin_prefetch(u->chunks[c + 1].blk + off, 0, 2);
#endif
        if (ch->blk && g->mode != PKV_MODE_FP16) {
            /* block metadata, shared by the row tiles */
            const uint8_t *blk = ch->blk;
            const int pattern = g->mode == PKV_MODE_PATTERN;
            int any = 0;
            for (int r = 0; r < NR; r++) any |= u->visible[r0 + r] > ch->first;
            if (!any) continue;
            for (uint32_t i = 0; i < sc->dp; i += W) {
                vf_store(sc->ks + i, vf_f16n((const uint16_t *)(blk + g->off_kscale) + i, d - i));
                vf_store(sc->kz + i, vf_f16n((const uint16_t *)(blk + g->off_kzero) + i, d - i));
            }
            for (uint32_t t = 0; t < G; t += W) {
                vf_store(sc->vs + t, vf_f16((const uint16_t *)(blk + g->off_vscale) + t));
                vf_store(sc->vz + t, vf_f16((const uint16_t *)(blk + g->off_vzero) + t));
            }
            if (pattern)
                for (uint32_t t = 0; t < G; t += W) vi_storeu(sc->kidx + t, vi_from_u8(blk + g->off_kidx + t));
        }
        tile_chunk(u, out, ch, sc, r0, NR);
    }
    for (int r = 0; r < NR && u->nb; r++) {
        float *S = out->S + (size_t)(r0 + r) * u->nb;
        for (uint32_t k = 0; k < u->nb; k++) S[k] += (sc->H[0][k][r] + sc->H[1][k][r]) + (sc->H[2][k][r] + sc->H[3][k][r]);
    }
    for (int r = 0; r < NR; r++) {
        const float *acc = sc->acc + (size_t)(r0 + r) * sc->dp;
        float *o = out->acc + (size_t)(r0 + r) * d;
        for (uint32_t i = 0; i < d; i++) o[i] = acc[i] + sc->zs[r];
    }
}

static int attn_unit_simd(const pkv_attn_unit *u, const pkv_attn_part *out)
{
    const pkv_geom *g = u->g;
    const uint32_t d = g->d, nb = u->nb;
    const uint32_t dp = (d + W - 1) / W * W;
    const size_t head = (sizeof(unit_scratch) + 63) / 64 * 64;
    /* the backend's scratch, kept between calls: an allocation of ~80 KB per unit came back to the
     * allocator at each unit's end, and when that trimmed the heap the next unit faulted its pages in
     * again (with glibc's top pad at 64 KB a call took 25% longer; how often it happened at the default
     * moved one-thread times by ~4% with the heap's state) */
    unit_scratch *sc = pkv_cpu_scratch_take(u->be, head + ((2 * (size_t)u->rows * dp * sizeof(float)) + 63) / 64 * 64);
    if (!sc) return 1;
    /* All of it up to H (H and kt, 48 of its 66 KB with AVX-512, are written before they are read):
     * the vector loops read the per-channel arrays (ks, kz, coef, ...) past d up to the vector width,
     * and uninitialised lanes there (NaN times a zero code is NaN) made head_dim 40 outputs NaN now
     * and then (test_parity, OpenCL vs this backend). */
    memset(sc, 0, offsetof(unit_scratch, H));
    sc->dp = dp;
#ifdef PKV_VNNI
    /* int16 products of 2-, 4- and 8-bit codes, when a row's sum cannot leave int32 (|q_i s_i| <= 32767
     * units, d codes of at most 2^B - 1) and the pairs fit kq */
    {
        const uint32_t b = g->k_bits;
        sc->vnni = g->mode != PKV_MODE_FP16 && (b == 2 || b == 4 || b == 8) && d <= 256 &&
                   (uint64_t)d * ((1u << b) - 1u) * 32767u < (1ull << 31);
        /* G * 15 * 32767 < 2^31; vp holds rows of up to 16 words */
        sc->vq = g->mode != PKV_MODE_FP16 && (g->v_bits == 2 || g->v_bits == 4) && g->G <= 128 && g->v_row_words <= 16;
        if (sc->vnni) sc->kqi = kq_index((int)b);
    }
#endif
    sc->q = (float *)((char *)sc + head);
    sc->acc = sc->q + (size_t)u->rows * dp;
    memset(sc->q, 0, 2 * (size_t)u->rows * dp * sizeof(float));
    for (uint32_t r = 0; r < u->rows; r++) {
        memcpy(sc->q + (size_t)r * dp, u->q + (size_t)r * d, d * sizeof(float));
        out->m[r] = -INFINITY, out->l[r] = 0.0f;
        if (nb) memset(out->S + (size_t)r * nb, 0, nb * sizeof(float));
    }
    /* per plane and channel: the plane's multiplier times 2^-shift of the channel's field (1 for the
     * top field of a word, which is shifted down instead of masked); 0 past d */
    if (g->mode != PKV_MODE_FP16) {
        const uint32_t planes = g->k_bits == 3 ? 2 : 1;
        for (uint32_t p = 0; p < planes; p++) {
            const uint32_t b = pkv_plane_bits(g->k_bits, p), cpd = 32 / b;
            const float mult = p ? 4.0f : 1.0f;
            for (uint32_t c = 0; c < d; c++) {
                uint32_t k = c % cpd;
                sc->fold[p][c] = k + 1 == cpd ? mult : mult / (float)(1u << (k * b)); /* exact: k * b < 32 */
            }
        }
    }
    uint32_t r0 = 0;
    for (; r0 + RT <= u->rows; r0 += RT) tile_rows(u, out, sc, r0, RT);
    switch (u->rows - r0) {
    case 3: tile_rows(u, out, sc, r0, 3); break;
    case 2: tile_rows(u, out, sc, r0, 2); break;
    case 1: tile_rows(u, out, sc, r0, 1); break;
    default: break;
    }
    pkv_cpu_scratch_give(u->be, sc);
    return 0;
}

/* ---- the small helpers of the table ------------------------------------------------------------ */

static float dot_simd(const float *a, const float *b, uint32_t n)
{
    VF s = vf_zero();
    uint32_t i = 0;
    for (; i + W <= n; i += W) s = vf_fma(vf_load(a + i), vf_load(b + i), s);
    float r = vf_hsum(s);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void axpy_simd(float a, const float *x, float *y, uint32_t n)
{
    VF av = vf_set1(a);
    uint32_t i = 0;
    for (; i + W <= n; i += W) vf_store(y + i, vf_fma(av, vf_load(x + i), vf_load(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* out[r * n + m] = q_r . P_m for rows q [rows][d] and P [n][d]: blocks of 4 rows x 4 patterns, 16
 * independent accumulators sharing their loads (one dot at a time is a chain of dependent FMAs). */
static void dots_simd(const float *q, uint32_t rows, const float *P, uint32_t n, uint32_t d, float *out)
{
    for (uint32_t r0 = 0; r0 < rows; r0 += 4)
        for (uint32_t m0 = 0; m0 < n; m0 += 4) {
            const float *qr[4], *pm[4];
            for (uint32_t k = 0; k < 4; k++) { /* past the end: the last row / pattern again, not stored */
                qr[k] = q + (size_t)(r0 + k < rows ? r0 + k : rows - 1) * d;
                pm[k] = P + (size_t)(m0 + k < n ? m0 + k : n - 1) * d;
            }
            VF acc[4][4];
            for (int r = 0; r < 4; r++)
                for (int m = 0; m < 4; m++) acc[r][m] = vf_zero();
            uint32_t i = 0;
            for (; i + W <= d; i += W) {
                VF pv[4];
                for (int m = 0; m < 4; m++) pv[m] = vf_load(pm[m] + i);
                for (int r = 0; r < 4; r++) {
                    VF qv = vf_load(qr[r] + i);
                    for (int m = 0; m < 4; m++) acc[r][m] = vf_fma(qv, pv[m], acc[r][m]);
                }
            }
            for (uint32_t r = 0; r < 4 && r0 + r < rows; r++)
                for (uint32_t m = 0; m < 4 && m0 + m < n; m++) {
                    float x = vf_hsum(acc[r][m]);
                    for (uint32_t j = i; j < d; j++) x += qr[r][j] * pm[m][j];
                    out[(size_t)(r0 + r) * n + m0 + m] = x;
                }
        }
}

/* acc_r += sum_m S[r * n + m] P_m for NR rows (acc_r at acc + r * stride), channels [i0, i0 + CHc W):
 * NR x CHc accumulators in registers over the patterns. */
AINLINE void mix_block(const float *S, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride, uint32_t i0,
                       int NR, int CHc)
{
    VF a[RT][4];
    for (int r = 0; r < NR; r++)
        for (int k = 0; k < CHc; k++) a[r][k] = vf_load(acc + r * stride + i0 + (uint32_t)k * W);
    for (uint32_t m = 0; m < n; m++) {
        VF pv[4];
        for (int k = 0; k < CHc; k++) pv[k] = vf_load(P + (size_t)m * d + i0 + (uint32_t)k * W);
        for (int r = 0; r < NR; r++) {
            VF sv = vf_set1(S[(size_t)r * n + m]);
            for (int k = 0; k < CHc; k++) a[r][k] = vf_fma(pv[k], sv, a[r][k]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int k = 0; k < CHc; k++) vf_store(acc + r * stride + i0 + (uint32_t)k * W, a[r][k]);
}

AINLINE void mix_rows(const float *S, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride, int NR)
{
    uint32_t i = 0;
    for (; i + 4 * W <= d; i += 4 * W) mix_block(S, n, P, d, acc, stride, i, NR, 4);
    for (; i + W <= d; i += W) mix_block(S, n, P, d, acc, stride, i, NR, 1);
    for (; i < d; i++)
        for (int r = 0; r < NR; r++)
            for (uint32_t m = 0; m < n; m++) acc[r * stride + i] += S[(size_t)r * n + m] * P[(size_t)m * d + i];
}

/* acc[r * stride + i] += sum_m S[r * n + m] P[m][i] for rows r, P [n][d] */
static void mix_simd(const float *S, uint32_t rows, uint32_t n, const float *P, uint32_t d, float *acc, size_t stride)
{
    uint32_t r0 = 0;
    for (; r0 + RT <= rows; r0 += RT) mix_rows(S + (size_t)r0 * n, n, P, d, acc + r0 * stride, stride, RT);
    switch (rows - r0) {
    case 3: mix_rows(S + (size_t)r0 * n, n, P, d, acc + r0 * stride, stride, 3); break;
    case 2: mix_rows(S + (size_t)r0 * n, n, P, d, acc + r0 * stride, stride, 2); break;
    case 1: mix_rows(S + (size_t)r0 * n, n, P, d, acc + r0 * stride, stride, 1); break;
    default: break;
    }
}
