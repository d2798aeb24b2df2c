/* Shared declarations of the attention shaders (attn_qc.comp, attn_decode.comp).
 * Per sequence s in scratch at seq_off + 8 s (src/core/attn_plan.h): n_blocks, n_window,
 * bank_count, table_offset, n_items, part_base, block_offset. At table_offset: chunks [H][8],
 * windows [H]; at block_offset: block slots [n_blocks][H] (src/core/backend.h). */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint G = 128;
layout(constant_id = 3) const uint KBITS = 2;
layout(constant_id = 4) const uint VBITS = 2;
layout(constant_id = 5) const uint MODE = 0;  /* 0 pattern, 1 direct, 2 fp16 */
layout(constant_id = 6) const uint NR = 4;    /* query rows per workgroup: 1, 2, 4 or 8 */
layout(constant_id = 7) const uint CAP = 256; /* bank capacity: the q.C table's stride */
layout(constant_id = 8) const uint STAGE_V = 1; /* attn_decode: V codes staged in shared memory */
layout(constant_id = 9) const uint VCH = 16;    /* attn_decode: channels per invocation in the V phase (4, 8, 16) */
layout(constant_id = 10) const uint STAGE_K = 0; /* attn_decode: K codes staged in shared memory */
layout(constant_id = 11) const uint PREFETCH = 1; /* attn_decode: the next step's loads issued before this step's work */
layout(constant_id = 13) const uint VB = 4; /* attn_decode: fp16 V rows in flight per invocation */
layout(constant_id = 12) const uint HIST_FIXED = 1; /* attn_decode: the V histogram in fixed point, integer atomics (0: float, compare-and-swap) */

layout(push_constant) uniform Push {
    uint H, n_q_heads, q_len, gqa, tiles, cps;
    uint block_words, o_kcodes, o_kscale, o_kzero, o_vcodes, o_vscale, o_vzero, o_kidx, o_vidx, o_vmask;
    uint chunk_words, window_words, R;
    uint q_off, seq_off, item_off, table_off, qc_off, part_off, cnt_off, out_off;
    float scale; /* softmax scale * log2(e) */
    uint flags;  /* ATTN_* below */
    uint q_status, q_layer; /* ATTN_Q_RAW: the status word's index in st[], the layer it reports */
    uint lg_off; /* split attention: the logit records (attn_split.glsl) */
} pc;

/* pc.flags: how partial results are merged, and switches that leave work out to time it (tuning). */
const uint ATTN_SEPARATE_MERGE = 1u; /* partials merged by attn_merge.comp, not by the last workgroup */
const uint ATTN_SKIP_V = 2u, ATTN_SKIP_HIST = 4u, ATTN_SKIP_MERGE = 8u, ATTN_SKIP_K = 16u, ATTN_SKIP_FOLD = 64u;
const uint ATTN_SCRATCH_RO = 512u; /* attn_values: logit records through scro4 (an experiment) */
/* A recorded call's q (vk_ops.c): at q_off is the application's q as it was copied (ATTN_Q_F16: fp16
 * pairs, else fp32), converted and checked where it is read (q_value), in place of stage_input.comp's
 * dispatch. */
const uint ATTN_Q_RAW = 1u << 16, ATTN_Q_F16 = 1u << 17;
const uint STATUS_Q_NONFINITE = 2u; /* PKV_VULKAN_STATUS_Q_NONFINITE */

/* The context's status word (vk_external_io.c); written only for a raw q that fails its check. */
layout(std430, set = 0, binding = 4) buffer AttnStatus { uint att_st[]; };

const uint KPB = KBITS == 3u ? 2u : KBITS; /* bits of the first code plane */
const uint VPB = VBITS == 3u ? 2u : VBITS;
const uint KW0 = (D * KPB + 31u) / 32u;    /* words of the first plane of a row */
const uint VW0 = (D * VPB + 31u) / 32u;
const uint KRW = KBITS == 3u ? KW0 + (D + 31u) / 32u : KW0;
const uint VRW = VBITS == 3u ? VW0 + (D + 31u) / 32u : VW0;
const uint NRV = (NR + 3u) / 4u;           /* vec4s that hold one value per row */
const uint PSTRIDE = D + 4u;               /* a partial result: m, l, 2 unused, o[D] (16-byte aligned) */

