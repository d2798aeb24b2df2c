/* Split attention's products on cooperative matrices: attn_logits.comp and attn_values.comp built with
 * PKV_COOPMAT, used where the device has VK_NV_cooperative_matrix and the shape fits (vk_ops.c:
 * split_cm_fits: subgroups of 32, workgroups of G = 128 tokens, head_dim a multiple of 64, at most 8
 * rows, 2-, 4- or 8-bit codes, a compressed mode).
 *   logits: S[16 x G] = A[16 x D] B[D x G], A = q * s_K, B = the chunk's K codes (or fp16 window rows);
 *   values: O[16 x D] += A[16 x G] B[G x D], A = p * s_V, B = its V codes, O kept over the item.
 * A holds each row twice, as fp16 hi (row r) and lo = fp16(x - hi) (row 8 + r), and the outputs are
 * S[r] + S[8 + r]: the products keep ~22 bits of the fp32 operand instead of fp16's 11, for free (the
 * tensor cores' 16 rows are there; NR <= 8). q has no bound while fp16 stops at 65504, so K's A is
 * scaled per row by a power of two that puts its largest element in [2^13, 2^14); V's A needs none
 * (p <= 1, s_V is an fp16). Numerics: docs/NUMERICS.md. */
#include "attn_cm.glsl"

const uint CM_RC = 64u;         /* channels per round of a tile */
const uint CM_ROUNDS = D / CM_RC;
const uint CM_LDA = (D > G ? D : G) + 8u; /* halves per row of A (padded) */
shared float16_t cm_a[16u * CM_LDA];

/* A's rows past the NR hi rows and the NR lo rows stay zero; call before a barrier that precedes cm_put */
void cm_init_a()
{
    for (uint e = gl_LocalInvocationID.x; e < 16u * CM_LDA; e += gl_WorkGroupSize.x) cm_a[e] = float16_t(0.0);
}

/* x into A's column col of row r: its fp16 hi (row r) and lo (row 8 + r) parts */
void cm_put(uint r, uint col, float x)
{
    float16_t h = float16_t(x);
    cm_a[r * CM_LDA + col] = h;
    cm_a[(8u + r) * CM_LDA + col] = float16_t(x - float(h));
}

/* 2^(13 - floor(log2 m)): the power of two that puts m in [2^13, 2^14) (m zero or tiny: 2^113) */
float cm_row_scale(float m)
{
    int e = max(int((floatBitsToUint(m) >> 23) & 255u) - 127, -100);
    return uintBitsToFloat(uint(140 - e) << 23);
}
