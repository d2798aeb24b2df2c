#version 450
/* Attention over the compressed cache in one pass (flash-decoding), q_len = 1 and q_len > 1 alike.
 *
 * Workgroup (item, tile, kv head): an item is a run of chunks of one sequence, a chunk being one
 * compressed block (G tokens) or up to G tokens of the fp16 window. The workgroup serves the NR
 * query rows of its tile (the GQA heads of the kv head, times the query positions), so every byte
 * of the cache is read once per tile. Per compressed chunk:
 *   0. every load of the chunk is issued at once (one memory round trip, not one per phase): K scales
 *      and zeros, per-token V scale, zero, pattern indices and gate bit, the token's K code row, and
 *      the invocation's share of the V codes (staged into shared memory after step 2);
 *   1. qs_i = q_i * s_K,i (times the power of two of the code conversion below) and the zero-point
 *      term q.z_K (partial per invocation);
 *   2. logits, one token per invocation: sum_i qs_i code_i + q.z_K + qc[a_t], codes made exact floats
 *      without a conversion instruction (bits | 0x4B000000 is the float 2^23 + bits);
 *   3. the chunk's max and the running max (which moves only when it grows by more than 2^8, so
 *      rescaling is rare), weights p = 2^(logit - m); per invocation the sums l and sum p z_t; the V
 *      histogram S[r][a_t] += p for gated tokens (shared atomics);
 *   4. V: invocation (channel group, token slice) accumulates p s_t code_t,i in registers.
 * At the end of the item: the slices' sums + sum_m S[m] P_V[m] + sum_t p_t z_t make a partial
 * (m, l, o[D]), merged by the last workgroup of its (sequence, kv head, tile) to finish, or by
 * attn_merge.comp. Logits are in log2 units (q is prescaled by scale * log2(e)). The q.C_K table
 * comes from attn_qc.comp. Arithmetic is free (FMA, any order): attention is judged against an fp64
 * reference within a tolerance (docs/NUMERICS.md), not bit for bit. */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

const uint WG = gl_WorkGroupSize.x; /* the host makes it G: one token per invocation */
const uint CH = VCH;                /* channels per invocation in the V phase */
const uint NG = (D + CH - 1u) / CH; /* channel groups */
const uint NS = WG / NG;            /* token slices */
const uint CE = (D + WG - 1u) / WG; /* channels per invocation in per-channel loops */
const uint SCAP = MODE == 0u ? CAP : 1u;
const uint KQ = (KRW + 3u) / 4u;    /* 16-byte words of a K code row */
/* the row is loaded at the chunk's start (as integers: glslang mis-optimises && of spec constants) */
const uint K_REGS_U = (STAGE_K == 0u ? 1u : 0u) * (KRW % 4u == 0u ? 1u : 0u) * (KQ <= 4u ? 1u : 0u);
const bool K_IN_REGS = K_REGS_U != 0u;
const uint KSEC4 = (G * KRW + 3u) / 4u; /* 16-byte words of the K code section */
const uint KQS = STAGE_K != 0u ? (KSEC4 + WG - 1u) / WG : 1u; /* 16-byte loads per invocation to stage K */
const uint VSEC = MODE == 2u || STAGE_V == 0u ? 4u : G * VRW; /* words of the staged V code section */
const uint VQ = (VSEC / 4u + WG - 1u) / WG; /* 16-byte loads per invocation to stage it */
const uint VPER = 32u / VPB;
const uint NQ4 = D / 4u;            /* channel quads, for the pattern fold */
const uint PS_A = WG / NQ4, PS_B = WG * CH / (NR * D);
const uint PS_M = PS_A < PS_B ? PS_A : PS_B;
const uint PS = PS_M > 1u ? PS_M : 1u; /* pattern slices of the fold */
const float LAZY = 8.0;

shared vec4 q_s[D * NRV];    /* q * scale * log2(e), [channel][row set] */
shared vec4 qs_s[D * NRV];   /* per chunk: q * s_K * 2^-shift */
shared vec4 qc_s[SCAP * NRV]; /* q . P_K[m] of the tile's rows */
shared vec4 w_s[G * NRV];    /* per chunk: p * s_V (quantized) or p (fp16) */
shared uint vw_s[VSEC];      /* per chunk: its V codes */
shared uvec4 kq_s[STAGE_K != 0u ? KSEC4 : 1u]; /* per chunk: its K code section (STAGE_K) */
shared uint S_s[NR * SCAP];  /* V histogram, float bits, [row][pattern] */
const uint ACC_N = WG * CH > NR * D ? WG * CH : NR * D;
shared float acc_s[ACC_N];   /* end of item: the slices' sums of one row; the fold's; merge: weights */
shared uint last_s;
shared uint vchunk_s[8];     /* the V bank's chunk slots */

