#version 450
/* Decode attention, split-K (flash-decoding): workgroup (split, row tile, sequence * kv head)
 * reads a range of the kv head's blocks (or a tile of its fp16 window) once for all the query rows
 * of the tile (the GQA heads, and for q_len > 1 the query positions) and writes a partial result:
 * running max m, sum l, acc[i] = sum_t p_t (z_t + s_t code_t,i), and the V histogram S[pattern].
 * Everything is summed in a fixed order, so a result is reproducible run to run.
 * Logits never materialise K: q.s per block, the zero-point term once per block, and qc[a_t] from
 * the q.C table (made by the attn_qc pre-pass, held in shared memory here). Per-row reductions are segmented over the workgroup (subgroup ops where the device has
 * them, shared memory otherwise: seg_reduce.glsl). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

const uint WG = gl_WorkGroupSize.x;
const uint CPT = (D + WG - 1u) / WG;     /* channels per invocation */
const uint SCAP = MODE == 0u ? CAP : 1u;
const uint SEG = WG / NQ;                /* invocations per row in segmented loops */

shared float q_s[D][NQ];   /* scale * q; rows innermost so a channel's rows load together */
shared float qs_s[D][NQ];  /* scale * q * s_g (per block) */
shared float p_s[G][NQ];   /* logits, then p * s_t */
shared float S_s[NQ][SCAP]; /* V histogram: sum of p over gated tokens per pattern */
shared float qc_s[SCAP][NQ]; /* scale * q . P_K[m] of the tile's rows */
shared float vs_s[G], vz_s[G];
shared uint va_s[G];       /* V pattern index | gate bit << 8 */
shared float m_s[NQ], alpha_s[NQ], zt_s[NQ], pz_s[NQ];
shared uint limit_s[NQ], row_s[NQ];

#include "seg_reduce.glsl"

uint seq, head;
float acc[NQ][CPT];
float l_run, pz_run; /* per row, held by every invocation of the row's segment */

uint vcode(uint base, uint t, uint i) /* V code of token t, channel i, block at word base */
{
    uint w0 = base + pc.o_vcodes + t * VRW;
    uint lo = (blk[w0 + pkv_code_word(i, VPB0)] >> pkv_code_shift(i, VPB0)) & ((1u << VPB0) - 1u);
    if (VBITS == 3u) lo |= ((blk[w0 + VW0 + (i >> 5)] >> (i & 31u)) & 1u) << 2;
    return lo;
}

/* The V histogram of one block, without atomics: the first gated token of each pattern sums p over
 * the block's gated tokens of that pattern (ascending, so results are reproducible) and adds it. */
void histogram(uint lid)
{
    for (uint t = lid; t < G; t += WG) {
        uint key = va_s[t];
        if ((key & 256u) == 0u) continue;
        bool first = true;
        for (uint u = 0u; u < t && first; u++) first = va_s[u] != key;
        if (!first) continue;
        float sum[NQ];
        for (uint r = 0u; r < NQ; r++) sum[r] = 0.0;
        for (uint u = t; u < G; u++)
            if (va_s[u] == key)
                for (uint r = 0u; r < NQ; r++) sum[r] += p_s[u][r];
        for (uint r = 0u; r < NQ; r++) S_s[r][key & 255u] += sum[r];
    }
    barrier();
}

/* p_s = p * s_t, so that accumulating V needs one multiply-add per code */
void scale_by_v(uint lid)
{
    for (uint e = lid; e < G * NQ; e += WG) p_s[e / NQ][e % NQ] *= vs_s[e / NQ];
    barrier();
}

/* Online softmax over the `count` logits in p_s: new running max per row, alpha, p_s = p = exp(l - m)
 * folded into l and (quantized blocks) the zero-point sum and the V histogram. */
void softmax_block(uint lid, uint count, bool quant)
{
    uint r = lid / SEG, j = lid % SEG;
    float bm = PKV_NEG_INF;
    for (uint t = j; t < count; t += SEG) bm = max(bm, p_s[t][r]);
    bm = seg_max(bm, lid);
    float mo = m_s[r], mn = max(mo, bm);
    float alpha = mo == PKV_NEG_INF ? 0.0 : exp(mo - mn);
    barrier(); /* every invocation has read m_s */
    if (j == 0u) {
        m_s[r] = mn;
        alpha_s[r] = alpha;
    }
    if (MODE == 0u && quant && alpha != 1.0)
        for (uint m = j; m < SCAP; m += SEG) S_s[r][m] *= alpha;
    barrier();
    float l = 0.0, pz = 0.0;
    for (uint t = j; t < count; t += SEG) {
        float lg = p_s[t][r];
        float p = lg == PKV_NEG_INF ? 0.0 : exp(lg - mn);
        l += p;
        if (quant) pz += p * vz_s[t];
        p_s[t][r] = p;
    }
    l = seg_sum(l, lid);
    pz = seg_sum(pz, lid);
    l_run = l_run * alpha + l;
    pz_run = pz_run * alpha + pz;
    barrier();
    if (MODE == 0u && quant) histogram(lid);
    if (quant) scale_by_v(lid);
}

