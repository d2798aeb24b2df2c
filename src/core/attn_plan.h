/* How a GPU backend cuts one attention op into workgroups (flash-decoding), the same for Vulkan and
 * OpenCL: each sequence's cache is a list of chunks of G tokens (its compressed blocks, then its
 * fp16 window in pieces of up to G tokens); runs of `cps` consecutive chunks are items; a workgroup
 * serves one (item, tile of nr query rows, kv head) and writes one partial result per row, merged by
 * the last workgroup of its (sequence, kv head, tile). A sequence in one item is written directly. */
#ifndef PKV_ATTN_PLAN_H
#define PKV_ATTN_PLAN_H

#include "backend.h"

#define PKV_ATTN_SEQ_WORDS 8u /* per sequence: n_blocks, n_window, bank_count, table_offset, n_items, part_base, block_offset, 0 */
#define PKV_ATTN_MAX_ITEMS 65535u /* one dispatch dimension */
#define PKV_ATTN_PLAN_LOCAL 1024u /* words of a plan kept inside it */

typedef struct pkv_attn_plan {
    uint32_t nr;        /* query rows per workgroup */
    uint32_t tiles;     /* ceil(q_len * gqa / nr) */
    uint32_t cps;       /* chunks per item */
    uint32_t n_items;
    uint32_t n_slots;   /* partial results per (kv head, tile, row): items of the sequences split in several */
    uint32_t *seq_desc; /* [n_seqs][PKV_ATTN_SEQ_WORDS] */
    uint32_t *items;    /* [n_items][2]: sequence, split index */
    /* seq_desc and items when they fit (no allocation for a decode step's plan); the plan is not
     * copied, so the pointers stay valid until pkv_attn_plan_free */
    uint32_t local[PKV_ATTN_PLAN_LOCAL];
} pkv_attn_plan;

/* Rows per workgroup: the GQA group times the query positions, rounded up to a power of two,
 * at most max_nr (1, 2, 4 or 8), or PKV_ATTN_MAX_ROWS from the environment (tests). */
uint32_t pkv_attn_rows_per_group(const pkv_attn_op *op, uint32_t n_kv_heads, uint32_t max_nr, const pkv_attn_env *env);

/* The switches below (PKV_ATTN_* in the environment) are read once per context into be->attn_env
 * (pkv_context_create calls pkv_attn_env_read): an attention call makes no getenv. A tool that changes
 * them in a running process (pkv-attn-sweep) calls pkv_attn_env_reload(ctx) afterwards. */
void pkv_attn_env_read(pkv_attn_env *env);
struct pkv_context;
void pkv_attn_env_reload(struct pkv_context *ctx);

/* Workgroups per compute unit that a device runs at once, the planner's wave: on the H200 the
 * compressed modes' kernels take ~170-230 registers per invocation (2 workgroups of 128 per SM), FP16
 * mode's 128 (4). 1 x 32K PATTERN 2-bit ran in 0.135 ms with 2 per SM against 0.155 ms with 4. */
static inline uint32_t pkv_attn_groups_per_cu(pkv_mode mode) { return mode == PKV_MODE_FP16 ? 4u : 2u; }

/* Plans op for a device that runs about `target_groups` workgroups at once (0: a default): items as
 * long as possible while their workgroups fit in that one wave (PKV_ATTN_GROUPS overrides it), with at
 * most max_splits items per sequence (the merge's limit) and items a multiple of cps_multiple chunks
 * (the kernel's step); each sequence's item count a multiple of items_multiple (a workgroup's teams,
 * all on one sequence; the items past its chunks are empty). PKV_ATTN_CHUNKS_PER_ITEM in the environment forces cps (tests use it to
 * exercise the merge). */
pkv_status pkv_attn_plan_make(const pkv_attn_op *op, const pkv_geom *g, uint32_t nr, uint32_t target_groups,
                              uint32_t max_splits, uint32_t cps_multiple, uint32_t items_multiple,
                              const pkv_attn_env *env, pkv_attn_plan *plan);
void pkv_attn_plan_free(pkv_attn_plan *plan);

/* A backend's last plan, kept for the next op with the same inputs, as every layer of a decode step
 * after the first has: the sequences' lengths, banks and table offsets (which the plan's descriptors
 * hold) and the other arguments of pkv_attn_plan_make that it reads (the op's rows, the geometry's H
 * and G, nr, target_groups, max_splits, cps_multiple, items_multiple, the environment's overrides). Owns its arrays;
 * zero-initialised is empty. */
typedef struct pkv_attn_plan_memo {
    int valid;
    uint32_t key[12];
    pkv_attn_plan plan;
    uint64_t made; /* plans made on it so far: the same count, the same plan (Vulkan's upload skip) */
} pkv_attn_plan_memo;
/* *plan: the memo's plan when op and the arguments are those it was made for, else a new one made
 * (and kept in place of the old). Valid until the next call on the memo or pkv_attn_plan_memo_free. */
pkv_status pkv_attn_plan_memo_get(pkv_attn_plan_memo *m, const pkv_attn_op *op, const pkv_geom *g, uint32_t nr,
                                  uint32_t target_groups, uint32_t max_splits, uint32_t cps_multiple,
                                  uint32_t items_multiple, const pkv_attn_env *env, const pkv_attn_plan **plan);
