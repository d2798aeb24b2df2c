#version 450
/* Decode attention, split-K (flash-decoding): workgroup (split, row tile, sequence * kv head)
 * reads a range of the kv head's blocks (or a tile of its fp16 window) once for all the query rows
 * of the tile (the GQA heads, and for q_len > 1 the query positions) and writes a partial result:
 * running max m, sum l, acc[i] = sum_t p_t (z_t + s_t code_t,i), and the V histogram S[pattern].
 * Logits never materialise K: q.s per block, the zero-point term once per block, qc[a_t] from the
 * pre-pass. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

const uint CPT = (D + gl_WorkGroupSize.x - 1u) / gl_WorkGroupSize.x; /* channels per invocation */
const uint SCAP = MODE == 0u ? CAP : 1u;

shared float q_s[NQ][D];   /* scale * q */
shared float qs_s[NQ][D];  /* scale * q * s_g (per block) */
shared float p_s[NQ][G];   /* logits, then probabilities */
shared float S_s[NQ][SCAP];
shared float zt_s[NQ], m_s[NQ], alpha_s[NQ], l_s[NQ], pz_s[NQ];
shared uint limit_s[NQ], row_s[NQ];

uint seq, head;
float acc[NQ][CPT];

uint vcode(uint base, uint t, uint i) /* V code of token t, channel i, block at word base */
{
    uint w0 = base + pc.o_vcodes + t * VRW;
    uint lo = (blk[w0 + pkv_code_word(i, VPB0)] >> pkv_code_shift(i, VPB0)) & ((1u << VPB0) - 1u);
    if (VBITS == 3u) lo |= ((blk[w0 + VW0 + (i >> 5)] >> (i & 31u)) & 1u) << 2;
    return lo;
}

/* Softmax bookkeeping after the logits of `count` tokens are in p_s (rows by invocations < NQ). */
void softmax_block(uint lid, uint count)
{
    if (lid < NQ) {
        float bm = PKV_NEG_INF;
        for (uint t = 0u; t < count; t++) bm = max(bm, p_s[lid][t]);
        float mo = m_s[lid], mn = max(mo, bm);
        alpha_s[lid] = (mo == PKV_NEG_INF) ? 0.0 : exp(mo - mn);
        m_s[lid] = mn;
    }
    barrier();
    for (uint e = lid; e < NQ * count; e += gl_WorkGroupSize.x) {
        uint r = e / count, t = e % count;
        float lg = p_s[r][t];
        p_s[r][t] = lg == PKV_NEG_INF ? 0.0 : exp(lg - m_s[r]);
    }
    if (MODE == 0u)
        for (uint e = lid; e < NQ * SCAP; e += gl_WorkGroupSize.x) S_s[e / SCAP][e % SCAP] *= alpha_s[e / SCAP];
    barrier();
}

void do_block(uint lid, uint b, uint tok0)
{
    uint base = seq_block_slot(seq, head, b) * pc.block_words;
    if (MODE == 2u) { /* fp16 block: plain dot products */
        for (uint t = lid; t < G; t += gl_WorkGroupSize.x)
            for (uint r = 0u; r < NQ; r++) {
                float dot = 0.0;
                for (uint i = 0u; i < D; i++) dot += q_s[r][i] * blk_h(base * 2u + pc.o_kcodes * 2u + t * D + i);
                p_s[r][t] = tok0 + t <= limit_s[r] ? dot : PKV_NEG_INF;
            }
        barrier();
        softmax_block(lid, G);
        if (lid < NQ) {
            float l = l_s[lid] * alpha_s[lid];
            for (uint t = 0u; t < G; t++) l += p_s[lid][t];
            l_s[lid] = l;
        }
        for (uint c = 0u; c < CPT; c++) {
            uint i = lid + c * gl_WorkGroupSize.x;
            if (i >= D) break;
            for (uint r = 0u; r < NQ; r++) acc[r][c] *= alpha_s[r];
            for (uint t = 0u; t < G; t++) {
                float v = blk_h(base * 2u + pc.o_vcodes * 2u + t * D + i);
                for (uint r = 0u; r < NQ; r++) acc[r][c] += p_s[r][t] * v;
            }
        }
        barrier();
        return;
    }
    /* q * s per channel, and the zero-point term once per block */
    for (uint e = lid; e < NQ * D; e += gl_WorkGroupSize.x) {
        uint r = e / D, i = e % D;
        qs_s[r][i] = q_s[r][i] * blk_h(base * 2u + pc.o_kscale * 2u + i);
    }
    if (lid < NQ) {
        float zt = 0.0;
        for (uint i = 0u; i < D; i++) zt += q_s[lid][i] * blk_h(base * 2u + pc.o_kzero * 2u + i);
        zt_s[lid] = zt;
    }
    barrier();
    for (uint t = lid; t < G; t += gl_WorkGroupSize.x) {
        uint row[KRW];
        uint w0 = base + pc.o_kcodes + t * KRW;
        for (uint k = 0u; k < KRW; k++) row[k] = blk[w0 + k];
        float dot[NQ];
        for (uint r = 0u; r < NQ; r++) dot[r] = 0.0;
        for (uint i = 0u; i < D; i++) {
            uint code = (row[pkv_code_word(i, KPB0)] >> pkv_code_shift(i, KPB0)) & ((1u << KPB0) - 1u);
            if (KBITS == 3u) code |= ((row[KW0 + (i >> 5)] >> (i & 31u)) & 1u) << 2;
            float cf = float(code);
            for (uint r = 0u; r < NQ; r++) dot[r] += qs_s[r][i] * cf;
        }
        uint a = MODE == 0u ? (blk[base + pc.o_kidx + t / 4u] >> (8u * (t % 4u))) & 255u : 0u;
        for (uint r = 0u; r < NQ; r++) {
            float lg = dot[r] + zt_s[r];
            if (MODE == 0u) lg += uintBitsToFloat(scr[pc.qc_off + row_s[r] * CAP + a]);
            p_s[r][t] = tok0 + t <= limit_s[r] ? lg : PKV_NEG_INF;
        }
    }
    barrier();
    softmax_block(lid, G);
    if (lid < NQ) { /* l, the zero-point sum, and the pattern histogram: one row per invocation */
        float l = l_s[lid] * alpha_s[lid], pz = pz_s[lid] * alpha_s[lid];
        for (uint t = 0u; t < G; t++) {
            float p = p_s[lid][t];
            l += p;
            pz += p * blk_h(base * 2u + pc.o_vzero * 2u + t);
            if (MODE == 0u) {
                uint mask = (blk[base + pc.o_vmask + t / 32u] >> (t % 32u)) & 1u;
                uint a = (blk[base + pc.o_vidx + t / 4u] >> (8u * (t % 4u))) & 255u;
                if (mask != 0u) S_s[lid][a] += p;
            }
        }
        l_s[lid] = l;
        pz_s[lid] = pz;
    }
    for (uint c = 0u; c < CPT; c++) {
        uint i = lid + c * gl_WorkGroupSize.x;
        if (i >= D) break;
        for (uint r = 0u; r < NQ; r++) acc[r][c] *= alpha_s[r];
        for (uint t = 0u; t < G; t++) {
            float cf = float(vcode(base, t, i)) * blk_h(base * 2u + pc.o_vscale * 2u + t);
            for (uint r = 0u; r < NQ; r++) acc[r][c] += p_s[r][t] * cf;
        }
    }
    barrier();
}

