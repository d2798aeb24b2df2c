/* Split attention's products on cooperative matrices: attn_logits.comp and attn_values.comp built with
 * PKV_COOPMAT, used where the device has VK_NV_cooperative_matrix and the shape fits (vk_ops.c:
 * split_cm_fits: subgroups of 32, workgroups of G = 128 tokens, head_dim 64 or 128, at most 8 rows,
 * 2-, 4- or 8-bit codes, a compressed mode).
 *   logits: S[16 x G] = A[16 x D] B[D x G], A = q * s_K, B = the chunk's K codes (or fp16 window rows);
 *   values: O[16 x D] += A[16 x G] B[G x D], A = p * s_V, B = its V codes, O kept over the item.
 * A holds each row twice, as fp16 hi (row r) and lo = fp16(x - hi) (row 8 + r), and the outputs are
 * S[r] + S[8 + r]: the products keep ~22 bits of the fp32 operand instead of fp16's 11, for free (the
 * tensor cores' 16 rows are there; NR <= 8). q has no bound while fp16 stops at 65504, so K's A is
 * scaled per row by a power of two that puts its largest element in [2^13, 2^14); V's A needs none
 * (p <= 1, s_V is an fp16). Numerics: docs/NUMERICS.md.
 * The includer declares its tile (an array of uvec4) and names it CM_TILE first. The kernels use the
 * matrix operations through the CM_* macros below, so that PKV_COOPMAT_EMU can build them on plain GLSL
 * for devices without cooperative matrices (lavapipe): tests run the kernels' data flow there. */
#include "attn_cm.glsl"

const uint CM_LDA = (D > G ? D : G) + 8u; /* elements per row of A (padded) */
#ifdef PKV_COOPMAT_EMU
/* Emulation: a "subgroup" is 32 consecutive invocations (as on NVIDIA) and its barrier a workgroup
 * barrier (every one is in uniform control flow); an operand is where it lies in shared memory (a load
 * reads nothing: the product reads its elements, and nothing writes them in between); an accumulator
 * is 8 of its 16 x 16 elements per invocation; A's elements are fp32 holding fp16 values. */
shared float cm_a[16u * CM_LDA];
struct cm_opd { uint tile, off, st; bool col; }; /* tile (1) or A (0); offset and stride in elements (halves) */
struct cm_acc { float e[8]; };
#define CM_ACC cm_acc
#define CM_OPD cm_opd
#define CM_ACC_ZERO cm_acc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_HALF(v_) unpackHalf2x16(packHalf2x16(vec2(v_, 0.0))).x
#define CM_LOAD_A(m, off, st) m = cm_opd(0u, off, st, false)
#define CM_LOAD_T(m, off, st, col) m = cm_opd(1u, (off) * 8u, (st) * 8u, col)
#define CM_MAD(a, b, c) cm_emu_mad(a, b, c)
#define CM_STORE(m, arr, off, st)                                                   \
    do {                                                                            \
        [[dont_unroll]] for (uint i_ = 0u; i_ < 8u; i_++) {                         \
            uint x_ = (gl_LocalInvocationID.x % 32u) * 8u + i_;                     \
            arr[(off) + (x_ / 16u) * (st) + x_ % 16u] = m.e[i_];                    \
        }                                                                           \
    } while (false)
#define CM_SG_BARRIER() barrier()
/* loops around the products: not unrolled here (lavapipe compiles each barrier as a coroutine split) */
#define CM_UNROLL [[dont_unroll]]
float cm_emu_get(cm_opd m, uint row, uint col)
{
    uint h = m.off + (m.col ? col * m.st + row : row * m.st + col);
    if (m.tile == 0u) return cm_a[h];
    return unpackHalf2x16(CM_TILE[h / 8u][(h / 2u) % 4u])[h % 2u];
}
cm_acc cm_emu_mad(cm_opd a, cm_opd b, cm_acc c)
{
    [[dont_unroll]] for (uint i = 0u; i < 8u; i++) {
        uint x = (gl_LocalInvocationID.x % 32u) * 8u + i, r = x / 16u, n = x % 16u;
        float s = c.e[i];
        [[dont_unroll]] for (uint k = 0u; k < 16u; k++) s += cm_emu_get(a, r, k) * cm_emu_get(b, k, n);
        c.e[i] = s;
    }
    return c;
}
#else
shared float16_t cm_a[16u * CM_LDA];
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_OPD fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_ACC_ZERO CM_ACC(0.0)
#define CM_HALF(x) float16_t(x)
#define CM_LOAD_A(m, off, st) coopMatLoadNV(m, cm_a, off, st, false)
#define CM_LOAD_T(m, off, st, col) coopMatLoadNV(m, CM_TILE, off, st, col) /* offset, stride: 16-byte words */
#define CM_MAD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE(m, arr, off, st) coopMatStoreNV(m, arr, off, st, false)
#define CM_SG_BARRIER() subgroupBarrier()
#define CM_UNROLL [[unroll]]
#endif

/* A's rows past the NR hi rows and the NR lo rows stay zero; call before a barrier that precedes cm_put */
void cm_init_a()
{
    for (uint e = gl_LocalInvocationID.x; e < 16u * CM_LDA; e += gl_WorkGroupSize.x) cm_a[e] = CM_HALF(0.0);
}

/* x into A's column col of row r: its hi (row r) and lo (row 8 + r) parts. hi is x with its mantissa cut
 * to fp16's 10 bits by bit operations: on NVIDIA (H100, session 15) hi = fp16(x), lo = fp16(x - float(hi))
 * measured fp16-only precision (1.4e-3), as if the compiler had folded the conversion there and back. */
void cm_put(uint r, uint col, float x)
{
    float h = uintBitsToFloat(floatBitsToUint(x) & 0xFFFFE000u);
    cm_a[r * CM_LDA + col] = CM_HALF(h);
    cm_a[(8u + r) * CM_LDA + col] = CM_HALF(x - h);
}

/* 2^(13 - floor(log2 m)): the power of two that puts m in [2^13, 2^14) (m zero or tiny: 2^113) */
float cm_row_scale(float m)
{
    int e = max(int((floatBitsToUint(m) >> 23) & 255u) - 127, -100);
    return uintBitsToFloat(uint(140 - e) << 23);
}
