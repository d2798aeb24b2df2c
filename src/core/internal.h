/* Internal structures of the common layer: context, cache, sequences and pool arenas. */
#ifndef PKV_INTERNAL_H
#define PKV_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "abi.h"
#include "backend.h"
#include "host_alloc.h"
#include "patternkv.h"

#define PKV_NO_SLOT UINT32_MAX
/* Sequence ids are below this (pkv_seq_create never hands out a larger one; a file with one is damaged). */
#define PKV_SEQ_ID_LIMIT 0x80000000u

struct pkv_context {
    pkv_context_params params;
    pkv_backend *be;
    char why[1024]; /* how the backend was chosen */
    double last_op_ms; /* device time of the last call that ran device ops (pkv_last_op_time), < 0 unknown */
    pkv_allocator alloc; /* params' host allocator hooks (all NULL: the C library's) */
};

/* The allocator of a context's or a cache's calls (host_alloc.h: PKV_ALLOC_SCOPE at each entry). */
#define PKV_CTX_ALLOC(ctx) ((ctx) ? &(ctx)->alloc : NULL)
#define PKV_CACHE_ALLOC(c) ((c) ? &(c)->ctx->alloc : NULL)

/* Fixed-size slots in one backend buffer; refcount 0 means free. Blocks and bank chunks are shared
 * between forked sequences by reference count; windows never are. Slot numbers are the shard's. */
typedef struct pkv_arena {
    pkv_buf *buf;
    uint32_t slot_bytes;
    uint32_t capacity; /* slots the buffer holds */
    uint32_t used;
    uint32_t *refcount;
    uint32_t next_free_hint;
} pkv_arena;

/* A host buffer a cache reuses from call to call (its contents are not kept): no allocation per call
 * once it is large enough. */
typedef struct pkv_scratch {
    void *p;
    size_t bytes;
} pkv_scratch;

/* The arenas of layers [i * shard_layers, (i + 1) * shard_layers) (pool.c): every op works on the
 * layers of one shard and gets its store, so a kernel binds one buffer per arena. */
typedef struct pkv_shard {
    pkv_arena blocks, chunks, windows;
    pkv_store store;
    uint32_t need[3]; /* slots asked for by pkv_pool_want, made room for by pkv_pool_ensure */
} pkv_shard;

/* One sequence's state for one layer (slots of its layer's shard). */
typedef struct pkv_layer_state {
    uint32_t n_blocks, cap_blocks;
    uint32_t *blocks;       /* [n_blocks][H] block slots */
    uint32_t n_window;
    uint32_t *window_slot;  /* [H] or NULL before the first append */
    uint32_t bank_count;
    uint32_t *chunks;       /* [H][PKV_MAX_CHUNKS], PKV_NO_SLOT where unused; NULL in DIRECT/FP16 */
    pkv_tab_mirror tab;     /* the block slots in device memory (backend.h), zero when none */
} pkv_layer_state;

typedef struct pkv_sequence {
    pkv_seq id;
    pkv_layer_state *layers; /* [n_layers] */
} pkv_sequence;

struct pkv_cache {
    pkv_context *ctx;
    pkv_cache_config cfg;
    pkv_geom g;
    pkv_shard *shards;   /* [n_shards] */
    uint32_t n_shards, shard_layers;
    uint64_t buffer_limit; /* largest buffer (0: none) */
    pkv_sequence **seqs;
    uint32_t n_seqs, cap_seqs;
    /* pkv_find_seq's direct-mapped hint: id % 64 -> index into seqs where that id was
     * last found (checked on use: frees reorder seqs), so that a batch's calls find their sequences
     * in O(1) instead of a scan of every sequence of the cache per lookup */
    uint32_t seq_hint[64];
    pkv_seq next_id;
    pkv_scratch rows_tmp; /* an append's window rows and runs */
    pkv_scratch job_tmp;  /* an append's plans and jobs */
    pkv_scratch attn_tmp; /* an attention's sequence views and table */
    float *rcp;          /* rcp[i] = (float)(1.0 / i) for mining, grown on demand */
    uint32_t rcp_len;
    int general_appends; /* tests only: decode appends through the general planner (append.c) */
};

