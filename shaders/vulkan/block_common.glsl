/* Shared by assign.comp, quant_search.comp, quant_block.comp and flush_centre.comp: the push constants of the
 * block-building ops and where their source tokens and patterns are. A unit is one (layer of the
 * op, kv head); its descriptor in scratch says where its window, bank chunks and pattern count
 * are. Token `tok` counts from the op's first token: the prefill tokens uploaded to scratch
 * (K [n_src_layers][n][H][D] then V likewise) or the unit's window slot. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

layout(push_constant) uniform Push {
    uint block_words;
    uint o_kcodes, o_kscale, o_kzero, o_vcodes, o_vscale, o_vzero, o_kidx, o_vidx, o_vmask; /* words */
    uint chunk_words, window_words, R;
    uint from_window;  /* 0: scratch tokens; 1: window slots */
    uint tok_off, n;   /* scratch tokens (words) and their count per list */
    uint n_src_layers; /* layers in the scratch tokens */
    uint udesc_off;    /* [units][16]: window slot, patterns, new pattern index, append flag, chunk slots [8] */
    uint block_slot_off, n_blocks; /* [units][n_blocks] */
    float gate_k2, inv_maxq_k, inv_maxq_v;
    uint H;
    uint assign_off;   /* [units][2][n_assign]: pattern index | gate bit << 8 */
    uint n_assign;     /* tokens assigned per unit */
    uint search_off;   /* [units][n_blocks][2][max(D, G)]: quant_search.comp's scale | zero << 16 per run */
} pc;

uint unit; /* set by main() */

uint udesc(uint k) { return scr[pc.udesc_off + unit * 16u + k]; }

float src_x(uint kv, uint tok, uint i)
{
    if (pc.from_window != 0u) return win_h(udesc(0u) * pc.window_words * 2u + kv * pc.R * D + tok * D + i);
    uint layer = unit / pc.H, h = unit % pc.H;
    return scr_h(pc.tok_off * 2u + (((kv * pc.n_src_layers + layer) * pc.n + tok) * pc.H + h) * D + i);
}

uint src_word(uint kv, uint tok, uint w) /* halves 2w and 2w + 1 of a token row */
{
    if (pc.from_window != 0u) return win[udesc(0u) * pc.window_words + (kv * pc.R * D + tok * D) / 2u + w];
    uint layer = unit / pc.H, h = unit % pc.H;
    return scr[pc.tok_off + ((((kv * pc.n_src_layers + layer) * pc.n + tok) * pc.H + h) * D) / 2u + w];
}

shared uint chunk_s[8]; /* the unit's bank chunk slots, loaded by load_chunks() */

void load_chunks(uint lid) /* call before pattern(), then barrier() */
{
    if (lid < 8u) chunk_s[lid] = udesc(4u + lid);
}

float pattern(uint kv, uint m, uint i)
{
    return chk_h(chunk_s[m / 32u] * pc.chunk_words * 2u + kv * 32u * D + (m % 32u) * D + i);
}
