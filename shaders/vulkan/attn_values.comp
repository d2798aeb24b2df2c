#version 450
/* Attention in two passes, pass 2 of 2 (attn_logits.comp wrote the logits): one workgroup per (item,
 * tile, kv head), as the one-pass kernel. The item's maximum per row comes first, from its chunks'
 * maxima, so that no running maximum and no rescaling are needed. Per chunk, with the next chunk's loads
 * issued during this one's V phase: invocation t turns its token's logits into weights p = 2^(logit - M),
 * adds p to l, p z_t to the zero-point sums and (PATTERN, gated tokens) to the V histogram, and stages
 * p s_t and its V code row in shared memory; then invocation (channel group, token slice) accumulates
 * p s_t code_t,i in registers. At the end of the item: as attn_decode.comp (slices' sums, pattern fold,
 * partial result or output, merge by the last workgroup). */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"
#include "attn_codes.glsl"
#include "attn_split.glsl"

const uint WG = gl_WorkGroupSize.x; /* G: one token per invocation */
const uint CH = VCH;                /* channels per invocation in the V phase (the host: D % CH == 0) */
const uint NG = D / CH;             /* channel groups */
const uint NS = WG / NG;            /* token slices (the host: NG <= WG) */
const uint CE = (D + WG - 1u) / WG; /* channels per invocation in per-channel loops */
const uint SCAP = MODE == 0u ? CAP : 1u;
#ifdef PKV_COOPMAT
const uint VST = MODE == 2u ? 1u : VRW + 1u; /* words of a staged V code row (padded: a subgroup reads 32 rows' word k) */
const uint ACC_M = WG * CH > NR * D ? WG * CH : NR * D;
const uint ACC_N = ACC_M > 16u * D ? ACC_M : 16u * D; /* also O at the end of an item */
#else
const uint VST = MODE == 2u ? 1u : VRW; /* words of a staged V code row */
const uint ACC_N = WG * CH > NR * D ? WG * CH : NR * D;
#endif
#define LID gl_LocalInvocationID.x

shared uint vw_s[G * VST];      /* the chunk's V code rows */
#ifndef PKV_COOPMAT
shared vec4 w_s[G * NRV];       /* the chunk's weights p s_t (window: p) */
#endif
/* PATTERN's V histogram S[r][m] (the sum of p over a pattern's gated tokens): a chunk's adds in fixed
 * point, units of 2^-24, by integer atomics whose results nobody waits for (p <= 1: a chunk of G <= 256
 * tokens stays below 2^32), folded into the item's float sums after each chunk. A weight is rounded to
 * 2^-24 of the item's largest, so S is within G 2^-25 per chunk of its value (docs/NUMERICS.md). */
shared uint Sq_s[NR * SCAP];
shared float Sf_s[NR * SCAP];
const float HIST_UNIT = 16777216.0; /* 2^24 */
shared float acc_s[ACC_N];      /* end of item: the slices' sums, the fold's, the merge's weights */
shared uint vchunk_s[8];        /* the V bank's chunk slots */
float acc_get(uint k) { return acc_s[k]; }
void acc_set(uint k, float v) { acc_s[k] = v; }

#include "wg_reduce.glsl"
float hist_get(uint idx) { return Sf_s[idx]; }
#include "attn_fold.glsl"
#define PART_WORD(i) scrc[i]
#define PART_VEC4(i) uintBitsToFloat(scrc4[(i) / 4u])
#define MERGE_GET(k) acc_get(k)
#define MERGE_SET(k, v) acc_set(k, v)
#include "attn_merge.glsl"