/* acc[r][i] = acc * alpha + sum_t p_s[t][r] * value(t, i); quantized: value = code, p_s = p * s_t */
void accumulate(uint lid, uint count, uint base, uint kind)
{
    for (uint c = 0u; c < CPT; c++) {
        uint i = lid + c * WG;
        if (i >= D) break;
        for (uint r = 0u; r < NQ; r++) acc[r][c] *= alpha_s[r];
        for (uint t = 0u; t < count; t++) {
            float x;
            if (kind == 0u) x = float(vcode(base, t, i));
            else if (kind == 1u) x = blk_hf(base * 2u + pc.o_vcodes * 2u + t * D + i);
            else x = win_hf(base + pc.R * D + t * D + i);
            for (uint r = 0u; r < NQ; r++) acc[r][c] += p_s[t][r] * x;
        }
    }
    barrier();
}

void do_block(uint lid, uint b, uint tok0)
{
    uint base = seq_block_slot(seq, head, b) * pc.block_words;
    if (MODE == 2u) { /* fp16 block: plain dot products */
        for (uint t = lid; t < G; t += WG) {
            float dot[NQ];
            for (uint r = 0u; r < NQ; r++) dot[r] = 0.0;
            uint kb = base + pc.o_kcodes + t * (D / 2u);
            for (uint w = 0u; w < D / 2u; w++) {
                uint kw = blk[kb + w];
                vec2 x = unpackHalf2x16(kw);
                float x0 = x.x, x1 = x.y;
                for (uint r = 0u; r < NQ; r++) dot[r] += q_s[2u * w][r] * x0 + q_s[2u * w + 1u][r] * x1;
            }
            for (uint r = 0u; r < NQ; r++) p_s[t][r] = tok0 + t <= limit_s[r] ? dot[r] : PKV_NEG_INF;
        }
        barrier();
        softmax_block(lid, G, false);
        accumulate(lid, G, base, 1u);
        return;
    }
    /* block metadata, q * s per channel, and the zero-point term once per block */
    for (uint t = lid; t < G; t += WG) {
        vs_s[t] = blk_hf(base * 2u + pc.o_vscale * 2u + t);
        vz_s[t] = blk_hf(base * 2u + pc.o_vzero * 2u + t);
        if (MODE == 0u) {
            uint a = (blk[base + pc.o_vidx + t / 4u] >> (8u * (t % 4u))) & 255u;
            uint gate = (blk[base + pc.o_vmask + t / 32u] >> (t % 32u)) & 1u;
            va_s[t] = a | (gate << 8);
        }
    }
    for (uint e = lid; e < NQ * D; e += WG) {
        uint r = e / D, i = e % D;
        qs_s[i][r] = q_s[i][r] * blk_hf(base * 2u + pc.o_kscale * 2u + i);
    }
    uint r0 = lid / SEG, j0 = lid % SEG;
    float zt = 0.0;
    for (uint i = j0; i < D; i += SEG) zt += q_s[i][r0] * blk_hf(base * 2u + pc.o_kzero * 2u + i);
    zt = seg_sum(zt, lid); /* the row's zero-point term, known to its segment */
    if (j0 == 0u) zt_s[r0] = zt;
    barrier();
    for (uint t = lid; t < G; t += WG) {
        /* walk the row one 32-bit word at a time: no indexed register arrays */
        uint w0 = base + pc.o_kcodes + t * KRW;
        float dot[NQ];
        for (uint r = 0u; r < NQ; r++) dot[r] = 0.0;
        const uint PER = 32u / KPB0; /* channels per plane-0 word */
        /* plane-0 words in 16-byte loads where every row starts 16-byte aligned */
        const bool WIDE = KW0 % 4u == 0u && KRW % 4u == 0u;
        for (uint k4 = 0u; k4 < (KW0 + 3u) / 4u; k4++) {
            uvec4 words = WIDE ? blk4[w0 / 4u + k4]
                               : uvec4(blk[w0 + 4u * k4], 4u * k4 + 1u < KW0 ? blk[w0 + 4u * k4 + 1u] : 0u,
                                       4u * k4 + 2u < KW0 ? blk[w0 + 4u * k4 + 2u] : 0u,
                                       4u * k4 + 3u < KW0 ? blk[w0 + 4u * k4 + 3u] : 0u);
            for (uint kk = 0u; kk < 4u; kk++) {
                uint k = 4u * k4 + kk;
                if (k >= KW0) break;
                uint word = words[kk];
                uint hi = KBITS == 3u ? blk[w0 + KW0 + k / 2u] >> ((k % 2u) * 16u) : 0u;
                for (uint c = 0u; c < PER; c++) {
                    uint i = k * PER + c;
                    if (i >= D) break;
                    uint code = (word >> (c * KPB0)) & ((1u << KPB0) - 1u);
                    if (KBITS == 3u) code |= ((hi >> c) & 1u) << 2;
                    float cf = float(code);
                    for (uint r = 0u; r < NQ; r++) dot[r] += qs_s[i][r] * cf;
                }
            }
        }
        uint a = MODE == 0u ? (blk[base + pc.o_kidx + t / 4u] >> (8u * (t % 4u))) & 255u : 0u;
        for (uint r = 0u; r < NQ; r++) {
            float lg = dot[r] + zt_s[r];
            if (MODE == 0u) lg += qc_s[a][r];
            p_s[t][r] = tok0 + t <= limit_s[r] ? lg : PKV_NEG_INF;
        }
    }
    barrier();
    softmax_block(lid, G, true);
    accumulate(lid, G, base, 0u);
}