#include "wg_reduce.glsl"
#define PART_WORD(i) scrc[i]
#define PART_VEC4(i) uintBitsToFloat(scrc4[(i) / 4u])
#define MERGE_W(k) acc_s[k]
#include "attn_merge.glsl"

/* The state of one item: per row the running max, this invocation's sums of p and p z_t, and its
 * V accumulators (rows x the channels of its group). */
struct item_state {
    float m[NR], l[NR], pz[NR];
    float acc[NR][CH];
    uint limit[NR]; /* causal: the last token each row sees */
};

/* What one invocation loads for a compressed chunk, all at once. */
struct chunk_loads {
    uvec4 krow[KQ];   /* its token's K code row (K_IN_REGS) */
    uvec4 vq[VQ];     /* its share of the V codes, staged to vw_s */
    uvec4 kq[KQS];    /* its share of the K codes, staged to kq_s (STAGE_K) */
    float ks[CE], kz[CE];
    float vs, vz;
    uint ka, va, gate;
};

/* The power of two the exponent trick below leaves on the code of channel c of a b-bit row,
 * 2^((c b) % 16), as an exponent (3-bit codes are assembled as integers first: 2^0). For V, c is
 * the channel within its group of CH (the group's first code is shifted to bit 0). */
uint code_shift(uint c, uint bits) { return bits == 3u || MODE == 2u ? 0u : (c * bits) % 16u; }
float code_factor(uint c, uint bits) { return uintBitsToFloat((127u - code_shift(c, bits)) << 23); }   /* 2^-shift */
float code_unfactor(uint c, uint bits) { return uintBitsToFloat((127u + code_shift(c, bits)) << 23); } /* 2^shift */

/* code * 2^(sh % 16) as an exact float, from the word w (and wh = w >> 16) */
float code_float(uint w, uint wh, uint sh, uint mask)
{
    uint src = sh < 16u ? w : wh;
    return uintBitsToFloat((src & (mask << (sh % 16u))) | 0x4B000000u) - 8388608.0;
}
float int_float(uint code) { return uintBitsToFloat(code | 0x4B000000u) - 8388608.0; }

void hist_add(uint idx, float v)
{
    uint old = S_s[idx];
    for (;;) {
        uint prev = atomicCompSwap(S_s[idx], old, floatBitsToUint(uintBitsToFloat(old) + v));
        if (prev == old) break;
        old = prev;
    }
}

void load_chunk(uint base, uint count, out chunk_loads L)
{
    uint lid = gl_LocalInvocationID.x, t = lid;
    [[unroll]] for (uint e = 0u; e < CE; e++) {
        uint i = min(lid + e * WG, D - 1u);
        L.ks[e] = blk_hf(base * 2u + pc.o_kscale * 2u + i);
        L.kz[e] = blk_hf(base * 2u + pc.o_kzero * 2u + i);
    }
    uint tt = min(t, count - 1u);
    L.vs = blk_hf(base * 2u + pc.o_vscale * 2u + tt);
    L.vz = blk_hf(base * 2u + pc.o_vzero * 2u + tt);
    L.ka = MODE == 0u ? (blk[base + pc.o_kidx + tt / 4u] >> (8u * (tt % 4u))) & 255u : 0u;
    L.va = MODE == 0u ? (blk[base + pc.o_vidx + tt / 4u] >> (8u * (tt % 4u))) & 255u : 0u;
    L.gate = MODE == 0u ? (blk[base + pc.o_vmask + tt / 32u] >> (tt % 32u)) & 1u : 0u;
    if (K_IN_REGS)
        [[unroll]] for (uint k = 0u; k < KQ; k++) L.krow[k] = blk4[(base + pc.o_kcodes) / 4u + tt * KQ + k];
    if (STAGE_K != 0u)
        [[unroll]] for (uint j = 0u; j < KQS; j++)
            L.kq[j] = blk4[(base + pc.o_kcodes) / 4u + min(lid + j * WG, KSEC4 - 1u)];
    if (STAGE_V != 0u)
        [[unroll]] for (uint j = 0u; j < VQ; j++)
            L.vq[j] = blk4[(base + pc.o_vcodes) / 4u + min(lid + j * WG, VSEC / 4u - 1u)];
}

