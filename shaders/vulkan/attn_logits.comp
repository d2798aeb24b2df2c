#version 450
/* Attention in two passes, pass 1 of 2 (attn_values.comp is pass 2): the compressed modes' path where
 * the shape allows it (vk_ops.c: split_fits). One workgroup per (chunk of an item, tile, kv head), TPT
 * tokens per invocation (each shared-memory load of qs serves TPT tokens), no loop over chunks: q_r * s_K,i of the chunk in shared memory, then each invocation's
 * logits sum_i qs_i code_i + q.z_K (+ q.P_K[a_t] in PATTERN) for the NR rows (log2 units), written to
 * scratch with the chunk's maximum per row. Few registers and no step loop, so that many workgroups
 * per compute unit keep the cache's reads in flight (the one-pass kernel's barrier-separated steps at
 * 8 warps per SM could not: bench/RESULTS.md, sessions 9-11). Logit record of (item, chunk j, tile,
 * kv head): G rows of NRV vec4, then the chunk's maxima (NRV vec4), at attn_logit_rec(). */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"
#include "attn_codes.glsl"
#include "attn_split.glsl"

const uint WG = gl_WorkGroupSize.x; /* G / TPT: the host makes it so */
const uint PER = 32u / KBITS, MASK = (1u << KBITS) - 1u;
const uint KST = MODE == 2u ? 1u : KRW + 1u; /* a token's staged K code row, padded: invocations read their own rows without bank conflicts */
#include "wg_reduce.glsl"
#ifdef PKV_COOPMAT
/* The K tile: token t's row of a round of 32 channels, + 8 halves of padding (a row is 5 16-byte words,
 * so 8 rows' same word sit in different banks); subgroup w's tokens are 32w.. (its own rows) */
const uint CM_KRC = 32u, CM_TLD = (CM_KRC + 8u) / 8u;
shared uvec4 cm_tile[G * CM_TLD];
#define CM_TILE cm_tile
#include "attn_split_cm.glsl"
shared float cm_s[16u * G]; /* S */

/* Row t of the K tile, round k: the token's codes (krow) in tile order, or its fp16 row at half index h
 * (window chunks; ok: the token is there), or zeros */
void cm_stage_k(uint t, uint k, bool codes, bool ok, uint h, uvec4 krow[SPLIT_KQ])
{
    const uint PER = 32u / KBITS, HALF = PER / 2u, WPR = CM_KRC * KBITS / 32u;
    if (codes) {
        uint pr[CM_KRC / 2u];
        [[unroll]] for (uint j = 0u; j < WPR; j++) {
            uint kw = k * WPR + j, w = krow[kw / 4u][kw % 4u];
            [[unroll]] for (uint c = 0u; c < HALF; c++) pr[j * HALF + c] = cm_pair(w, c, KBITS);
        }
        [[unroll]] for (uint q = 0u; q < CM_KRC / 8u; q++)
            cm_tile[t * CM_TLD + q] = uvec4(pr[4u * q], pr[4u * q + 1u], pr[4u * q + 2u], pr[4u * q + 3u]);
    } else
        [[unroll]] for (uint q = 0u; q < CM_KRC / 8u; q++) cm_tile[t * CM_TLD + q] = ok ? win4[h / 8u + k * (CM_KRC / 8u) + q] : uvec4(0u);
}

/* This invocation's token's q . k over the channels (no q.z_K, q.P_K or limit yet) for the NR rows,
 * as S = A B on the tensor cores (attn_split_cm.glsl); zt gets the rows' q . z_K (codes). base: the
 * chunk's block; h: the token's fp16 row in the window (ok: it is there). */