/* acc += wt * codes of this invocation's channel group g, V code row at word `row` of vw_s */
void v_codes(inout float acc[NR][CH], uint row, vec4 wt[NRV], uint g)
{
    const uint MASK = (1u << VBITS) - 1u;
    const uint WPG = (CH * VBITS + 31u) / 32u; /* words per group (part of one, or whole ones) */
    uint bit0 = g * CH * VBITS;
    uint wv[WPG];
    [[unroll]] for (uint q = 0u; q < WPG; q++) wv[q] = vw_s[row + bit0 / 32u + q] >> (bit0 % 32u);
    [[unroll]] for (uint c = 0u; c < CH; c++) {
        uint sh = c * VBITS;
        float cf = code_float(wv[sh / 32u], wv[sh / 32u] >> 16, sh % 32u, MASK);
        [[unroll]] for (uint r = 0u; r < NR; r++) acc[r][c] += wt[r / 4u][r % 4u] * cf;
    }
}

/* acc += wt * the fp16 V of one token (its CH halves from half index h of the window, or of FP16 mode's
 * blocks), in the units of the compressed chunks' accumulators (their powers of two) */
void v_fp16(inout float acc[NR][CH], bool window, uint h, vec4 wt[NRV])
{
    [[unroll]] for (uint k = 0u; k < CH / 2u; k++) {
        vec2 x = unpackHalf2x16(window ? win[h / 2u + k] : blk[h / 2u + k]);
        uint c = 2u * k;
        float f0 = code_unfactor(c, VBITS), f1 = code_unfactor(c + 1u, VBITS);
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            float p = wt[r / 4u][r % 4u];
            acc[r][c] += p * (x.x * f0);
            acc[r][c + 1u] += p * (x.y * f1);
        }
    }
}

/* vec4 i of the logit records (attn_logits wrote them), through the read-only alias with ATTN_SCRATCH_RO */
vec4 logit_vec4(uint i) { return (pc.flags & ATTN_SCRATCH_RO) != 0u ? scro4[i] : scr4[i]; }

uint block_slot(uint seq, uint head, uint c, uint nb) { return c < nb ? seq_block_slot(seq, head, c) : 0u; }

#ifdef PKV_COOPMAT
/* O += A B (A = the chunk's p s_t, attn_split_cm.glsl): in rounds of 64 channels, subgroup w owns the
 * 16 channels k 64 + 16 w of round k, for which it converts B from the staged code rows (or reads the
 * window's fp16 rows) into a tile of its own, CM_KT tokens at a time: no workgroup barrier inside a
 * chunk's product. */
const uint CM_VRC = 64u, CM_KT = 32u; /* channels per round (4 subgroups x 16), tokens per tile */
const uint CM_VLD = 3u;               /* a tile row: 16 halves + 8 of padding, in 16-byte words */
shared uvec4 cm_vt[(WG / 32u) * CM_KT * CM_VLD];
#define CM_TILE cm_vt
#include "attn_split_cm.glsl"

/* Subgroup w's tile for round k, tokens t0..t0 + CM_KT - 1: their codes in tile order, or (a window
 * chunk) their fp16 rows at half index hw + u D, zeros past count */
void cm_stage_v(uint k, uint t0, bool codes, uint hw, uint count)
{
    const uint PER = 32u / VBITS, HALF = PER / 2u, WS = 16u * VBITS / 32u; /* code words of 16 channels */
    uint w = LID / 32u, l = LID % 32u, c0 = k * CM_VRC + 16u * w;
    [[unroll]] for (uint e = 0u; e < CM_KT / 32u; e++) {
        uint u = t0 + l + 32u * e, row = (w * CM_KT + l + 32u * e) * CM_VLD;
        uvec4 x0 = uvec4(0u), x1 = uvec4(0u);
        if (codes) {
            uint pr[8];
            [[unroll]] for (uint q = 0u; q < WS; q++) {
                uint wd = vw_s[u * VST + c0 * VBITS / 32u + q];
                [[unroll]] for (uint c = 0u; c < HALF; c++) pr[q * HALF + c] = cm_pair(wd, c, VBITS);
            }
            x0 = uvec4(pr[0], pr[1], pr[2], pr[3]), x1 = uvec4(pr[4], pr[5], pr[6], pr[7]);
        } else if (u < count) {
            uint h8 = (hw + u * D + c0) / 8u;
            x0 = win4[h8], x1 = win4[h8 + 1u];
        }
        cm_vt[row] = x0, cm_vt[row + 1u] = x1;
    }
}
#endif

