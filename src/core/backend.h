/* The internal backend interface: a table of function pointers that cpu, vulkan and opencl fill
 * (as ggml-backend does). The common layer (cache.c) keeps all bookkeeping on the host: sequences,
 * block tables, bank sizes, pool slots, budgets. A backend owns device memory and runs four ops:
 * mine (prefill), window writes, flush (window -> block) and attention; mine and flush take every
 * layer of a multi-layer append at once. Ops only write to slots the common layer
 * reserved for them, so a failed op loses nothing that was stored before.
 *
 * The exact arithmetic every backend must follow (so results agree bit for bit) is in
 * docs/NUMERICS.md; the CPU implementation in cpu_ops.c is the reference. */
#ifndef PKV_BACKEND_H
#define PKV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "patternkv.h"

typedef struct pkv_backend pkv_backend;
typedef struct pkv_buf pkv_buf; /* defined by each backend */

/* The three arenas of a cache's shard (the layers an op works on): fixed-size slots of blocks, bank
 * chunks and windows. Slot numbers in an op are the shard's. */
typedef struct pkv_store {
    const pkv_geom *g;
    pkv_buf *blocks;  /* slot i at byte i * g->block_bytes */
    pkv_buf *chunks;  /* slot i at byte i * g->chunk_bytes */
    pkv_buf *windows; /* slot i at byte i * g->window_bytes */
} pkv_store;

/* Prefill mining of one sequence, for one or more layers that all receive the same n_tokens
 * (PATTERN mode only). Per layer and kv head, k-means (L2) separately over K and over V of the
 * n_sample tokens pkv_sample_token(j, n_tokens, n_sample), j < n_sample (pkv_math.h; n_sample =
 * n_tokens: all of them), initialised from init_index (sample positions j); the M centroids go to
 * bank patterns 0..M-1 (fp16); then
 * the first n_quant tokens (a multiple of G) are assigned L2-nearest, residualised (V through the
 * gate) and quantized into blocks. The remaining tokens are written to the window by the common
 * layer (window op), not by this op. A backend may split the layers into several submissions to
 * bound its scratch memory; it writes only the slots given. */
typedef struct pkv_mine_layer {
    const uint32_t *init_index;   /* [H][2][M]: sample positions (< n_sample), K then V, distinct per list */
    const uint32_t *chunk_table;  /* [H][PKV_MAX_CHUNKS] bank chunk slots (first ceil(M/32) used) */
    const uint32_t *block_slot;   /* [H][n_quant / G] */
} pkv_mine_layer;

typedef struct pkv_mine_op {
    uint32_t n_layers;
    const pkv_mine_layer *layers; /* [n_layers] */
    /* host fp16 tokens of each layer, in op order: tokens_k[i], tokens_v[i] are [n_tokens][H][d] */
    const uint16_t *const *tokens_k, *const *tokens_v;
    /* or, when tokens_k is NULL (one layer, engine integration): K [n][H][d] then V in device memory */
    pkv_buf *tokens_buf;
    size_t tokens_off;
    uint32_t n_tokens;
    uint32_t n_sample;            /* k-means tokens, <= n_tokens (pkv_sample_count) */
    uint32_t n_quant;
    const float *rcp;             /* [n_sample + 1]: rcp[c] = (float)(1.0 / c), rcp[0] = 0 */
    uint32_t max_iters;
    float tol2;                   /* stop when max_m |c_new - c_old|^2 < tol2 */
} pkv_mine_op;

/* Window flush of one sequence, for one or more layers: the window of each of their heads holds R
 * tokens. PATTERN: if append_pattern, the Chebyshev centre of the window (K and V separately) is
 * written as pattern bank_count; then every token is reassigned by min-max distance among the
 * patterns (bank_count + append_pattern of them), residualised (V through the gate) and quantized.
 * DIRECT: quantize raw. FP16: copy. Writes R/G blocks per head. */