void cm_logits(bool codes, uint base, bool ok, uint h, uvec4 krow[SPLIT_KQ], uint seq, uint head, uint tile,
               inout float zt[NR], out vec4 dot[NRV])
{
    uint lid = gl_LocalInvocationID.x, w = lid / 32u;
    float qv[NR], qm[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) qv[r] = 0.0, qm[r] = 0.0;
    if (lid < D) { /* channel lid: q * scale * s_K, and q . z_K */
        float s = 1.0, z = 0.0;
        if (codes) {
            s = blk_hf((base + pc.o_kscale) * 2u + lid);
            z = blk_hf((base + pc.o_kzero) * 2u + lid);
        }
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            float q = tile_row_real(tile, r) ? q_value(tile_row(seq, head, tile, r), lid) * pc.scale : 0.0;
            qv[r] = q * s;
            zt[r] += q * z;
            qm[r] = abs(qv[r]);
        }
    }
    wg_reduce2(zt, false, qm, true);
    float sc[NR];
    uint pos = codes ? cm_pos(lid, 32u / KBITS) : lid;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        sc[r] = cm_row_scale(qm[r]);
        if (lid < D) cm_put(r, pos, qv[r] * sc[r]);
    }
    CM_ACC acc[2];
    acc[0] = acc[1] = CM_ACC_ZERO;
    bool skip = (pc.flags & ATTN_SKIP_K) != 0u; /* a timing aid */
    CM_UNROLL for (uint k = 0u; k < D / CM_KRC; k++) {
        cm_stage_k(lid, k, codes, ok, h, krow);
        if (k == 0u) barrier(); /* A from every invocation (the tile's rows are the subgroup's own) */
        else CM_SG_BARRIER();
        if (!skip)
            CM_UNROLL for (uint j = 0u; j < CM_KRC / 16u; j++) {
                CM_OPD a, b;
                CM_LOAD_A(a, k * CM_KRC + 16u * j, CM_LDA);
                CM_UNROLL for (uint n = 0u; n < 2u; n++) {
                    CM_LOAD_T(b, (32u * w + 16u * n) * CM_TLD + 2u * j, CM_TLD, true);
                    acc[n] = CM_MAD(a, b, acc[n]);
                }
            }
        CM_SG_BARRIER(); /* the rows are read before the next round writes them */
    }
    CM_UNROLL for (uint n = 0u; n < 2u; n++) CM_STORE(acc[n], cm_s, 32u * w + 16u * n, G);
    CM_SG_BARRIER();
    float unit = codes ? CM_UNIT : 1.0;
    [[unroll]] for (uint r = 0u; r < NRV * 4u; r++)
        dot[r / 4u][r % 4u] = r < NR ? (cm_s[r * G + lid] + cm_s[(8u + r) * G + lid]) * (unit / sc[min(r, NR - 1u)]) : 0.0;
}
#else
shared vec4 qs_s[D * NRV];
shared uint kc_s[G * KST];
#endif

#ifndef PKV_COOPMAT
/* dot += q * s_K . the codes of word k of this invocation's tokens' K rows (staged in kc_s) */
void k_word_dot(uint k, uint lid, inout vec4 dot[TPT][NRV])
{
    uint w[TPT], wh[TPT];
    [[unroll]] for (uint u = 0u; u < TPT; u++) w[u] = kc_s[(lid + u * WG) * KST + k], wh[u] = w[u] >> 16;
    [[unroll]] for (uint cc = 0u; cc < PER; cc++)
        [[unroll]] for (uint v = 0u; v < NRV; v++) {
            vec4 q = qs_s[(k * PER + cc) * NRV + v];
            [[unroll]] for (uint u = 0u; u < TPT; u++) dot[u][v] += q * code_float(w[u], wh[u], cc * KBITS, MASK);
        }
}
#endif

/* PATTERN: the q.C table's entries of this invocation's tokens (attn_qc.comp's) */
void load_qc(bool codes, uint seq, uint head, uint tile, uint ka[TPT], out vec4 qc[TPT][NRV])
{
    [[unroll]] for (uint u = 0u; u < TPT; u++)
        [[unroll]] for (uint v = 0u; v < NRV; v++) qc[u][v] = MODE == 0u && codes ? scr4[qc_index(seq, head, tile, ka[u]) + v] : vec4(0.0);
}

