#version 450
/* Attention over the compressed cache in one pass (flash-decoding), q_len = 1 and q_len > 1 alike.
 *
 * Workgroup (item, tile, kv head): an item is a run of chunks of one sequence, a chunk being one
 * compressed block (G tokens) or up to G tokens of the fp16 window. The workgroup serves the NR
 * query rows of its tile (the GQA heads of the kv head, times the query positions), so every byte
 * of the cache is read once per tile. Per chunk:
 *   1. metadata: qs_i = q_i * s_K,i (times the power of two of the code conversion below), the
 *      zero-point term q.z_K (partial per invocation), and per token its V scale, zero, pattern
 *      index and gate bit;
 *   2. logits, one token per invocation: sum_i qs_i code_i + q.z_K + qc[a_t], codes made exact
 *      floats without a conversion instruction (bits | 0x4B000000 is the float 2^23 + bits);
 *   3. the chunk's max and the running max (which moves only when it grows by more than 2^8, so
 *      rescaling is rare), weights p = 2^(logit - m); per invocation the sums l and sum p z_t;
 *      the V histogram S[r][a_t] += p for gated tokens (shared atomics);
 *   4. V: invocation (channel group, token slice) accumulates p s_t code_t,i in registers.
 * At the end of the item: the slices' sums + sum_m S[m] P_V[m] + sum_t p_t z_t make a partial
 * (m, l, o[D]); the last workgroup of a (sequence, kv head, tile) to finish merges the partials
 * into out, so no second dispatch is needed. Logits are in log2 units (q is prescaled by
 * scale * log2(e)). The q.C_K table comes from attn_qc.comp.
 * Arithmetic is free (FMA, any order): attention is judged against an fp64 reference within a
 * tolerance (docs/NUMERICS.md), not bit for bit. */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

const uint WG = gl_WorkGroupSize.x; /* the host makes it G */
const uint CH = NR > 4u ? 8u : 16u; /* channels per invocation in the V phase */
const uint NG = (D + CH - 1u) / CH; /* channel groups */
const uint NS = WG / NG;            /* token slices */
const uint CE = (D + WG - 1u) / WG; /* channels per invocation in per-channel loops */
const uint SCAP = MODE == 0u ? CAP : 1u;
const float LAZY = 8.0;             /* the running max moves when a chunk exceeds it by 2^LAZY */

shared vec4 q_s[D * NRV];     /* q * scale * log2(e), [channel][row set] */
shared vec4 qs_s[D * NRV];    /* per chunk: q * s_K * 2^-shift (quantized) */
shared vec4 w_s[G * NRV];     /* per chunk: p * s_V (quantized) or p (fp16) */
shared uint S_s[NR * SCAP];   /* V histogram, float bits, [row][pattern] */
shared float acc_s[WG * CH];  /* end of item: the slices' sums of one row, [slice][channel] */
shared float mw_s[NR];        /* merge: one row's max and sum, then weights */
shared uint last_s;

#include "wg_reduce.glsl"

uint seq, head, tile, n_chunks, limit[8];
float m_run[8], l_part[8], pz_part[8];
float acc[8][CH]; /* V phase: rows x channels of this invocation's group */

/* The power of two the exponent trick below leaves on the code of channel c of a b-bit row,
 * 2^((c b) % 16), as an exponent (3-bit codes are assembled as integers first: 2^0). */
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

void scale_state(uint r, float alpha)
{
    l_part[r] *= alpha;
    pz_part[r] *= alpha;
    [[unroll]] for (uint c = 0u; c < CH; c++) acc[r][c] *= alpha;
}

/* Turns this invocation's logits (already holding the chunk max and the zero-point term in bm/zt)
 * into weights: updates the running max, rescales what was summed so far, returns p per row. */
void softmax_chunk(inout float lg[8], float bm[8], float zt[8], float vz, out float alpha[8])
{
    bool rescale = false;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        float top = bm[r] + zt[r];
        alpha[r] = 1.0;
        if (top > m_run[r] + LAZY) {
            alpha[r] = exp2(m_run[r] - top);
            m_run[r] = top;
            rescale = true;
        }
        if (alpha[r] != 1.0) scale_state(r, alpha[r]);
        float p = lg[r] == PKV_NEG_INF ? 0.0 : exp2(lg[r] + zt[r] - m_run[r]);
        lg[r] = p;
        l_part[r] += p;
        pz_part[r] += p * vz;
    }
    if (MODE == 0u && rescale) { /* uniform: every invocation saw the same maxima */
        for (uint e = gl_LocalInvocationID.x; e < NR * SCAP; e += WG)
            S_s[e] = floatBitsToUint(uintBitsToFloat(S_s[e]) * alpha[e / SCAP]);
        barrier();
    }
}