void main()
{
    uint lid = LID, item = gl_WorkGroupID.x, tile = gl_WorkGroupID.y, head = gl_WorkGroupID.z;
    uint seq = scr[pc.item_off + 2u * item], split = scr[pc.item_off + 2u * item + 1u];
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq), nsplit = seq_n_items(seq);
    uint n_chunks = nb + (nw + G - 1u) / G;
    uint c0 = split * pc.cps, c1 = min(n_chunks, c0 + pc.cps);
    uint wb = nw > 0u ? seq_window(seq, head) * pc.window_words * 2u : 0u;

    /* the item's maximum per row, from its chunks' */
    float M[NR], l[NR], pz[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) M[r] = PKV_NEG_INF, l[r] = 0.0, pz[r] = 0.0;
    for (uint c = c0 + lid; c < c1; c += WG) {
        uint at = attn_logit_rec(item, c - c0, tile, head) + G * NRV;
        [[unroll]] for (uint r = 0u; r < NR; r++) M[r] = max(M[r], logit_vec4(at + r / 4u)[r % 4u]);
#ifdef PKV_COOPMAT /* l: the item's largest V scale, for now */
        [[unroll]] for (uint r = 0u; r < NR; r++) l[r] = max(l[r], scr4[at + NRV].x);
#endif
    }
    if (MODE == 0u) {
        if (lid < 8u) vchunk_s[lid] = lid * 32u < seq_bank(seq) ? seq_chunk(seq, head, lid) : 0u;
        for (uint e = lid; e < NR * SCAP; e += WG) Sq_s[e] = 0u, Sf_s[e] = 0.0;
    }
#ifdef PKV_COOPMAT
    cm_init_a(); /* published by the reduction's barrier */
    wg_reduce2(M, true, l, true);
    /* A of a code chunk is p s_t sv: its largest element in [2^13, 2^14), so that fp16's lo parts keep
     * their precision whatever the V scales (p <= 1); a window chunk's is p 2^13 */
    const float sv = cm_row_scale(l[0]), SW = 8192.0;
    [[unroll]] for (uint r = 0u; r < NR; r++) l[r] = 0.0;
#else
    wg_reduce2(M, true, l, false); /* l stays 0 */
#endif

#ifdef PKV_COOPMAT
    CM_ACC oc[2], ow[2]; /* O of the code chunks (units of 2^-24, tile order) and of the window's (D <= 128) */
    oc[0] = oc[1] = ow[0] = ow[1] = CM_ACC_ZERO;
#else
    float acc[NR][CH];
    [[unroll]] for (uint r = 0u; r < NR; r++) [[unroll]] for (uint c = 0u; c < CH; c++) acc[r][c] = 0.0;
#endif
    uint g = lid % NG, s = lid / NG;

    /* chunk c's loads, for this invocation's token; issued one chunk ahead */
    vec4 lg[NRV];
    uvec4 vrow[SPLIT_VQ];
    float vs = 1.0, vz = 0.0;
    uint va = 0u, gate = 0u;
    uint slot_c = block_slot(seq, head, c0, nb), slot_n = block_slot(seq, head, c0 + 1u, nb);
