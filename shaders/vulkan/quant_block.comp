#version 450
/* Builds compressed blocks, two workgroups per (block, unit = layer of the op and kv head), one for
 * the K half of the block (codes, scales, zeros, indices, padding) and one for the V half (codes,
 * scales, zeros, indices, gate mask): each half's chain of loads is its own workgroup's:
 * residuals against the patterns chosen by assign.comp or kmeans_assign.comp (V only where its gate
 * passed), K per-channel and V per-token quantization (min-max, or where QMSE says the MSE quantizer's
 * scale and zero chosen by quant_search.comp; src/core/block.c is the reference), packing.
 * Every word of the block is written, padding included (zeros). Source tokens come from the
 * uploaded prefill (scratch) or from the unit's window slot. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"

#include "block_common.glsl"

layout(constant_id = 2) const uint G = 128;
layout(constant_id = 3) const uint KBITS = 2;
layout(constant_id = 4) const uint VBITS = 2;
layout(constant_id = 5) const uint MODE = 0; /* 0 pattern, 1 direct, 2 fp16 */
layout(constant_id = 6) const uint QMSE = 0; /* the MSE quantizer's range search for K (bit 0), V (bit 1) */

const uint KPB0 = KBITS == 3u ? 2u : KBITS;
const uint VPB0 = VBITS == 3u ? 2u : VBITS;
const uint KW0 = (D * KPB0 + 31u) / 32u;
const uint VW0 = (D * VPB0 + 31u) / 32u;
const uint KRW = KBITS == 3u ? KW0 + (D + 31u) / 32u : KW0;
const uint VRW = VBITS == 3u ? VW0 + (D + 31u) / 32u : VW0;

#include "block_values.glsl"

shared float ks_s[D], kz_s[D], vs_s[G], vz_s[G];
shared uint ksh_s[D], kzh_s[D], vsh_s[G], vzh_s[G];

uint part; /* 0: the K half of the block, 1: the V half */

void compute_scales(uint lid)
{
    for (uint i = lid; i < (part == 0u ? D : 0u); i += gl_WorkGroupSize.x) { /* K: per channel over the G tokens */
        uint sh, zh;
        if ((QMSE & 1u) != 0u) { /* chosen by quant_search.comp */
            uint c = scr[search_at(0u, i)];
            sh = c & 0xFFFFu; zh = c >> 16;
        } else {
            pkv_span s = pkv_span_of(k_value(0u, i));
            for (uint t = 1u; t < G; t++) s = pkv_span_add(s, k_value(t, i));
            sh = pkv_scale_f16(s.lo, s.hi, pc.inv_maxq_k); zh = pkv_zero_f16(s.lo);
        }
        ksh_s[i] = sh; kzh_s[i] = zh;
        ks_s[i] = pkv_f16_to_f32(sh); kz_s[i] = pkv_f16_to_f32(zh);
    }
    for (uint t = lid; t < (part == 1u ? G : 0u); t += gl_WorkGroupSize.x) { /* V: per token over the D channels */
        uint sh, zh;
        if ((QMSE & 2u) != 0u) {
            uint c = scr[search_at(1u, t)];
            sh = c & 0xFFFFu; zh = c >> 16;
        } else {
            pkv_span s = pkv_span_of(v_value(t, 0u));
            for (uint i = 1u; i < D; i++) s = pkv_span_add(s, v_value(t, i));
            sh = pkv_scale_f16(s.lo, s.hi, pc.inv_maxq_v); zh = pkv_zero_f16(s.lo);
        }
        vsh_s[t] = sh; vzh_s[t] = zh;
        vs_s[t] = pkv_f16_to_f32(sh); vz_s[t] = pkv_f16_to_f32(zh);
    }
}

/* One word of a packed code row: plane word rw of token t. */
uint code_word(uint kv, uint t, uint rw)
{
    uint b = kv == 0u ? KBITS : VBITS;
    uint w0 = kv == 0u ? KW0 : VW0;
    uint plane = rw < w0 ? 0u : 1u;
    uint pw = plane == 0u ? rw : rw - w0;
    uint bits = pkv_plane_bits(b, plane);
    uint maxq = (1u << b) - 1u;
    uint per = 32u / bits;
    uint word = 0u;
    for (uint c = pw * per; c < min(D, pw * per + per); c++) {
        uint code = kv == 0u ? pkv_quant_code(k_value(t, c), kz_s[c], ks_s[c], maxq)
                             : pkv_quant_code(v_value(t, c), vz_s[t], vs_s[t], maxq);
        word |= pkv_code_plane_part(code, b, plane) << pkv_code_shift(c, bits);
    }
    return word;
}