typedef struct pkv_flush_layer {
    const uint32_t *window_slot;  /* [H] */
    const uint32_t *chunk_table;  /* [H][PKV_MAX_CHUNKS]; the chunk receiving the new pattern is private */
    uint32_t bank_count;
    uint32_t append_pattern;      /* 0 or 1 */
    const uint32_t *block_slot;   /* [H][R / G] */
} pkv_flush_layer;

typedef struct pkv_flush_op {
    uint32_t n_layers;
    const pkv_flush_layer *layers; /* [n_layers] */
    /* 1: another shard's flush op of the same call follows; a backend may leave this one recorded and
     * unsubmitted for it (Vulkan: one submission and one wait for every shard's flush), reporting an
     * op time of 0: the last op's time then covers them all */
    uint32_t more;
} pkv_flush_op;

/* Window writes: runs of consecutive fp16 rows (d values each) copied into the windows arena.
 * Destination rows count in rows of d halves from the arena's start: slot * 2R + kv * R + position. */
typedef struct pkv_window_op {
    const uint16_t *rows;         /* host source rows [n_src_rows][d] */
    pkv_buf *rows_buf;            /* or, when rows is NULL, device memory at rows_off */
    size_t rows_off;
    uint32_t n_src_rows;
    uint32_t n_runs;
    const uint32_t *runs;         /* [n_runs][3]: first source row, first destination row, rows */
    uint32_t n_rows;              /* rows the runs name in all */
} pkv_window_op;

/* A sequence's block slots of one layer kept in device memory between attention ops, by backends
 * with resident_tables: buf holds cap blocks' slots in the host's layout ([cap][H] words), of which
 * the first synced blocks' equal the host's L->blocks. The layer state owns it (pkv_layer_state.tab,
 * zero: none); the backend allocates, grows and fills it; the core frees it with the layer state
 * and lowers synced when it drops blocks. Block slots below n_blocks never change otherwise (blocks
 * are only appended), so a decode step uploads nothing until a window flush adds a block. */
typedef struct pkv_tab_mirror {
    pkv_buf *buf;
    uint32_t cap, synced;
    /* Vulkan (vk_tables.c): buf also holds the sequence's chunks and windows words (the op table's
     * fixed part) ahead of the block slots; `fixed` is the host's copy of what it holds (malloc'd by
     * the backend, freed with the layer state), valid when fixed_ok. Unused (NULL) elsewhere. */
    uint32_t *fixed;
    uint32_t fixed_ok;
} pkv_tab_mirror;

/* One sequence's view for attention. */
typedef struct pkv_attn_seq {
    uint32_t n_blocks;     /* compressed groups */
    uint32_t n_window;     /* fp16 tokens after them */
    uint32_t bank_count;   /* patterns in each bank (same for all heads and for K and V) */
    uint32_t table_offset; /* into pkv_attn_op.table: chunks [H][PKV_MAX_CHUNKS], then windows [H] */
    uint32_t block_offset; /* into pkv_attn_op.table: block slots [n_blocks][H] (see pkv_attn_op.fixed_len) */
    const uint32_t *blocks; /* the host's block slots [n_blocks][H] */
    pkv_tab_mirror *mirror; /* its device copy (resident_tables backends), else NULL */
    const struct pkv_layer_state *layer; /* the core's own (attention.c); backends do not read it */
} pkv_attn_seq;

/* A sequence's chunks: its compressed blocks, then its window in pieces of up to G tokens. */
static inline uint32_t pkv_attn_seq_chunks(const pkv_attn_seq *s, uint32_t G)
{
    return s->n_blocks + (s->n_window + G - 1) / G;
}

/* q and out: host fp32 [n_seqs][q_len][n_q_heads][d]. Query i of a sequence with T tokens sees
 * tokens 0 .. T - q_len + i. Query head h reads kv head h / (n_q_heads / H). */