void hist_add(uint idx, float v)
{
    uint old = S_s[idx];
    for (;;) {
        uint prev = atomicCompSwap(S_s[idx], old, floatBitsToUint(uintBitsToFloat(old) + v));
        if (prev == old) break;
        old = prev;
    }
}

/* q.x for an fp16 row of D halves starting at half index h0 of `src` (0 blocks, 1 window) */
void fp16_dot(uint src, uint h0, out float lg[8])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    for (uint k = 0u; k < D / 8u; k++) {
        uvec4 w = src == 0u ? blk4[h0 / 8u + k] : win4[h0 / 8u + k];
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            vec2 x = unpackHalf2x16(w[j]);
            uint i = 8u * k + 2u * j;
            [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += q_s[i * NRV + v] * x.x + q_s[(i + 1u) * NRV + v] * x.y;
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* sum_i qs_i code_i for the K code row at word w0 */
void code_dot(uint w0, out float lg[8])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    const uint PER = 32u / KPB, MASK = (1u << KPB) - 1u;
    const bool WIDE = KRW % 4u == 0u; /* rows start on 16 bytes: read them 16 bytes at a time */
    for (uint k4 = 0u; k4 < (KW0 + 3u) / 4u; k4++) {
        uvec4 quad;
        if (WIDE) quad = blk4[w0 / 4u + k4];
        else
            [[unroll]] for (uint kk = 0u; kk < 4u; kk++) quad[kk] = 4u * k4 + kk < KW0 ? blk[w0 + 4u * k4 + kk] : 0u;
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
            uint k = 4u * k4 + kk, w = quad[kk], wh = w >> 16;
            uint hi = KBITS == 3u ? blk[w0 + KW0 + k / 2u] >> ((k % 2u) * 16u) : 0u;
            [[unroll]] for (uint c = 0u; c < PER; c++) {
                uint i = k * PER + c;
                if (k < KW0 && i < D) {
                    float cf = KBITS == 3u ? int_float(((w >> (2u * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                           : code_float(w, wh, c * KPB, MASK);
                    [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qs_s[i * NRV + v] * cf;
                }
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* V phase of a quantized chunk: this invocation's channel group g over the tokens of slice s */
void v_codes(uint base, uint count, uint g, uint s)
{
    const uint MASK = (1u << VPB) - 1u;
    const uint WPG = (CH * VPB + 31u) / 32u; /* plane-0 words per group (1, 2 or 4; half a word for 8 x 2 bits) */
    uint bit0 = g * CH * VPB, hbit = g * CH;
    for (uint t = s; t < count; t += NS) {
        uint row = base + pc.o_vcodes + t * VRW;
        uint wv[4];
        [[unroll]] for (uint j = 0u; j < WPG; j++) wv[j] = blk[row + bit0 / 32u + j] >> (bit0 % 32u);
        uint hi = VBITS == 3u ? blk[row + VW0 + hbit / 32u] >> (hbit % 32u) : 0u;
        vec4 wt[2];
        [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[t * NRV + v];
        [[unroll]] for (uint c = 0u; c < CH; c++) {
            uint sh = c * VPB;
            float cf = VBITS == 3u ? int_float(((wv[0] >> sh) & 3u) | (((hi >> c) & 1u) << 2))
                                   : code_float(wv[sh / 32u], wv[sh / 32u] >> 16, sh % 32u, MASK);
            [[unroll]] for (uint r = 0u; r < NR; r++) acc[r][c] += wt[r / 4u][r % 4u] * cf;
        }
    }
}

/* V phase of an fp16 chunk: CH halves per token from half index h0 + t * D + g * CH */
void v_fp16(uint src, uint h0, uint count, uint g, uint s)
{
    for (uint t = s; t < count; t += NS) {
        uint h = h0 + t * D + g * CH;
        vec4 wt[2];
        [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[t * NRV + v];
        [[unroll]] for (uint k = 0u; k < CH / 8u; k++) {
            uvec4 w = src == 0u ? blk4[h / 8u + k] : win4[h / 8u + k];
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                vec2 x = unpackHalf2x16(w[j]);
                uint c = 8u * k + 2u * j;
                /* in the units of the quantized chunks' accumulators (their power of two) */
                float f0 = code_unfactor(g * CH + c, VBITS), f1 = code_unfactor(g * CH + c + 1u, VBITS);
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    float p = wt[r / 4u][r % 4u];
                    acc[r][c] += p * (x.x * f0);
                    acc[r][c + 1u] += p * (x.y * f1);
                }
            }
        }
    }
}

/* One chunk: `count` tokens starting at token tok0; quantized block at word `base`, or fp16 rows
 * (K from half kh0, V from half vh0 of src). */
void do_chunk(bool quant, uint base, uint src, uint kh0, uint vh0, uint count, uint tok0)
{
    uint lid = gl_LocalInvocationID.x, t = lid;
    float zt[8], lg[8], vz = 0.0, vs = 1.0;
    uint va = 0u, gate = 0u;
    [[unroll]] for (uint r = 0u; r < NR; r++) zt[r] = 0.0;
    if (quant) { /* 1. metadata */
        for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) {
                float s = blk_hf(base * 2u + pc.o_kscale * 2u + i) * code_factor(i, KBITS);
                float z = blk_hf(base * 2u + pc.o_kzero * 2u + i);
                [[unroll]] for (uint v = 0u; v < NRV; v++) {
                    vec4 q = q_s[i * NRV + v];
                    qs_s[i * NRV + v] = q * s;
                    [[unroll]] for (uint j = 0u; j < 4u; j++)
                        if (4u * v + j < NR) zt[4u * v + j] += q[j] * z;
                }
            }
        }
        if (t < count) {
            vs = blk_hf(base * 2u + pc.o_vscale * 2u + t);
            vz = blk_hf(base * 2u + pc.o_vzero * 2u + t);
            if (MODE == 0u) {
                va = (blk[base + pc.o_vidx + t / 4u] >> (8u * (t % 4u))) & 255u;
                gate = (blk[base + pc.o_vmask + t / 32u] >> (t % 32u)) & 1u;
            }
        }
    }
    barrier();
    /* 2. logits of token t */
    if (t < count) {
        if (quant) {
            code_dot(base + pc.o_kcodes + t * KRW, lg);
            if (MODE == 0u) {
                uint ka = (blk[base + pc.o_kidx + t / 4u] >> (8u * (t % 4u))) & 255u;
                uint qb = qc_index(seq, head, tile, ka);
                [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] += scr4[qb + r / 4u][r % 4u];
            }
        } else {
            fp16_dot(src, kh0 + t * D, lg);
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++)
        if (t >= count || tok0 + t > limit[r]) lg[r] = PKV_NEG_INF;
    /* 3. softmax bookkeeping */
    float bm[8];
    [[unroll]] for (uint r = 0u; r < NR; r++) bm[r] = lg[r];
    wg_max_sum(bm, zt);
    float alpha[8];
    softmax_chunk(lg, bm, zt, vz, alpha);
    if (t < count) {
        vec4 wt[2];
        [[unroll]] for (uint r = 0u; r < NR; r++) wt[r / 4u][r % 4u] = lg[r] * vs;
        [[unroll]] for (uint v = 0u; v < NRV; v++) w_s[t * NRV + v] = wt[v];
        if (MODE == 0u && quant && gate != 0u)
            [[unroll]] for (uint r = 0u; r < NR; r++)
                if (lg[r] != 0.0) hist_add(r * SCAP + va, lg[r]);
    }
    barrier();
    /* 4. V */
    uint g = lid % NG, s = lid / NG;
    if (s < NS) {
        if (quant) v_codes(base, count, g, s);
        else v_fp16(src, vh0, count, g, s);
    }
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint item = gl_WorkGroupID.x;
    tile = gl_WorkGroupID.y;
    head = gl_WorkGroupID.z;
    seq = scr[pc.item_off + 2u * item];
    uint split = scr[pc.item_off + 2u * item + 1u];
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq), nsplit = seq_n_items(seq);
    uint T = nb * G + nw;
    n_chunks = nb + (nw + G - 1u) / G;

    uint row_of[8];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        row_of[r] = tile_row(seq, head, tile, r);
        limit[r] = T - pc.q_len + (row_of[r] / pc.n_q_heads) % pc.q_len; /* causal: the last token it sees */
        m_run[r] = PKV_NEG_INF;
        l_part[r] = 0.0;
        pz_part[r] = 0.0;
        [[unroll]] for (uint c = 0u; c < CH; c++) acc[r][c] = 0.0;
    }
    for (uint e = lid; e < D * NR; e += WG) {
        uint i = e / NR, r = e % NR;
        float q = tile_row_real(tile, r) ? scr_f(pc.q_off + row_of[r] * D + i) * pc.scale : 0.0;
        q_s[i * NRV + r / 4u][r % 4u] = q;
    }
    for (uint e = lid; e < D * NRV * 4u; e += WG)
        if (e % (NRV * 4u) >= NR) q_s[e / 4u][e % 4u] = 0.0; /* rows a tile does not have */
    if (MODE == 0u)
        for (uint e = lid; e < NR * SCAP; e += WG) S_s[e] = 0u;
    barrier();

    uint c1 = min(n_chunks, (split + 1u) * pc.cps);
    for (uint c = split * pc.cps; c < c1; c++) {
        if (c < nb) {
            uint base = seq_block_slot(seq, head, c) * pc.block_words;
            if (MODE == 2u) do_chunk(false, 0u, 0u, base * 2u + pc.o_kcodes * 2u, base * 2u + pc.o_vcodes * 2u, G, c * G);
            else do_chunk(true, base, 0u, 0u, 0u, G, c * G);
        } else {
            uint w0 = (c - nb) * G, wb = seq_window(seq, head) * pc.window_words * 2u;
            do_chunk(false, 0u, 1u, wb + w0 * D, wb + (pc.R + w0) * D, min(G, nw - w0), c * G);
        }
    }

    /* the item's partial: l and the zero-point sums over tokens, the slices' V sums */
    float l_tot[8], pz_tot[8];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        l_tot[r] = l_part[r];
        pz_tot[r] = pz_part[r];
    }
    wg_sum_sum(l_tot, pz_tot);
    float o[8][CE];
    uint g = lid % NG, s = lid / NG;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        if (s < NS)
            [[unroll]] for (uint c = 0u; c < CH; c++) {
                uint i = g * CH + c;
                if (i < D) acc_s[s * D + i] = acc[r][c] * code_factor(i, VBITS);
            }
        barrier();
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = pz_tot[r];
            if (i < D)
                for (uint k = 0u; k < NS; k++) sum += acc_s[k * D + i];
            o[r][e] = sum;
        }
        barrier();
    }
    if (MODE == 0u) { /* + sum_m S[m] P_V[m], over the patterns this item's tokens used */
        uint bank = seq_bank(seq);
        for (uint m = 0u; m < bank; m++) {
            float Sm[8];
            bool any = false;
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                Sm[r] = uintBitsToFloat(S_s[r * SCAP + m]);
                any = any || Sm[r] != 0.0;
            }
            if (!any) continue;
            uint pb = pattern_base(seq, head, 1u, m);
            [[unroll]] for (uint e = 0u; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) {
                    float x = chk_hf(pb + i);
                    [[unroll]] for (uint r = 0u; r < NR; r++) o[r][e] += Sm[r] * x;
                }
            }
        }
    }

    if (nsplit == 1u) { /* the whole sequence in one item: normalise and write out */
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            if (!tile_row_real(tile, r)) break;
            float inv = l_tot[r] > 0.0 ? 1.0 / l_tot[r] : 0.0;
            [[unroll]] for (uint e = 0u; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) scr[pc.out_off + row_of[r] * D + i] = floatBitsToUint(o[r][e] * inv);
            }
        }
        return;
    }
    uint slot = (((seq_part_base(seq) + split) * pc.H + head) * pc.tiles + tile) * NR;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        uint p = pc.part_off + (slot + r) * PSTRIDE;
        if (lid == 0u) {
            scrc[p] = floatBitsToUint(m_run[r]);
            scrc[p + 1u] = floatBitsToUint(l_tot[r]);
        }
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) scrc[p + 2u + i] = floatBitsToUint(o[r][e]);
        }
    }
    /* the last item of this (sequence, kv head, tile) to finish merges all of them */
    memoryBarrierBuffer();
    barrier();
    uint cnt = pc.cnt_off + (seq * pc.H + head) * pc.tiles + tile;
    if (lid == 0u) last_s = atomicAdd(scrc[cnt], 1u) == nsplit - 1u ? 1u : 0u;
    barrier();
    if (last_s == 0u) return;
    memoryBarrierBuffer();
    uint first = ((seq_part_base(seq) * pc.H + head) * pc.tiles + tile) * NR;
    uint step = pc.H * pc.tiles * NR; /* slots between consecutive splits of one row */
    for (uint r = 0u; r < NR; r++) {
        if (!tile_row_real(tile, r)) break;
        uint p0 = pc.part_off + (first + r) * PSTRIDE;
        float M = PKV_NEG_INF, L = 0.0;
        for (uint k = 0u; k < nsplit; k++) M = max(M, uintBitsToFloat(scrc[p0 + k * step * PSTRIDE]));
        for (uint k = lid; k < nsplit; k += WG) {
            uint p = p0 + k * step * PSTRIDE;
            float mk = uintBitsToFloat(scrc[p]);
            acc_s[k] = mk == PKV_NEG_INF ? 0.0 : exp2(mk - M);
        }
        barrier();
        for (uint k = 0u; k < nsplit; k++) L += acc_s[k] * uintBitsToFloat(scrc[p0 + k * step * PSTRIDE + 1u]);
        float inv = L > 0.0 ? 1.0 / L : 0.0;
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) {
                float sum = 0.0;
                for (uint k = 0u; k < nsplit; k++) sum += acc_s[k] * uintBitsToFloat(scrc[p0 + k * step * PSTRIDE + 2u + i]);
                scr[pc.out_off + row_of[r] * D + i] = floatBitsToUint(sum * inv);
            }
        }
        barrier();
    }
    if (lid == 0u) scrc[cnt] = 0u; /* ready for the next call */
}
