/* What the cooperative-matrix kernels share (attn_step_cm.glsl, and split attention's passes built
 * with PKV_COOPMAT: attn_split_cm.glsl): codes as fp16 operands without conversion instructions. The
 * pair (code c, code c + per / 2) of a word of `per` codes is (w >> bits c) & mask, two fp16
 * subnormals code * 2^-24, exact; products are scaled back by 2^24 (CM_UNIT) in fp32. So a word's
 * channels sit in a tile in the order c, c + per / 2, c + 1, ... (cm_pos). */
#ifndef PKV_COOPMAT_EMU /* (attn_split_cm.glsl's emulation needs none of these) */
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif

const float CM_UNIT = 16777216.0; /* 2^24: a subnormal code's scale */

/* Where channel i of a word of `per` codes sits in the tile's order */
uint cm_pos(uint i, uint per)
{
    uint j = i % per, h = per / 2u;
    return i - j + (j < h ? 2u * j : 2u * (j - h) + 1u);
}

/* The fp16 pair (c, c + per / 2) of a code word, as two subnormals code * 2^-24 */
uint cm_pair(uint w, uint c, uint bits)
{
    return (w >> (bits * c)) & (((1u << bits) - 1u) * 0x10001u);
}