void do_window(uint lid, uint w0, uint count, uint tok0)
{
    uint base = seq_window(seq, head) * pc.window_words * 2u; /* in halves */
    for (uint t = lid; t < count; t += WG) {
        float dot[NQ];
        for (uint r = 0u; r < NQ; r++) dot[r] = 0.0;
        uint kb = (base + (w0 + t) * D) / 2u;
        for (uint w = 0u; w < D / 2u; w++) {
            uint kw = win[kb + w];
            vec2 x = unpackHalf2x16(kw);
            float x0 = x.x, x1 = x.y;
            for (uint r = 0u; r < NQ; r++) dot[r] += q_s[2u * w][r] * x0 + q_s[2u * w + 1u][r] * x1;
        }
        for (uint r = 0u; r < NQ; r++) p_s[t][r] = tok0 + t <= limit_s[r] ? dot[r] : PKV_NEG_INF;
    }
    barrier();
    softmax_block(lid, count, false);
    accumulate(lid, count, base + w0 * D, 2u);
}

void main()
{
    uint split = gl_WorkGroupID.x, tile = gl_WorkGroupID.y;
    seq = gl_WorkGroupID.z / pc.H;
    head = gl_WorkGroupID.z % pc.H;
    uint lid = gl_LocalInvocationID.x;
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq);
    uint T = nb * G + nw;
    uint rows = pc.q_len * pc.gqa;

    if (lid < NQ) {
        uint gr = min(tile * NQ + lid, rows - 1u);
        uint qi = gr / pc.gqa, qh = head * pc.gqa + gr % pc.gqa;
        row_s[lid] = (seq * pc.q_len + qi) * pc.n_q_heads + qh;
        limit_s[lid] = T - pc.q_len + qi; /* causal: the last token this query sees */
        m_s[lid] = PKV_NEG_INF;
    }
    barrier();
    for (uint e = lid; e < NQ * D; e += WG) {
        uint i = e / NQ, r = e % NQ;
        q_s[i][r] = tile * NQ + r < rows ? scr_f(pc.q_off + row_s[r] * D + i) * pc.scale : 0.0;
    }
    if (MODE == 0u) {
        uint bank = seq_bank(seq);
        for (uint e = lid; e < NQ * SCAP; e += WG) {
            uint m = e / NQ, r = e % NQ;
            qc_s[m][r] = m < bank ? uintBitsToFloat(scr[pc.qc_off + row_s[r] * CAP + m]) : 0.0;
            S_s[r][m] = 0.0;
        }
    }
    for (uint r = 0u; r < NQ; r++)
        for (uint c = 0u; c < CPT; c++) acc[r][c] = 0.0;
    l_run = 0.0;
    pz_run = 0.0;
    barrier();

    if (split < pc.nsplit_b) {
        uint b1 = min(nb, (split + 1u) * pc.bps);
        for (uint b = split * pc.bps; b < b1; b++) do_block(lid, b, b * G);
    } else {
        uint w0 = (split - pc.nsplit_b) * G;
        if (w0 < nw) do_window(lid, w0, min(G, nw - w0), nb * G + w0);
    }

    /* partial result of each row: m, l, acc + zero-point sum, S */
    uint r0 = lid / SEG;
    if (lid % SEG == 0u) pz_s[r0] = pz_run;
    if (lid % SEG == 0u && tile * NQ + r0 < rows) {
        uint part = pc.part_off + (row_s[r0] * pc.nsplit + split) * PART;
        scr[part] = floatBitsToUint(m_s[r0]);
        scr[part + 1u] = floatBitsToUint(l_run);
    }
    barrier();
    for (uint r = 0u; r < NQ; r++) {
        if (tile * NQ + r >= rows) break;
        uint part = pc.part_off + (row_s[r] * pc.nsplit + split) * PART;
        for (uint c = 0u; c < CPT; c++) {
            uint i = lid + c * WG;
            if (i < D) scr[part + 4u + i] = floatBitsToUint(acc[r][c] + pz_s[r]);
        }
        if (MODE == 0u)
            for (uint m = lid; m < seq_bank(seq); m += WG) scr[part + 4u + D + m] = floatBitsToUint(S_s[r][m]);
    }
}
