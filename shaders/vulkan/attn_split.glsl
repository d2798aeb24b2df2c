/* What the two passes of split attention (attn_logits.comp, attn_values.comp) share: the place of a
 * chunk's logit record in scratch (pc.lg_off, vec4 units: G tokens x NRV, then the chunk's maxima (NRV),
 * then one vec4 whose x is the largest V scale of the chunk's tokens, which the cooperative-matrix
 * kernels write and read: attn_split_cm.glsl), chunk j of item `item` for (tile, kv head) of the
 * dispatch's n_items items. */
layout(constant_id = 15) const uint TPT = 1; /* attn_logits: tokens per invocation (1, 2, 4) */
layout(constant_id = 14) const uint LPC = 1; /* attn_logits: chunks per workgroup, one after the other */
layout(constant_id = 16) const uint KUNROLL = 0; /* attn_logits: the loop over a K code row's words unrolled */
const uint SPLIT_KQ = (KRW + 3u) / 4u; /* 16-byte words of a K code row (the host makes KRW a multiple of 4) */
const uint SPLIT_VQ = (VRW + 3u) / 4u; /* of a V code row */
uint attn_logit_rec(uint item, uint j, uint tile, uint head)
{
    return pc.lg_off / 4u + (((item * pc.cps + j) * pc.tiles + tile) * pc.H + head) * ((G + 1u) * NRV + 1u);
}