typedef struct pkv_attn_op {
    uint32_t n_seqs, q_len, n_q_heads;
    float scale;
    const pkv_attn_seq *seqs;
    /* [table_len]: first every sequence's chunks and windows (fixed_len words, n_seqs x H x
     * (PKV_MAX_CHUNKS + 1)), then every sequence's block slots; for a backend with resident_tables
     * the block slots are NOT written here (the backend takes them from seqs[s].mirror, updated from
     * seqs[s].blocks): only table[0 .. fixed_len) is meaningful */
    const uint32_t *table;
    uint32_t table_len, fixed_len;
    const float *q;
    float *out;
    /* Engine integration: when q (out) is NULL, q is read from (out is written to) device memory. */
    pkv_buf *q_buf, *out_buf;
    size_t q_off, out_off;
} pkv_attn_op;

/* An op's chunk x KV head pairs (the planner's work units), which the GPU backends compare with their
 * compute units to choose a kernel for the op's size. */
static inline uint64_t pkv_attn_op_chunk_pairs(const pkv_attn_op *op, uint32_t G, uint32_t H)
{
    uint64_t chunks = 0;
    for (uint32_t i = 0; i < op->n_seqs; i++) chunks += pkv_attn_seq_chunks(&op->seqs[i], G);
    return chunks * H;
}

/* The PKV_ATTN_* tuning and test switches of the GPU attention (attn_plan.h), read from the environment
 * once per context (pkv_attn_env_read, at pkv_context_create), not per call. 0: not set. */
typedef struct pkv_attn_env {
    uint32_t max_rows;        /* PKV_ATTN_MAX_ROWS */
    uint32_t groups;          /* PKV_ATTN_GROUPS */
    uint32_t chunks_per_item; /* PKV_ATTN_CHUNKS_PER_ITEM */
    uint32_t flags;           /* PKV_ATTN_SEPARATE_MERGE, PKV_ATTN_DEBUG: pkv_attn_flags */
    uint32_t step_blocks, vch; /* PKV_ATTN_STEP_BLOCKS, PKV_ATTN_VCH (valid values only) */
    uint32_t stage_k;         /* PKV_ATTN_STAGE_K: 0 not set, 1 off, 2 on */
    uint32_t prefetch;        /* PKV_ATTN_PREFETCH: 0 not set, 1 off, 2 on */
    uint32_t vb;              /* PKV_ATTN_VB: fp16 V rows in flight per invocation (4, 8, 16), 0 not set */
    uint32_t hist_fixed;      /* PKV_ATTN_HIST_FIXED: 0 not set, 1 off, 2 on */
    uint32_t coopmat;         /* PKV_ATTN_COOPMAT: 0 not set, 1 off, 2 on, 3 emu (split attention's kernels emulated: tests) */
    uint32_t warp;            /* PKV_ATTN_WARP: 0 not set, 1 off, 2 on */
    uint32_t teams;           /* PKV_ATTN_TEAMS: items per workgroup (Vulkan), 0 not set */
    uint32_t split;           /* PKV_ATTN_SPLIT: 0 not set, 1 off, 2 on */
    uint32_t lpc;             /* PKV_ATTN_LPC: split attention's chunks per logits workgroup (1..16), 0 not set */
    uint32_t tpt;             /* PKV_ATTN_TPT: split attention's tokens per invocation in its logits pass (1, 2, 4), 0 not set */
    uint32_t kunroll;         /* PKV_ATTN_KUNROLL: 0 not set, 1 off, 2 on */
} pkv_attn_env;