void pkv_attn_plan_memo_free(pkv_attn_plan_memo *m);

/* Switches of the attention kernels (their push constants / parameters): how partial results are
 * merged, and, for tuning only, parts left out so that their cost can be timed (the output is then
 * wrong). PKV_ATTN_SEPARATE_MERGE=1 and PKV_ATTN_DEBUG=<bits> in the environment set them. */
enum {
    PKV_ATTN_SEPARATE_MERGE = 1u, /* a second dispatch merges, not the last workgroup */
    PKV_ATTN_SKIP_V = 2u,
    PKV_ATTN_SKIP_HIST = 4u,
    PKV_ATTN_SKIP_MERGE = 8u,
    PKV_ATTN_SKIP_K = 16u,
    PKV_ATTN_SKIP_QC = 32u,       /* host side: the q.C pre-pass is not run */
    PKV_ATTN_SKIP_FOLD = 64u,     /* Vulkan: PATTERN's sum_m S[m] P_V[m] is not added */
    PKV_ATTN_SKIP_VALUES = 128u,  /* Vulkan split attention: its values pass is not dispatched */
    PKV_ATTN_SKIP_LOGITS = 256u,  /* and its logits pass */
    PKV_ATTN_SCRATCH_RO = 512u,   /* Vulkan split attention: the values pass reads the logit records through a
                                   * read-only alias of scratch (an experiment: does NVIDIA's compiler load
                                   * them faster so? The output stays right) */
};
uint32_t pkv_attn_flags(const pkv_attn_env *env);

/* The kernels' shape choices: chunks per step (the workgroup is bps * G invocations, one token each:
 * 128 invocations by default), channels per invocation in the V phase (8: on the H200, 8 instead of 16
 * cut 8 x 32K PATTERN 2-bit from 0.80 to 0.49 ms, fewer registers; 4 was slower, 0.56 ms)
 * whether K codes (fp16 mode: K rows) are staged in shared memory (no; OpenCL's FP16 mode: yes), whether a
 * step's loads are issued one step ahead (yes: PREFETCH) and how many fp16 V rows each invocation has
 * in flight (4; Vulkan's FP16 mode: 8: VB). PKV_ATTN_STEP_BLOCKS=1|2|4, PKV_ATTN_VCH=4|8|16,
 * PKV_ATTN_STAGE_K=0|1, PKV_ATTN_PREFETCH=0|1, PKV_ATTN_VB=4|8|16 and PKV_ATTN_HIST_FIXED=0|1 override
 * them (tuning). Every backend's measured defaults are chosen here, in pkv_attn_shape_for. */
typedef struct pkv_attn_shape {
    uint32_t bps, vch, stage_k, prefetch;
    /* PATTERN's V histogram in fixed point, added with integer atomics (default), or in float by
     * compare-and-swap (Vulkan's default at 2 bits) */
    uint32_t hist_fixed;
    uint32_t vb;
    /* the step on cooperative matrices where the backend has them (Vulkan: attn_step_cm.glsl; split
     * attention: attn_split_cm.glsl); 2: split attention's kernels with the matrices emulated in plain
     * GLSL (PKV_ATTN_COOPMAT=emu, tests on devices without them) */
    uint32_t coopmat;
    /* the compressed modes on one warp per item (Vulkan: attn_warp.comp), where the shape allows */
    uint32_t warp;
    /* Vulkan: items per workgroup, each on its own team of bps * G invocations (attn_decode.comp's
     * TEAMS; 1: a workgroup is one item) */
    uint32_t teams;
    /* Vulkan: attention in two passes (attn_logits.comp, attn_values.comp) where the shape allows */
    uint32_t split;
    uint32_t lpc; /* split attention's logits pass: chunks per workgroup */
    uint32_t tpt; /* split attention's logits pass: tokens per invocation (each shared load of q * s_K serves them all) */
    /* Vulkan split attention's logits pass: its loop over a K code row's words unrolled (0: not, so that
     * NVIDIA's compiler does not hoist every q * s_K load; PKV_ATTN_KUNROLL=1 tries the other way, as
     * OpenCL's twin, 1.5x faster on NVIDIA, leaves its loop to the compiler) */
    uint32_t kunroll;
} pkv_attn_shape;
pkv_attn_shape pkv_attn_shape_for(const pkv_geom *g, const pkv_attn_env *env, pkv_backend_kind backend);
/* Whether split attention (Vulkan attn_logits/attn_values, OpenCL ocl_attn_logits/ocl_attn_values) serves
 * a cache's shape, before the backend's own memory limit: asked for (sh.split), FP16 mode where the
 * backend has it (fp16_ok) or a compressed mode with one code plane (2, 4 or 8 bits: code rows of whole
 * 16-byte words), head_dim 64, 128 or 256, G a power of two from 32 to 256 and at most max_wg (one token
 * per invocation), and V channel groups (head_dim / sh.vch) that fit the invocations. */
int pkv_attn_split_serves(const pkv_geom *g, pkv_attn_shape sh, uint32_t max_wg, int fp16_ok);
/* Bytes of local memory OpenCL's decode kernel (ocl_attention.cl) declares for nr rows, with or without
 * the V codes staged, before its reduction arrays (Vulkan's, with teams: vk_ops.c decode_shared_bytes). */
size_t pkv_attn_decode_local_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr, int stage_v);

#endif