void do_window(uint lid, uint w0, uint count, uint tok0)
{
    uint base = seq_window(seq, head) * pc.window_words * 2u; /* in halves */
    for (uint t = lid; t < count; t += gl_WorkGroupSize.x)
        for (uint r = 0u; r < NQ; r++) {
            float dot = 0.0;
            for (uint i = 0u; i < D; i++) dot += q_s[r][i] * win_h(base + (w0 + t) * D + i);
            p_s[r][t] = tok0 + t <= limit_s[r] ? dot : PKV_NEG_INF;
        }
    barrier();
    softmax_block(lid, count);
    if (lid < NQ) {
        float l = l_s[lid] * alpha_s[lid];
        for (uint t = 0u; t < count; t++) l += p_s[lid][t];
        l_s[lid] = l;
        pz_s[lid] *= alpha_s[lid];
    }
    for (uint c = 0u; c < CPT; c++) {
        uint i = lid + c * gl_WorkGroupSize.x;
        if (i >= D) break;
        for (uint r = 0u; r < NQ; r++) acc[r][c] *= alpha_s[r];
        for (uint t = 0u; t < count; t++) {
            float v = win_h(base + pc.R * D + (w0 + t) * D + i);
            for (uint r = 0u; r < NQ; r++) acc[r][c] += p_s[r][t] * v;
        }
    }
    barrier();
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

    for (uint e = lid; e < NQ * D; e += gl_WorkGroupSize.x) {
        uint r = e / D, i = e % D, gr = tile * NQ + r;
        float v = 0.0;
        if (gr < rows) {
            uint qi = gr / pc.gqa, qh = head * pc.gqa + gr % pc.gqa;
            v = scr_f(pc.q_off + ((seq * pc.q_len + qi) * pc.n_q_heads + qh) * D + i) * pc.scale;
        }
        q_s[r][i] = v;
    }
    if (lid < NQ) {
        uint gr = tile * NQ + lid;
        uint qi = min(gr, rows - 1u) / pc.gqa, qh = head * pc.gqa + min(gr, rows - 1u) % pc.gqa;
        row_s[lid] = (seq * pc.q_len + qi) * pc.n_q_heads + qh;
        limit_s[lid] = T - pc.q_len + qi; /* causal: the last token this query sees */
        m_s[lid] = PKV_NEG_INF;
        l_s[lid] = 0.0;
        pz_s[lid] = 0.0;
    }
    if (MODE == 0u)
        for (uint e = lid; e < NQ * SCAP; e += gl_WorkGroupSize.x) S_s[e / SCAP][e % SCAP] = 0.0;
    for (uint r = 0u; r < NQ; r++)
        for (uint c = 0u; c < CPT; c++) acc[r][c] = 0.0;
    barrier();

    if (split < pc.nsplit_b) {
        uint b1 = min(nb, (split + 1u) * pc.bps);
        for (uint b = split * pc.bps; b < b1; b++) do_block(lid, b, b * G);
    } else {
        uint w0 = (split - pc.nsplit_b) * G;
        if (w0 < nw) do_window(lid, w0, min(G, nw - w0), nb * G + w0);
    }

    for (uint r = 0u; r < NQ; r++) {
        if (tile * NQ + r >= rows) break;
        uint part = pc.part_off + (row_s[r] * pc.nsplit + split) * PART;
        if (lid == 0u) {
            scr[part] = floatBitsToUint(m_s[r]);
            scr[part + 1u] = floatBitsToUint(l_s[r]);
        }
        for (uint c = 0u; c < CPT; c++) {
            uint i = lid + c * gl_WorkGroupSize.x;
            if (i < D) scr[part + 4u + i] = floatBitsToUint(acc[r][c] + pz_s[r]);
        }
        if (MODE == 0u)
            for (uint m = lid; m < CAP; m += gl_WorkGroupSize.x) scr[part + 4u + D + m] = floatBitsToUint(S_s[r][m]);
    }
}
