/* Codes as floats without a conversion instruction, shared by the attention kernels (attn_decode.comp,
 * attn_warp.comp): bits | 0x4B000000 is the float 2^23 + bits, so one AND-OR and one subtraction
 * turn the code at bit sh of a word into the exact float code * 2^(sh % 16). The power of two is
 * folded into q * s_K (code_factor) for K, and taken out of the V sums at the end (code_unfactor).
 * 3-bit codes (a 2-bit plane and a 1-bit plane) are assembled as integers first: factor 1. */
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