/* status.c: record the detailed message for pkv_last_error() and send it to the log; returns s. */
pkv_status pkv_fail(const pkv_context *ctx, pkv_status s, const char *fmt, ...);
void pkv_log(const pkv_context *ctx, pkv_log_level level, const char *fmt, ...);
void pkv_clear_error(void);

/* cache.c */
/* s->p with room for `bytes` (grown with headroom; NULL when out of host memory, s unchanged). */
void *pkv_scratch_get(pkv_scratch *s, size_t bytes);
pkv_sequence *pkv_find_seq(const pkv_cache *c, pkv_seq id);
pkv_status pkv_validate_config(const pkv_cache_config *cfg);
pkv_status pkv_cache_new(pkv_context *ctx, const pkv_cache_config *cfg, pkv_cache **out);
pkv_status pkv_seq_insert(pkv_cache *c, pkv_seq id, pkv_sequence **out);
pkv_status pkv_next_seq_id(pkv_cache *c, pkv_seq *id);

/* append.c / attention.c: the engine-integration entry points, with the application's data already
 * converted and checked in device memory (a GPU backend's staging buffer): tokens are fp16, per
 * sequence of seqs in turn K [n][H][d] then V [n][H][d], from tokens_off; q is fp32 at q_off, out fp32
 * goes to out_off. An append of several sequences (one layer) is one call's work: one window op for
 * all of them, one flush op of the windows that fill, the cache as after appending them one by one. */
pkv_status pkv_append_device(pkv_cache *c, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer, uint32_t n,
                             pkv_buf *tokens, size_t tokens_off);
/* (its arguments must have passed pkv_append_batch_check, under the same lock: it does not check them
 * again, a decode step's host work per sequence being what engine mode counts) */
/* The checks of a batch append's arguments (each sequence as pkv_append_check, no sequence twice); fn
 * names the call in messages. */
pkv_status pkv_append_batch_check(pkv_cache *c, const char *fn, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                  uint32_t n, pkv_dtype dtype);
/* Attention with q and out in device memory. p: the full params pkv_attention_check wrote (the
 * caller checked them, in the same call: a context is used by one thread at a time), not checked
 * again. */
pkv_status pkv_attention_device(pkv_cache *c, const pkv_attention_params *p, pkv_buf *q, size_t q_off, pkv_buf *out,
                                size_t out_off);
/* The checks pkv_append and pkv_append_device share (everything but the values). */
pkv_status pkv_append_check(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, pkv_dtype dtype);
/* The application's attention params (any known struct_size) into *full, checked against the cache. */
pkv_status pkv_attention_check(pkv_cache *c, const pkv_attention_params *app, pkv_attention_params *full);

/* pool.c */
/* The shards of a new cache (how many layers share one: from the budget and the buffer limit). */
pkv_status pkv_pool_init(pkv_cache *c);
void pkv_pool_destroy(pkv_cache *c);
static inline pkv_shard *pkv_shard_of(const pkv_cache *c, uint32_t layer) { return &c->shards[layer / c->shard_layers]; }
uint64_t pkv_reserved_bytes(const pkv_cache *c);
/* Asks for more slots in the arenas of layer's shard; pkv_pool_ensure then makes room for all asked. */
void pkv_pool_want(pkv_cache *c, uint32_t layer, uint32_t blocks, uint32_t chunks, uint32_t windows);
/* Makes room for the slots asked for (budget check over all shards, then growth) and clears the
 * requests. Nothing visible changes on error. */
pkv_status pkv_pool_ensure(pkv_cache *c);
/* Takes a free slot; pkv_pool_ensure must have made room. */
uint32_t pkv_arena_take(pkv_arena *a);
void pkv_arena_retain(pkv_arena *a, uint32_t slot);
void pkv_arena_release(pkv_arena *a, uint32_t slot);
void pkv_layer_release(pkv_cache *c, uint32_t layer, pkv_layer_state *L);

#endif