/* Word j of the K code row of token t: from the registers, or from memory at word w0. */
uint krow_word(chunk_loads L, uint w0, uint j)
{
    if (STAGE_K != 0u) return kq_s[(w0 + j) / 4u][(w0 + j) % 4u]; /* w0: the row's first word in kq_s */
    return K_IN_REGS ? L.krow[j / 4u][j % 4u] : blk[w0 + j];
}

/* The 4 words from 4 k4 of a K code row: dot += qs . codes */
void code_quad(chunk_loads L, uint w0, uint k4, inout vec4 dot[2])
{
    const uint PER = 32u / KPB, MASK = (1u << KPB) - 1u;
    [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
        uint k = 4u * k4 + kk;
        if (k >= KW0) break;
        uint w = krow_word(L, w0, k), wh = w >> 16;
        uint hi = KBITS == 3u ? krow_word(L, w0, KW0 + k / 2u) >> ((k % 2u) * 16u) : 0u;
        [[unroll]] for (uint c = 0u; c < PER; c++) {
            uint i = k * PER + c;
            if (i < D) {
                float cf = KBITS == 3u ? int_float(((w >> (2u * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                       : code_float(w, wh, c * KPB, MASK);
                [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qs_s[i * NRV + v] * cf;
            }
        }
    }
}

/* sum_i qs_i code_i over the K code row of token t (at word w0 in memory) */
void code_dot(chunk_loads L, uint w0, out float lg[NR])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    if (K_IN_REGS) {
        [[unroll]] for (uint k4 = 0u; k4 < KQ; k4++) code_quad(L, w0, k4, dot);
    } else {
        for (uint k4 = 0u; k4 < (KW0 + 3u) / 4u; k4++) code_quad(L, w0, k4, dot);
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* q.x for an fp16 row of D halves starting at half index h0 of `src` (0 blocks, 1 window), 4 loads
 * of 16 bytes in flight */
void fp16_dot(uint src, uint h0, out float lg[NR])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    for (uint k0 = 0u; k0 < D / 8u; k0 += 4u) {
        uvec4 w[4];
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
            uint k = min(k0 + kk, D / 8u - 1u);
            w[kk] = src == 0u ? blk4[h0 / 8u + k] : win4[h0 / 8u + k];
        }
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
            if (k0 + kk >= D / 8u) break;
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                vec2 x = unpackHalf2x16(w[kk][j]);
                uint i = 8u * (k0 + kk) + 2u * j;
                [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += q_s[i * NRV + v] * x.x + q_s[(i + 1u) * NRV + v] * x.y;
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* V phase of a compressed chunk: channel group g over the tokens of slice s, codes from vw_s (or
 * from memory at word `row0`) */
void v_codes(inout item_state st, uint row0, uint count, uint g, uint s)
{
    const uint MASK = (1u << VPB) - 1u;
    const uint WPG = (CH * VPB + 31u) / 32u; /* plane-0 words per group (1, 2 or 4; half a word for 8 x 2 bits) */
    uint bit0 = g * CH * VPB, hbit = g * CH;
    for (uint t = s; t < count; t += NS) {
        uint row = t * VRW;
        uint wv[4];
        [[unroll]] for (uint j = 0u; j < WPG; j++) {
            uint a = row + bit0 / 32u + j;
            wv[j] = (STAGE_V != 0u ? vw_s[a] : blk[row0 + a]) >> (bit0 % 32u);
        }
        uint ah = row + VW0 + hbit / 32u;
        uint hi = VBITS == 3u ? (STAGE_V != 0u ? vw_s[ah] : blk[row0 + ah]) >> (hbit % 32u) : 0u;
        vec4 wt[2];
        [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[t * NRV + v];
        [[unroll]] for (uint c = 0u; c < CH; c++) {
            uint sh = c * VPB;
            float cf = VBITS == 3u ? int_float(((wv[0] >> sh) & 3u) | (((hi >> c) & 1u) << 2))
                                   : code_float(wv[sh / 32u], wv[sh / 32u] >> 16, sh % 32u, MASK);
            [[unroll]] for (uint r = 0u; r < NR; r++) st.acc[r][c] += wt[r / 4u][r % 4u] * cf;
        }
    }
}

/* V phase of an fp16 chunk: CH halves per token from half index h0 + t * D + g * CH */
void v_fp16(inout item_state st, uint src, uint h0, uint count, uint g, uint s)
{
    for (uint t = s; t < count; t += NS) {
        uint h = h0 + t * D + g * CH;
        uint w[CH / 2u];
        [[unroll]] for (uint k = 0u; k < CH / 2u; k++) w[k] = src == 0u ? blk[h / 2u + k] : win[h / 2u + k];
        vec4 wt[2];
        [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[t * NRV + v];
        [[unroll]] for (uint k = 0u; k < CH / 2u; k++) {
                vec2 x = unpackHalf2x16(w[k]);
                uint c = 2u * k;
                /* in the units of the compressed chunks' accumulators (their power of two) */
                float f0 = code_unfactor(c, VBITS), f1 = code_unfactor(c + 1u, VBITS);
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    float p = wt[r / 4u][r % 4u];
                    st.acc[r][c] += p * (x.x * f0);
                    st.acc[r][c + 1u] += p * (x.y * f1);
                }
            }
    }
}

/* Steps 3: turns this invocation's logits into weights p (in lg) given the chunk's max bm and
 * zero-point terms zt of each row; moves the running max (rescaling what was summed) when needed. */
void softmax_chunk(inout item_state st, inout float lg[NR], float bm[NR], float zt[NR], float vz)
{
    bool rescale = false;
    float alpha[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        float top = bm[r] + zt[r];
        alpha[r] = 1.0;
        if (top > st.m[r] + LAZY) {
            alpha[r] = exp2(st.m[r] - top);
            st.m[r] = top;
            rescale = true;
            st.l[r] *= alpha[r];
            st.pz[r] *= alpha[r];
            [[unroll]] for (uint c = 0u; c < CH; c++) st.acc[r][c] *= alpha[r];
        }
        float p = lg[r] == PKV_NEG_INF ? 0.0 : exp2(lg[r] + zt[r] - st.m[r]);
        lg[r] = p;
        st.l[r] += p;
        st.pz[r] += p * vz;
    }
    if (MODE == 0u && rescale) { /* uniform: every invocation saw the same maxima */
        for (uint e = gl_LocalInvocationID.x; e < NR * SCAP; e += WG)
            S_s[e] = floatBitsToUint(uintBitsToFloat(S_s[e]) * pick(alpha, e / SCAP));
        barrier();
    }
}

/* One chunk: `count` tokens from token tok0; a compressed block at word `base` (its loads in L), or
 * fp16 rows (K from half kh0, V from half vh0 of src). */
void do_chunk(inout item_state st, bool quant, chunk_loads L, uint base, uint src, uint kh0, uint vh0, uint count,
              uint tok0, uint seq, uint head, uint tile)
{
    uint lid = gl_LocalInvocationID.x, t = lid;
    float zt[NR], lg[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) zt[r] = 0.0;
    if (quant) /* 1. q * s_K and the zero-point term */
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) {
                float s = L.ks[e] * code_factor(i, KBITS);
                [[unroll]] for (uint v = 0u; v < NRV; v++) {
                    vec4 q = q_s[i * NRV + v];
                    qs_s[i * NRV + v] = q * s;
                    [[unroll]] for (uint j = 0u; j < 4u; j++)
                        if (4u * v + j < NR) zt[4u * v + j] += q[j] * L.kz[e];
                }
            }
        }
    if (quant && STAGE_K != 0u) /* the K codes (waits for their loads) */
        [[unroll]] for (uint j = 0u; j < KQS; j++) {
            uint e = lid + j * WG;
            if (e < KSEC4) kq_s[e] = L.kq[j];
        }
    barrier();
    /* 2. logits of token t */
    if (t < count) {
        if ((pc.flags & ATTN_SKIP_K) != 0u) {
            [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = 0.0;
        } else if (quant) {
            code_dot(L, STAGE_K != 0u ? t * KRW : base + pc.o_kcodes + t * KRW, lg);
            if (MODE == 0u) [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] += qc_s[L.ka * NRV + r / 4u][r % 4u];
        } else {
            fp16_dot(src, kh0 + t * D, lg);
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++)
        if (t >= count || tok0 + t > st.limit[r]) lg[r] = PKV_NEG_INF;
    /* 3. softmax bookkeeping */
    float bm[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) bm[r] = lg[r];
    wg_max_sum(bm, zt);
    softmax_chunk(st, lg, bm, zt, quant ? L.vz : 0.0);
    if (t < count) {
        vec4 wt[2];
        float vs = quant ? L.vs : 1.0;
        [[unroll]] for (uint r = 0u; r < NR; r++) wt[r / 4u][r % 4u] = lg[r] * vs;
        [[unroll]] for (uint v = 0u; v < NRV; v++) w_s[t * NRV + v] = wt[v];
        if (MODE == 0u && quant && L.gate != 0u && (pc.flags & ATTN_SKIP_HIST) == 0u)
            [[unroll]] for (uint r = 0u; r < NR; r++)
                if (lg[r] != 0.0) hist_add(r * SCAP + L.va, lg[r]);
    }
    if (quant && STAGE_V != 0u) /* the V codes arrived during the K phase */
        [[unroll]] for (uint j = 0u; j < VQ; j++) {
            uint e = lid + j * WG;
            if (e < VSEC / 4u) {
                vw_s[4u * e] = L.vq[j].x, vw_s[4u * e + 1u] = L.vq[j].y;
                vw_s[4u * e + 2u] = L.vq[j].z, vw_s[4u * e + 3u] = L.vq[j].w;
            }
        }
    barrier();
    /* 4. V */
    uint g = lid % NG, s = lid / NG;
    if (s < NS && (pc.flags & ATTN_SKIP_V) == 0u) {
        if (quant) v_codes(st, base + pc.o_vcodes, count, g, s);
        else v_fp16(st, src, vh0, count, g, s);
    }
}

/* o += sum_m S[r][m] P_V[m] over the bank, as a small matrix product: invocation (channel quad q,
 * pattern slice ps; several of them when D > 4 WG) sums over the patterns m = ps, ps + PS, ... with 8-byte loads that do not wait
 * for each other; the slices' sums meet in acc_s. */
void fold_patterns(uint bank, inout float o[NR][CE])
{
    uint lid = gl_LocalInvocationID.x;
    barrier(); /* acc_s free */
    for (uint u = lid; u < NQ4 * PS; u += WG) { /* more quads than invocations when D > 4 WG */
        uint q = u % NQ4, ps = u / NQ4;
        vec4 f[NR];
        [[unroll]] for (uint r = 0u; r < NR; r++) f[r] = vec4(0.0);
        for (uint m = ps; m < bank; m += PS) {
            uint h = vchunk_s[m / 32u] * pc.chunk_words * 2u + 32u * D + (m % 32u) * D + 4u * q; /* half index */
            uvec2 w = chk2[h / 4u];
            vec4 x = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
            [[unroll]] for (uint r = 0u; r < NR; r++) f[r] += uintBitsToFloat(S_s[r * SCAP + m]) * x;
        }
        [[unroll]] for (uint r = 0u; r < NR; r++)
            [[unroll]] for (uint j = 0u; j < 4u; j++) acc_s[(ps * NR + r) * D + 4u * q + j] = f[r][j];
    }
    barrier();
    [[unroll]] for (uint e = 0u; e < CE; e++) {
        uint i = lid + e * WG;
        if (i < D)
            [[unroll]] for (uint r = 0u; r < NR; r++)
                for (uint k = 0u; k < PS; k++) o[r][e] += acc_s[(k * NR + r) * D + i];
    }
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint item = gl_WorkGroupID.x, tile = gl_WorkGroupID.y, head = gl_WorkGroupID.z;
    uint seq = scr[pc.item_off + 2u * item], split = scr[pc.item_off + 2u * item + 1u];
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq), nsplit = seq_n_items(seq);
    uint T = nb * G + nw, n_chunks = nb + (nw + G - 1u) / G;
    uint slots = seq_table(seq) + head * nb; /* the kv head's block slots */

    item_state st;
    uint row_of[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        row_of[r] = tile_row(seq, head, tile, r);
        st.limit[r] = T - pc.q_len + (row_of[r] / pc.n_q_heads) % pc.q_len;
        st.m[r] = PKV_NEG_INF;
        st.l[r] = 0.0;
        st.pz[r] = 0.0;
        [[unroll]] for (uint c = 0u; c < CH; c++) st.acc[r][c] = 0.0;
    }
    for (uint e = lid; e < D * NRV * 4u; e += WG) {
        uint i = e / (NRV * 4u), r = e % (NRV * 4u);
        float q = r < NR && tile_row_real(tile, r) ? scr_f(pc.q_off + tile_row(seq, head, tile, r) * D + i) * pc.scale : 0.0;
        q_s[i * NRV + r / 4u][r % 4u] = q;
    }
    if (MODE == 0u) {
        if (lid < 8u) vchunk_s[lid] = lid * 32u < seq_bank(seq) ? seq_chunk(seq, head, lid) : 0u;
        for (uint e = lid; e < NR * SCAP; e += WG) S_s[e] = 0u;
        uint bank = seq_bank(seq);
        for (uint e = lid; e < bank * NRV; e += WG) qc_s[e] = scr4[qc_index(seq, head, tile, 0u) + e];
    }
    barrier();

    /* Chunks c0 .. c1-1; a compressed chunk's block slot is read one chunk ahead. (Loading a whole
     * chunk ahead, double-buffered in registers, measured no faster on an H200 and costs registers.) */
    uint c0 = split * pc.cps, c1 = min(n_chunks, c0 + pc.cps);
    uint slot = c0 < nb ? scr[slots + c0] : 0u;
    for (uint c = c0; c < c1; c++) {
        uint next = c + 1u < min(c1, nb) ? scr[slots + c + 1u] : 0u;
        chunk_loads cur;
        if (MODE != 2u && c < nb) load_chunk(slot * pc.block_words, G, cur);
        if (c < nb) {
            uint base = slot * pc.block_words;
            if (MODE == 2u) do_chunk(st, false, cur, 0u, 0u, base * 2u + pc.o_kcodes * 2u, base * 2u + pc.o_vcodes * 2u, G, c * G, seq, head, tile);
            else do_chunk(st, true, cur, base, 0u, 0u, 0u, G, c * G, seq, head, tile);
        } else {
            uint w0 = (c - nb) * G, wb = seq_window(seq, head) * pc.window_words * 2u;
            do_chunk(st, false, cur, 0u, 1u, wb + w0 * D, wb + (pc.R + w0) * D, min(G, nw - w0), c * G, seq, head, tile);
        }
        slot = next;
    }

    /* the item's partial: l and the zero-point sums over tokens, the slices' V sums */
    wg_sum_sum(st.l, st.pz);
    float o[NR][CE];
    uint g = lid % NG, s = lid / NG;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        barrier(); /* acc_s free again */
        if (s < NS)
            [[unroll]] for (uint c = 0u; c < CH; c++) {
                uint i = g * CH + c;
                if (i < D) acc_s[s * D + i] = st.acc[r][c] * code_factor(c, VBITS);
            }
        barrier();
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = st.pz[r];
            if (i < D)
                for (uint k = 0u; k < NS; k++) sum += acc_s[k * D + i];
            o[r][e] = sum;
        }
    }
    if (MODE == 0u) fold_patterns(seq_bank(seq), o);

    if (nsplit == 1u) { /* the whole sequence in one item: normalise and write out */
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            if (!tile_row_real(tile, r)) break;
            float inv = st.l[r] > 0.0 ? 1.0 / st.l[r] : 0.0;
            [[unroll]] for (uint e = 0u; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) scr[pc.out_off + row_of[r] * D + i] = floatBitsToUint(o[r][e] * inv);
            }
        }
        return;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        uint p = part_slot(seq, split, head, tile, r);
        if (lid == 0u) {
            scrc[p] = floatBitsToUint(st.m[r]);
            scrc[p + 1u] = floatBitsToUint(st.l[r]);
        }
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) scrc[p + 4u + i] = floatBitsToUint(o[r][e]);
        }
    }
    if ((pc.flags & (ATTN_SEPARATE_MERGE | ATTN_SKIP_MERGE)) != 0u) return;
    /* the last item of this (sequence, kv head, tile) to finish merges all of them */
    memoryBarrierBuffer();
    barrier();
    uint cnt = pc.cnt_off + (seq * pc.H + head) * pc.tiles + tile;
    if (lid == 0u) last_s = atomicAdd(scrc[cnt], 1u) == nsplit - 1u ? 1u : 0u;
    barrier();
    if (last_s == 0u) return;
    memoryBarrierBuffer();
    merge_rows(seq, head, tile, nsplit);
    if (lid == 0u) scrc[cnt] = 0u; /* ready for the next call */
}