void main()
{
    uint lid = gl_LocalInvocationID.x, tile = gl_WorkGroupID.y;
    uint item = gl_WorkGroupID.x, head = gl_WorkGroupID.z % pc.H, j0 = gl_WorkGroupID.z / pc.H * LPC;
    uint seq = scr[pc.item_off + 2u * item], c0 = scr[pc.item_off + 2u * item + 1u] * pc.cps;
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq);
#ifdef PKV_COOPMAT
    cm_init_a(); /* published by cm_logits' first reduction */
#endif
    for (uint j = j0; j < j0 + LPC; j++) {
    uint c = c0 + j;
    if (j >= pc.cps || c >= nb + (nw + G - 1u) / G) break; /* uniform: past the item's or the sequence's chunks */
    if (j > j0) barrier(); /* qs_s, kc_s and red_s free again */
    bool codes = c < nb && MODE != 2u, rows = c < nb && MODE == 2u; /* compressed block, FP16 mode's block */
    uint base = c < nb ? seq_block_slot(seq, head, c) * pc.block_words : 0u;
    uint w0 = codes ? 0u : (c - nb) * G, count = codes ? G : min(G, nw - w0);
    uint ka[TPT];
    vec4 qc[TPT][NRV]; /* PATTERN: q . P_K[a_t] of this invocation's tokens, loaded before the barrier */
    float zt[NR], zmax[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) zt[r] = 0.0, zmax[r] = 0.0;
    vec4 dot[TPT][NRV];
#ifdef PKV_COOPMAT /* TPT 1 */
    {
        uvec4 krow[SPLIT_KQ];
        [[unroll]] for (uint k = 0u; k < SPLIT_KQ; k++) krow[k] = codes ? blk4[(base + pc.o_kcodes) / 4u + lid * SPLIT_KQ + k] : uvec4(0u);
        ka[0] = MODE == 0u && codes ? (blk[base + pc.o_kidx + lid / 4u] >> (8u * (lid % 4u))) & 255u : 0u;
        load_qc(codes, seq, head, tile, ka, qc);
        uint h = codes ? 0u : seq_window(seq, head) * pc.window_words * 2u + (w0 + lid) * D;
        cm_logits(codes, base, lid < count, h, krow, seq, head, tile, zt, dot[0]);
    }
#else
    /* this invocation's tokens lid + u WG: their K code rows (and patterns) first, so that their
     * latency overlaps the q * s_K phase */
    if (codes) {
        [[unroll]] for (uint u = 0u; u < TPT; u++) {
            uint t = lid + u * WG;
            uvec4 krow[SPLIT_KQ];
            [[unroll]] for (uint k = 0u; k < SPLIT_KQ; k++) krow[k] = blk4[(base + pc.o_kcodes) / 4u + t * SPLIT_KQ + k];
            ka[u] = MODE == 0u ? (blk[base + pc.o_kidx + t / 4u] >> (8u * (t % 4u))) & 255u : 0u;
            [[unroll]] for (uint k = 0u; k < KRW; k++) kc_s[t * KST + k] = krow[k / 4u][k % 4u];
        }
    }
    /* q * scale * s_K,i * 2^-shift (a window chunk: q * scale) and the zero-point terms q . z_K */
    for (uint i = lid; i < D; i += WG) {
        float s = 1.0, z = 0.0;
        if (codes) {
            s = blk_hf((base + pc.o_kscale) * 2u + i) * code_factor(i, KBITS);
            z = blk_hf((base + pc.o_kzero) * 2u + i);
        }
        vec4 qv[NRV];
        [[unroll]] for (uint r = 0u; r < NRV * 4u; r++) {
            float q = r < NR && tile_row_real(tile, r) ? q_value(tile_row(seq, head, tile, r), i) * pc.scale : 0.0;
            qv[r / 4u][r % 4u] = q * s;
            if (r < NR) zt[r] += q * z;
        }
        [[unroll]] for (uint v = 0u; v < NRV; v++) qs_s[i * NRV + v] = qv[v];
    }
    /* issued here, not after the dot products: a load that waits on ka's, in flight during the
     * barrier and the dot products (after them it was a second memory round trip per workgroup) */
    load_qc(codes, seq, head, tile, ka, qc);
    wg_reduce2(zt, false, zmax, false); /* its barrier also publishes qs_s and kc_s */

    [[unroll]] for (uint u = 0u; u < TPT; u++) [[unroll]] for (uint v = 0u; v < NRV; v++) dot[u][v] = vec4(0.0);
    if ((pc.flags & ATTN_SKIP_K) != 0u) {
    } else if (codes) {
        /* a loop over the rows' words, not unrolled unless KUNROLL: NVIDIA's compiler would hoist all D qs loads */
        if (KUNROLL != 0u)
            [[unroll]] for (uint k = 0u; k < KRW; k++) k_word_dot(k, lid, dot);
        else
            [[dont_unroll]] for (uint k = 0u; k < KRW; k++) k_word_dot(k, lid, dot);
    } else { /* fp16 rows of D halves: FP16 mode's blocks, the window */
        [[unroll]] for (uint u = 0u; u < TPT; u++) {
            uint t = lid + u * WG, tt = min(t, count - 1u);
            uint h8 = (rows ? (base + pc.o_kcodes) * 2u + tt * D : seq_window(seq, head) * pc.window_words * 2u + (w0 + tt) * D) / 8u;
            for (uint k0 = 0u; k0 < D / 8u; k0 += 4u) {
                uvec4 w[4];
                [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
                    uint k = h8 + min(k0 + kk, D / 8u - 1u);
                    w[kk] = rows ? blk4[k] : win4[k];
                }
                [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
                    if (k0 + kk >= D / 8u) break;
                    [[unroll]] for (uint e = 0u; e < 4u; e++) {
                        vec2 x = unpackHalf2x16(w[kk][e]);
                        uint i = 8u * (k0 + kk) + 2u * e;
                        [[unroll]] for (uint v = 0u; v < NRV; v++) dot[u][v] += qs_s[i * NRV + v] * x.x + qs_s[(i + 1u) * NRV + v] * x.y;
                    }
                }
            }
        }
    }
#endif
    uint T = nb * G + nw, at = attn_logit_rec(item, j, tile, head);
    uint limit[NR]; /* causal: the last token each row sees */
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        limit[r] = T - pc.q_len + (tile_row(seq, head, tile, r) / pc.n_q_heads) % pc.q_len;
        zmax[r] = PKV_NEG_INF;
    }
    [[unroll]] for (uint u = 0u; u < TPT; u++) {
        uint t = lid + u * WG;
        vec4 out4[NRV];
        [[unroll]] for (uint r = 0u; r < NRV * 4u; r++) {
            float lg = PKV_NEG_INF;
            if (r < NR && t < count && c * G + t <= limit[r]) {
                lg = dot[u][r / 4u][r % 4u] + (codes ? zt[r] : 0.0);
                if (MODE == 0u && codes) lg += qc[u][r / 4u][r % 4u];
            }
            out4[r / 4u][r % 4u] = lg;
            if (r < NR) zmax[r] = max(zmax[r], lg);
        }
        [[unroll]] for (uint v = 0u; v < NRV; v++) scr4[at + t * NRV + v] = out4[v];
    }
    barrier(); /* red_s reused */
#ifdef PKV_COOPMAT /* the chunk's largest V scale, for attn_values' operand scale */
    [[unroll]] for (uint r = 0u; r < NR; r++) zt[r] = codes ? blk_hf((base + pc.o_vscale) * 2u + lid) : 0.0;
#endif
    wg_reduce2(zmax, true, zt, true);
    if (lid == 0u) {
        vec4 out4[NRV];
        [[unroll]] for (uint r = 0u; r < NRV * 4u; r++) out4[r / 4u][r % 4u] = r < NR ? zmax[r] : PKV_NEG_INF;
        [[unroll]] for (uint v = 0u; v < NRV; v++) scr4[at + G * NRV + v] = out4[v];
#ifdef PKV_COOPMAT
        scr4[at + (G + 1u) * NRV] = vec4(zt[0], 0.0, 0.0, 0.0);
#endif
    }
    }
}