uint seq_n_blocks(uint s) { return scr[pc.seq_off + 8u * s]; }
uint seq_n_window(uint s) { return scr[pc.seq_off + 8u * s + 1u]; }
uint seq_bank(uint s) { return scr[pc.seq_off + 8u * s + 2u]; }
uint seq_table(uint s) { return pc.table_off + scr[pc.seq_off + 8u * s + 3u]; }
uint seq_n_items(uint s) { return scr[pc.seq_off + 8u * s + 4u]; }
uint seq_part_base(uint s) { return scr[pc.seq_off + 8u * s + 5u]; }
uint seq_blocks(uint s) { return pc.table_off + scr[pc.seq_off + 8u * s + 6u]; }
uint seq_block_slot(uint s, uint h, uint b) { return scr[seq_blocks(s) + b * pc.H + h]; }
uint seq_chunk(uint s, uint h, uint c) { return scr[seq_table(s) + h * 8u + c]; }
uint seq_window(uint s, uint h) { return scr[seq_table(s) + pc.H * 8u + h]; }

/* Half index of pattern m of the (K: kv = 0, V: kv = 1) bank of sequence s, kv head h. */
uint pattern_base(uint s, uint h, uint kv, uint m)
{
    return seq_chunk(s, h, m / 32u) * pc.chunk_words * 2u + kv * 32u * D + (m % 32u) * D;
}

/* Partial result slot of row r of (sequence, split, kv head, tile): m, l, -, -, o[D]; consecutive
 * splits of one row are part_step() words apart. */
uint part_slot(uint s, uint split, uint h, uint tile, uint r)
{
    return pc.part_off + ((((seq_part_base(s) + split) * pc.H + h) * pc.tiles + tile) * NR + r) * PSTRIDE;
}
uint part_step() { return pc.H * pc.tiles * NR * PSTRIDE; }

/* First vec4 of the q.C table of (sequence, kv head, tile), pattern m. */
uint qc_index(uint s, uint h, uint tile, uint m) { return pc.qc_off / 4u + (((s * pc.H + h) * pc.tiles + tile) * CAP + m) * NRV; }

/* Query row (sequence, query position, query head) of row r of a tile, clamped to the last real
 * row for the padding rows of a partial tile. */
uint tile_row(uint s, uint h, uint tile, uint r)
{
    uint gr = min(tile * NR + r, pc.q_len * pc.gqa - 1u);
    uint qi = gr / pc.gqa, qh = h * pc.gqa + gr % pc.gqa;
    return (s * pc.q_len + qi) * pc.n_q_heads + qh;
}
bool tile_row_real(uint tile, uint r) { return tile * NR + r < pc.q_len * pc.gqa; }

/* Value i of query row `row`, unscaled. A raw q (ATTN_Q_RAW) is converted as stage_input.comp converts
 * it (fp16 exactly, fp32 as is) and checked per pair as it checks: a pair holding NaN or Inf reads as
 * 0 and sets STATUS_Q_NONFINITE and the lowest failing layer in the status word (every reader of the
 * value does the same, so the flag does not depend on which kernel reads it first). */
float q_value(uint row, uint i)
{
    uint e = row * D + i;
    if ((pc.flags & ATTN_Q_RAW) == 0u) return scr_f(pc.q_off + e);
    float x;
    bool bad;
    if ((pc.flags & ATTN_Q_F16) != 0u) {
        uint w = scr[pc.q_off + e / 2u];
        bad = (w & 0x7C00u) == 0x7C00u || (w & 0x7C000000u) == 0x7C000000u;
        x = pkv_f16_to_f32(half_of(w, e));
    } else {
        uint w0 = scr[pc.q_off + (e & ~1u)], w1 = scr[pc.q_off + (e | 1u)];
        bad = (w0 & 0x7F800000u) == 0x7F800000u || (w1 & 0x7F800000u) == 0x7F800000u;
        x = uintBitsToFloat((e & 1u) != 0u ? w1 : w0);
    }
    if (bad) {
        atomicOr(att_st[pc.q_status], STATUS_Q_NONFINITE);
        atomicMin(att_st[pc.q_status + 1u], pc.q_layer);
        return 0.0;
    }
    return x;
}

/* a[r] for a row index known only at run time (keeps a[] in registers) */
float pick(float a[NR], uint r)
{
    float v = a[0];
    [[unroll]] for (uint j = 1u; j < NR; j++) v = r == j ? a[j] : v;
    return v;
}
