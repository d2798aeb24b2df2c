/* Shared declarations of the attention shaders.
 * Rows: one per (sequence, query position, query head): row = (seq * q_len + qi) * n_q_heads + qh.
 * Per sequence in scratch (seq_off): n_blocks, n_window, bank_count, table_offset; the table holds
 * blocks [H][n_blocks], chunks [H][8], windows [H] (src/backend.h). */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint G = 128;
layout(constant_id = 3) const uint KBITS = 2;
layout(constant_id = 4) const uint VBITS = 2;
layout(constant_id = 5) const uint MODE = 0;  /* 0 pattern, 1 direct, 2 fp16 */
layout(constant_id = 6) const uint NQ = 4;    /* query rows per workgroup */
layout(constant_id = 7) const uint CAP = 256; /* bank capacity (histogram length) */

layout(push_constant) uniform Push {
    uint H, n_q_heads, q_len, gqa, tiles;
    uint bps, nsplit_b, nsplit;       /* blocks per split, block splits, all splits (+ window) */
    uint block_words;
    uint o_kcodes, o_kscale, o_kzero, o_vcodes, o_vscale, o_vzero, o_kidx, o_vidx, o_vmask;
    uint chunk_words, window_words, R;
    uint q_off, seq_off, table_off, qc_off, part_off, out_off;
    float scale;
    uint rows_total;                  /* n_seqs * q_len * n_q_heads */
} pc;

const uint KPB0 = KBITS == 3u ? 2u : KBITS;
const uint VPB0 = VBITS == 3u ? 2u : VBITS;
const uint KW0 = (D * KPB0 + 31u) / 32u;
const uint VW0 = (D * VPB0 + 31u) / 32u;
const uint KRW = KBITS == 3u ? KW0 + (D + 31u) / 32u : KW0;
const uint VRW = VBITS == 3u ? VW0 + (D + 31u) / 32u : VW0;
/* Partial result of one (row, split): m, l, then acc[D], then S[CAP] (PATTERN). */
const uint PART = 4u + D + (MODE == 0u ? CAP : 0u);

/* Row of a qc / reduce workgroup: rows beyond the 65535-per-dimension dispatch limit spill into
 * the next dimension. */
uint spilled_row(uint a, uint b, uint a_count) { return a + b * a_count; }

uint seq_n_blocks(uint s) { return scr[pc.seq_off + 4u * s]; }
uint seq_n_window(uint s) { return scr[pc.seq_off + 4u * s + 1u]; }
uint seq_bank(uint s) { return scr[pc.seq_off + 4u * s + 2u]; }
uint seq_table(uint s) { return pc.table_off + scr[pc.seq_off + 4u * s + 3u]; }
uint seq_block_slot(uint s, uint h, uint b) { return scr[seq_table(s) + h * seq_n_blocks(s) + b]; }
uint seq_chunk(uint s, uint h, uint c) { return scr[seq_table(s) + pc.H * seq_n_blocks(s) + h * 8u + c]; }
uint seq_window(uint s, uint h) { return scr[seq_table(s) + pc.H * seq_n_blocks(s) + pc.H * 8u + h]; }

/* Half index of pattern m of the (K or V) bank of sequence s, kv head h; channel i follows it. */
uint pattern_base(uint s, uint h, uint kv, uint m)
{
    return seq_chunk(s, h, m / 32u) * pc.chunk_words * 2u + kv * 32u * D + (m % 32u) * D;
}