#define LOAD_CHUNK(c, slot)                                                                               \
    {                                                                                                     \
        uint at_ = attn_logit_rec(item, (c) - c0, tile, head) + lid * NRV, b_ = (slot) * pc.block_words; \
        [[unroll]] for (uint v = 0u; v < NRV; v++) lg[v] = logit_vec4(at_ + v);                           \
        if ((c) < nb && MODE != 2u) {                                                                     \
            [[unroll]] for (uint k = 0u; k < SPLIT_VQ; k++) vrow[k] = blk4[(b_ + pc.o_vcodes) / 4u + lid * SPLIT_VQ + k]; \
            vs = blk_hf((b_ + pc.o_vscale) * 2u + lid);                                                   \
            vz = blk_hf((b_ + pc.o_vzero) * 2u + lid);                                                    \
            if (MODE == 0u) {                                                                             \
                va = (blk[b_ + pc.o_vidx + lid / 4u] >> (8u * (lid % 4u))) & 255u;                        \
                gate = (blk[b_ + pc.o_vmask + lid / 32u] >> (lid % 32u)) & 1u;                            \
            }                                                                                             \
        }                                                                                                 \
    }
    if (c0 < c1) LOAD_CHUNK(c0, slot_c);
    for (uint c = c0; c < c1; c++) {
        bool codes = c < nb && MODE != 2u;
        uint base_c = slot_c * pc.block_words; /* the chunk's block (FP16 mode's V rows are read from it below) */
        /* this invocation's token: its V code row staged, its weights */
        if (codes) [[unroll]] for (uint k = 0u; k < SPLIT_VQ; k++) {
            uint a = lid * VST + 4u * k;
            vw_s[a] = vrow[k].x, vw_s[a + 1u] = vrow[k].y, vw_s[a + 2u] = vrow[k].z, vw_s[a + 3u] = vrow[k].w;
        }
        float p[NR];
        vec4 wt[NRV];
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            float x = lg[r / 4u][r % 4u];
            p[r] = x == PKV_NEG_INF ? 0.0 : exp2(x - M[r]);
            l[r] += p[r];
            pz[r] += codes ? p[r] * vz : 0.0;
            wt[r / 4u][r % 4u] = p[r] * (codes ? vs : 1.0);
        }
#ifdef PKV_COOPMAT
        [[unroll]] for (uint r = 0u; r < NR; r++) cm_put(r, lid, wt[r / 4u][r % 4u] * (codes ? sv : SW));
#else
        [[unroll]] for (uint v = 0u; v < NRV; v++) w_s[lid * NRV + v] = wt[v];
#endif
        if (MODE == 0u && codes && gate != 0u && (pc.flags & ATTN_SKIP_HIST) == 0u)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                uint q = uint(p[r] * HIST_UNIT + 0.5);
                if (q != 0u) atomicAdd(Sq_s[r * SCAP + va], q);
            }
        /* the next chunk's loads, in flight during this chunk's V phase: issued after the barrier below
         * (PREFETCH, the default: no barrier between them and the V sums they overlap) or before it (0:
         * sessions 14-16). The same speed on an H100 (bench/RESULTS.md, session 17): barriers do not
         * make NVIDIA wait for the loads in flight. */
        uint slot_nn = block_slot(seq, head, c + 2u, nb);
        if (PREFETCH == 0u && c + 1u < c1) LOAD_CHUNK(c + 1u, slot_n);
        barrier();
        if (PREFETCH != 0u && c + 1u < c1) LOAD_CHUNK(c + 1u, slot_n);
        slot_c = slot_n, slot_n = slot_nn;
        if (MODE == 0u && codes) /* the chunk's histogram into the item's (the adds are done; the next chunk's come after the barrier below) */
            for (uint e = lid; e < NR * SCAP; e += WG) {
                uint q = Sq_s[e];
                if (q != 0u) Sf_s[e] += float(q) * (1.0 / HIST_UNIT), Sq_s[e] = 0u;
            }
        /* V: channel group g over the tokens of slice s */
        uint count = codes ? G : min(G, nw - (c - nb) * G);
