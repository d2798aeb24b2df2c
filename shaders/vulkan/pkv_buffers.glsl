/* The four storage buffers every PatternKV shader sees (one descriptor set layout for all):
 * the per-op scratch (uploaded tokens, tables, queries, partial results) and the cache's three
 * arenas (blocks, bank chunks, windows). All are arrays of 32-bit words; fp16 values are read as
 * halves of a word so that no 16-bit storage feature is needed. */
/* Shaders that only read the arenas (attention) define PKV_ARENAS_READONLY first: the driver may then
 * use its read-only load path for them. */
#ifdef PKV_ARENAS_READONLY
#define PKV_ARENA readonly restrict
#else
#define PKV_ARENA
#endif
layout(std430, set = 0, binding = 0) buffer Scratch { uint scr[]; };
layout(std430, set = 0, binding = 1) PKV_ARENA buffer Blocks { uint blk[]; };
layout(std430, set = 0, binding = 1) PKV_ARENA buffer Blocks4 { uvec4 blk4[]; }; /* the same memory, 16-byte loads */
layout(std430, set = 0, binding = 0) buffer Scratch4 { vec4 scr4[]; };
/* Scratch read-only, for words an earlier dispatch wrote (attention's logit records; ATTN_SCRATCH_RO) */
layout(std430, set = 0, binding = 0) readonly buffer ScratchRO4 { vec4 scro4[]; };
/* Scratch words other workgroups of the same dispatch read (attention's partial results). */
layout(std430, set = 0, binding = 0) coherent buffer ScratchC { uint scrc[]; };
layout(std430, set = 0, binding = 0) coherent buffer ScratchC4 { uvec4 scrc4[]; };
layout(std430, set = 0, binding = 2) PKV_ARENA buffer Chunks { uint chk[]; };
layout(std430, set = 0, binding = 2) PKV_ARENA buffer Chunks4 { uvec4 chk4[]; };
layout(std430, set = 0, binding = 2) PKV_ARENA buffer Chunks2 { uvec2 chk2[]; };
layout(std430, set = 0, binding = 3) PKV_ARENA buffer Windows { uint win[]; };
layout(std430, set = 0, binding = 3) PKV_ARENA buffer Windows4 { uvec4 win4[]; };

uint half_of(uint word, uint idx) { return (idx & 1u) != 0u ? (word >> 16) : (word & 0xffffu); }
float scr_h(uint idx) { return pkv_f16_to_f32(half_of(scr[idx >> 1], idx)); }
float blk_h(uint idx) { return pkv_f16_to_f32(half_of(blk[idx >> 1], idx)); }
float chk_h(uint idx) { return pkv_f16_to_f32(half_of(chk[idx >> 1], idx)); }
float win_h(uint idx) { return pkv_f16_to_f32(half_of(win[idx >> 1], idx)); }
float scr_f(uint idx) { return uintBitsToFloat(scr[idx]); }
/* Hardware fp16 conversion, for attention only (not bit-exact work: drivers may flush fp16
 * subnormals, which changes attention by far less than its tolerance). */
float blk_hf(uint idx) { vec2 v = unpackHalf2x16(blk[idx >> 1]); return (idx & 1u) != 0u ? v.y : v.x; }
float chk_hf(uint idx) { vec2 v = unpackHalf2x16(chk[idx >> 1]); return (idx & 1u) != 0u ? v.y : v.x; }
float win_hf(uint idx) { vec2 v = unpackHalf2x16(win[idx >> 1]); return (idx & 1u) != 0u ? v.y : v.x; }