uint bytes4(uint t0, uint which) /* four u8 indices or mask-free bytes */
{
    uint w = 0u;
    for (uint k = 0u; k < 4u; k++) w |= (which == 0u ? kidx_s[t0 + k] : vidx_s[t0 + k]) << (8u * k);
    return w;
}

uint block_word(uint w)
{
    if (MODE == 2u) { /* FP16: K [G][D] then V [G][D] copied */
        uint kw = G * D / 2u;
        if (w >= pc.o_kcodes && w < pc.o_kcodes + kw) {
            uint e = w - pc.o_kcodes;
            return src_word(0u, jblk * G + e / (D / 2u), e % (D / 2u));
        }
        if (w >= pc.o_vcodes && w < pc.o_vcodes + kw) {
            uint e = w - pc.o_vcodes;
            return src_word(1u, jblk * G + e / (D / 2u), e % (D / 2u));
        }
        return 0u;
    }
    if (w >= pc.o_kcodes && w < pc.o_kcodes + G * KRW) { uint e = w - pc.o_kcodes; return code_word(0u, e / KRW, e % KRW); }
    if (w >= pc.o_vcodes && w < pc.o_vcodes + G * VRW) { uint e = w - pc.o_vcodes; return code_word(1u, e / VRW, e % VRW); }
    if (w >= pc.o_kscale && w < pc.o_kscale + D / 2u) { uint i = 2u * (w - pc.o_kscale); return ksh_s[i] | (ksh_s[i + 1u] << 16); }
    if (w >= pc.o_kzero && w < pc.o_kzero + D / 2u) { uint i = 2u * (w - pc.o_kzero); return kzh_s[i] | (kzh_s[i + 1u] << 16); }
    if (w >= pc.o_vscale && w < pc.o_vscale + G / 2u) { uint t = 2u * (w - pc.o_vscale); return vsh_s[t] | (vsh_s[t + 1u] << 16); }
    if (w >= pc.o_vzero && w < pc.o_vzero + G / 2u) { uint t = 2u * (w - pc.o_vzero); return vzh_s[t] | (vzh_s[t + 1u] << 16); }
    if (MODE == 0u) {
        if (w >= pc.o_kidx && w < pc.o_kidx + G / 4u) return bytes4(4u * (w - pc.o_kidx), 0u);
        if (w >= pc.o_vidx && w < pc.o_vidx + G / 4u) return bytes4(4u * (w - pc.o_vidx), 1u);
        if (w >= pc.o_vmask && w < pc.o_vmask + G / 32u) {
            uint t0 = 32u * (w - pc.o_vmask), m = 0u;
            for (uint k = 0u; k < 32u; k++) m |= vmask_s[t0 + k] << k;
            return m;
        }
    }
    return 0u; /* padding */
}

/* Which half writes word w: the V sections belong to part 1, everything else (padding too) to part 0. */
uint word_part(uint w)
{
    if (MODE == 2u) return w >= pc.o_vcodes && w < pc.o_vcodes + G * D / 2u ? 1u : 0u;
    if (w >= pc.o_vcodes && w < pc.o_vcodes + G * VRW) return 1u;
    if (w >= pc.o_vscale && w < pc.o_vscale + G / 2u) return 1u;
    if (w >= pc.o_vzero && w < pc.o_vzero + G / 2u) return 1u;
    if (MODE == 0u && w >= pc.o_vidx && w < pc.o_vidx + G / 4u) return 1u;
    if (MODE == 0u && w >= pc.o_vmask && w < pc.o_vmask + G / 32u) return 1u;
    return 0u;
}

void main()
{
    jblk = gl_WorkGroupID.x;
    unit = gl_WorkGroupID.y >> 1;
    part = gl_WorkGroupID.y & 1u;
    uint lid = gl_LocalInvocationID.x;
    if (MODE == 0u) {
        load_assignments(lid);
        load_chunks(lid);
    }
    barrier();
    if (MODE != 2u) compute_scales(lid);
    barrier();
    uint slot = scr[pc.block_slot_off + unit * pc.n_blocks + jblk];
    for (uint w = lid; w < pc.block_words; w += gl_WorkGroupSize.x)
        if (word_part(w) == part) blk[slot * pc.block_words + w] = block_word(w);
}