typedef struct pkv_backend_iface {
    void (*destroy)(pkv_backend *be);
    pkv_status (*buf_alloc)(pkv_backend *be, size_t bytes, pkv_buf **out);
    void (*buf_free)(pkv_backend *be, pkv_buf *buf);
    pkv_status (*buf_write)(pkv_backend *be, pkv_buf *buf, size_t offset, const void *src, size_t bytes);
    pkv_status (*buf_read)(pkv_backend *be, pkv_buf *buf, size_t offset, void *dst, size_t bytes);
    pkv_status (*buf_copy)(pkv_backend *be, pkv_buf *dst, size_t dst_offset, pkv_buf *src,
                           size_t src_offset, size_t bytes);
    /* Encoder variants beyond the paper's: bit a set when pkv_k_assign a is implemented by mine and
     * flush (g->k_assign); a cache asking for another is refused with PKV_ERR_UNSUPPORTED. */
    uint32_t k_assign_variants;
    uint32_t quantizers; /* bit q: implements pkv_quantizer q besides MINMAX */
    pkv_status (*mine)(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op);
    pkv_status (*flush)(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op);
    /* Window writes. A GPU backend may record them and submit them with its next op, read or copy
     * (an error then surfaces there); the source may be reused as soon as this returns. */
    pkv_status (*write_window)(pkv_backend *be, const pkv_store *st, const pkv_window_op *op);
    pkv_status (*attention)(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op);
    /* Nonzero: attention keeps each sequence's block slots in device memory (pkv_tab_mirror) and
     * the core does not write them into pkv_attn_op.table (the host work of an op is then
     * independent of the context length). */
    int resident_tables;
    /* Optional (NULL: unsupported): read bandwidth of device memory by a plain streaming-read kernel
     * over `bytes`, in GB/s (1e9 bytes/s), timed on the device. */
    pkv_status (*measure_read)(pkv_backend *be, uint64_t bytes, double *gbps);
    /* Optional: duration of the last mine/flush/attention op in ms, device timestamps where the
     * backend has them (host clock on the CPU); < 0 when unknown. */
    double (*last_op_ms)(pkv_backend *be);
    /* Optional: makes ready everything the write path (mine, flush, window) of caches of this
     * geometry needs (Vulkan: its pipelines, created together and in parallel). Called when a cache
     * is created or loaded; failing is not an error of the cache (the op retries lazily). */
    pkv_status (*prepare)(pkv_backend *be, const pkv_geom *g);
    /* Optional: makes ready what attention with n_q_heads query heads and q_len 1 .. max_q_len
     * needs on caches of this geometry, and the engine-integration staging (pkv_prewarm). */
    pkv_status (*prewarm)(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len);
} pkv_backend_iface;

struct pkv_backend {
    const pkv_backend_iface *iface;
    pkv_device_info info;
    /* The largest buffer an op can bind (Vulkan: maxStorageBufferRange and maxMemoryAllocationSize;
     * OpenCL: CL_DEVICE_MAX_MEM_ALLOC_SIZE); 0: no limit. The pool keeps every arena within it. */
    uint64_t max_buffer_bytes;
    pkv_attn_env attn_env; /* set by pkv_context_create */
    /* Milliseconds the driver took to create what the backend runs on before the library did
     * anything of its own (Vulkan: loader, instance, device and queue; OpenCL: platform, context
     * and queue; CPU: 0): the part of start-up a library cannot change (pkv bench's start-up split). */
    double driver_ms;
    void *impl;
};

/* Each backend's entry points: list its devices; create one on the device the params select.
 * `why` receives a sentence on failure (driver missing, no device, ...). */
typedef struct pkv_backend_entry {
    pkv_backend_kind kind;
    pkv_status (*list)(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count,
                       char *why, size_t why_len);
    pkv_status (*create)(const pkv_context_params *p, pkv_backend **out, char *why, size_t why_len);
} pkv_backend_entry;

extern const pkv_backend_entry pkv_cpu_backend_entry;
#ifdef PKV_WITH_VULKAN
extern const pkv_backend_entry pkv_vulkan_backend_entry;
#endif
#ifdef PKV_WITH_OPENCL
extern const pkv_backend_entry pkv_opencl_backend_entry;
#endif

#endif
