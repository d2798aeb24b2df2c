/* Shared by assign.comp and quant_block.comp: the push constants of the block-building ops and
 * where their source tokens and patterns are. Token `tok` counts from the op's first token: the
 * prefill tokens uploaded to scratch ([n][H][D], K then V) or the head's window slot. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

layout(push_constant) uniform Push {
    uint block_words;
    uint o_kcodes, o_kscale, o_kzero, o_vcodes, o_vscale, o_vzero, o_kidx, o_vidx, o_vmask; /* words */
    uint chunk_words, window_words, R;
    uint from_window;  /* 0: scratch tokens [n][H][D] K then V; 1: window slots */
    uint tok_off, n;   /* scratch tokens (words) and their count */
    uint window_slot_off, chunk_off, block_slot_off; /* scratch tables */
    uint n_blocks;     /* blocks per head in this op */
    uint n_patterns;   /* patterns to assign among */
    uint minmax;       /* 1: min-max distance (flush), 0: L2 (prefill) */
    float gate_k2, inv_maxq_k, inv_maxq_v;
    uint H;
    uint assign_off;   /* [H][2][n_assign]: pattern index | gate bit << 8 */
    uint n_assign;     /* tokens assigned per head */
} pc;

uint head;

float src_x(uint kv, uint tok, uint i)
{
    if (pc.from_window != 0u) {
        uint slot = scr[pc.window_slot_off + head];
        return win_h(slot * pc.window_words * 2u + kv * pc.R * D + tok * D + i);
    }
    return scr_h(pc.tok_off * 2u + kv * pc.n * pc.H * D + (tok * pc.H + head) * D + i);
}

uint src_word(uint kv, uint tok, uint w) /* halves 2w and 2w + 1 of a token row */
{
    if (pc.from_window != 0u) {
        uint slot = scr[pc.window_slot_off + head];
        return win[slot * pc.window_words + (kv * pc.R * D + tok * D) / 2u + w];
    }
    return scr[pc.tok_off + (kv * pc.n * pc.H * D + (tok * pc.H + head) * D) / 2u + w];
}

shared uint chunk_s[8]; /* the head's bank chunk slots, loaded by load_chunks() */

void load_chunks(uint lid) /* call before pattern(), then barrier() */
{
    if (lid < 8u && lid * 32u < pc.n_patterns) chunk_s[lid] = scr[pc.chunk_off + head * 8u + lid];
}

float pattern(uint kv, uint m, uint i)
{
    return chk_h(chunk_s[m / 32u] * pc.chunk_words * 2u + kv * 32u * D + (m % 32u) * D + i);
}
