/* The parts of an append (append.c) that its mining (append_mine.c) shares: the call's tokens, the plan
 * of one layer and its job (the slots it takes, what to restore if the call fails). */
#ifndef PKV_APPEND_JOB_H
#define PKV_APPEND_JOB_H

#include <stdint.h>

#include "internal.h"

/* The call's fp16 tokens: per source (a layer of the call) K [n][H][d] and V [n][H][d] in host memory,
 * or (the engine integration of a GPU backend) in a device buffer, source after source, each K [n][H][d]
 * then V [n][H][d]: n_src sources (the sequences of a batch append of one layer; 1 for one append). A
 * job reads source job->idx. */
typedef struct token_src {
    const uint16_t *const *k, *const *v;
    pkv_buf *dev;
    size_t dev_off;
    uint32_t n;
    uint32_t n_src; /* device sources (0 counts as 1) */
} token_src;

/* Byte offset of device source i (K, then V n * H * d halves later). */
static inline size_t pkv_src_dev_off(const token_src *src, const pkv_geom *g, uint32_t i)
{
    return src->dev_off + (size_t)i * 2 * src->n * g->H * g->d * 2;
}

typedef struct plan {
    int mine;
    uint32_t n_quant;  /* tokens quantized by mining */
    uint32_t blocks, chunks, windows;
    uint32_t new_groups;
} plan;

/* One (sequence, layer) of the call: the layers of one sequence (pkv_append_layers), or the sequences
 * of one layer (a batch append of the engine integration). Every slot its rounds will need is taken before any device work, layer by
 * layer in the order a one-layer append takes them (windows, mined chunks and blocks, then per
 * flush a new or copied chunk and the blocks), so that the cache is the same, slot for slot, as
 * after one-layer appends. */
typedef struct layer_job {
    uint32_t layer, idx;     /* cache layer; index of its source in the call's tokens */
    pkv_layer_state *L;
    plan p;
    uint32_t n;              /* tokens of the layer's source: the call's, or for a late mine the window's then the call's */
    int late;                /* mines over the window's tokens and the call's (pkv_mines_late) */
    uint32_t pos;            /* tokens of the call stored so far */
    uint32_t take;           /* this round: window rows written */
    int flush;               /* this round: the window is flushed */
    uint32_t n_flush, done;  /* flushes whose slots are taken, flushes done */
    int mine_slots;          /* the mined chunks and blocks are taken and not yet stored or given back */
    uint32_t *slots;         /* [mined groups][H] op order [H][groups], then [n_flush][H][R / G] */
    uint32_t (*fresh)[3];    /* chunks taken for a later flush's pattern: (flush, head, chunk index) */
    uint32_t n_fresh;
    /* the layer before the call, restored if the call fails */
    uint32_t start_blocks, start_window, start_bank;
    int had_windows;
    uint32_t *cow;           /* [H]: the shared chunk a copy-on-write replaced (chunk start_bank / 32), or NO_SLOT */
    uint8_t *saved_window;   /* [H][window_bytes] when a later round overwrites the starting rows, else NULL */
} layer_job;

/* append.c: accumulates the device time of the call's ops (pkv_last_op_time). */
void pkv_add_op_time(pkv_cache *c, double *acc);

/* append_mine.c */
/* Whether this call makes the layer mine late (PKV_MINING_AT_M: over its window's tokens then the call's). */
int pkv_mines_late(const pkv_cache *c, const pkv_layer_state *L, uint32_t n);
/* The call's source with the late layers' window rows joined in front (host memory; *mem to free). */
pkv_status pkv_join_late(pkv_cache *c, const layer_job *jobs, uint32_t nl, const token_src *src, token_src *out,
                         void **mem);
/* Round 0's mining of the jobs that mine: one mine op per source length. */
pkv_status pkv_run_mines(pkv_cache *c, layer_job *jobs, uint32_t nj, const token_src *src, double *op_ms);

#endif