#ifdef PKV_COOPMAT
        if ((pc.flags & ATTN_SKIP_V) == 0u)
            CM_UNROLL for (uint k = 0u; k < D / CM_VRC; k++)
                CM_UNROLL for (uint t0 = 0u; t0 < G; t0 += CM_KT) {
                    cm_stage_v(k, t0, codes, wb + (pc.R + (c - nb) * G) * D, count);
                    CM_SG_BARRIER();
                    CM_UNROLL for (uint j = 0u; j < CM_KT / 16u; j++) {
                        CM_OPD a, b;
                        CM_LOAD_A(a, t0 + 16u * j, CM_LDA);
                        CM_LOAD_T(b, ((lid / 32u) * CM_KT + 16u * j) * CM_VLD, CM_VLD, false);
                        if (codes) oc[k] = CM_MAD(a, b, oc[k]);
                        else ow[k] = CM_MAD(a, b, ow[k]);
                    }
                    CM_SG_BARRIER(); /* the tile is read before it is written again */
                }
#else
        if ((pc.flags & ATTN_SKIP_V) == 0u && s < NS)
            for (uint u = s; u < count; u += NS) {
                [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[u * NRV + v];
                if (codes) v_codes(acc, u * VST, wt, g);
                else if (c < nb) v_fp16(acc, false, (base_c + pc.o_vcodes) * 2u + u * D + g * CH, wt); /* FP16 mode */
                else v_fp16(acc, true, wb + (pc.R + (c - nb) * G + u) * D + g * CH, wt);
            }
#endif
        barrier();
    }

    /* the item's partial: l and the zero-point sums over tokens, the slices' V sums */
    wg_sum_sum(l, pz);
    float o[NR][CE];
#ifdef PKV_COOPMAT
    /* O of the code chunks, then of the window's, through acc_s: row r is O[r] + O[8 + r] */
    [[unroll]] for (uint r = 0u; r < NR; r++) [[unroll]] for (uint e = 0u; e < CE; e++) o[r][e] = pz[r];
    [[unroll]] for (uint part = 0u; part < 2u; part++) {
        if (part == 1u && c1 <= nb) break; /* uniform: no window chunk in this item */
        barrier(); /* acc_s free */
        CM_UNROLL for (uint k = 0u; k < D / CM_VRC; k++) {
            if (part == 0u) CM_STORE(oc[k], acc_s, k * CM_VRC + 16u * (lid / 32u), D);
            else CM_STORE(ow[k], acc_s, k * CM_VRC + 16u * (lid / 32u), D);
        }
        barrier();
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG, src = part == 0u ? cm_pos(i, 32u / VBITS) : i;
            if (i < D)
                [[unroll]] for (uint r = 0u; r < NR; r++)
                    o[r][e] += (acc_get(r * D + src) + acc_get((8u + r) * D + src)) * (part == 0u ? CM_UNIT / sv : 1.0 / SW);
        }
    }
#else
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        barrier(); /* acc_s free again */
        if (s < NS)
            [[unroll]] for (uint c = 0u; c < CH; c++) acc_set(s * D + g * CH + c, acc[r][c] * code_factor(c, VBITS));
        barrier();
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = pz[r];
            if (i < D)
                for (uint k = 0u; k < NS; k++) sum += acc_get(k * D + i);
            o[r][e] = sum;
        }
    }
#endif
    if (MODE == 0u && (pc.flags & ATTN_SKIP_FOLD) == 0u) fold_patterns(seq_bank(seq), o);

    if (nsplit == 1u) { /* the whole sequence in one item: normalise and write out */
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            if (!tile_row_real(tile, r)) break;
            float inv = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
            [[unroll]] for (uint e = 0u; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) scr[pc.out_off + tile_row(seq, head, tile, r) * D + i] = floatBitsToUint(o[r][e] * inv);
            }
        }
        return;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        uint pp = part_slot(seq, split, head, tile, r);
        if (lid == 0u) {
            scrc[pp] = floatBitsToUint(M[r]);
            scrc[pp + 1u] = floatBitsToUint(l[r]);
        }
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) scrc[pp + 4u + i] = floatBitsToUint(o[r][e]);
        }
    }
    if ((pc.flags & (ATTN_SEPARATE_MERGE | ATTN_SKIP_MERGE)) != 0u) return;
    merge_if_last(seq, head, tile, nsplit);
}
