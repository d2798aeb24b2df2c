/* The OpenCL backend's private state, shared by its files. */
#ifndef PKV_OCL_INTERNAL_H
#define PKV_OCL_INTERNAL_H

#include <stdarg.h>

#include "attn_plan.h"
#include "backend.h"
#include "ocl_loader.h"

struct pkv_buf {
    cl_mem mem;
    size_t bytes;
};

/* A device buffer reused between calls, grown on demand (kernel inputs and scratch). */
typedef struct pkv_ocl_scratch {
    cl_mem mem;
    size_t bytes;
} pkv_ocl_scratch;

enum pkv_ocl_kernel_id {
    PKV_K_KM_INIT,      /* k-means: centroids from the initial tokens */
    PKV_K_KM_ASSIGN,    /* k-means: nearest centroid per token; the final assignment with the V gate */
    PKV_K_KM_PARTIAL,   /* k-means: chunk sums */
    PKV_K_KM_REDUCE,    /* k-means: the chunk sums pairwise, new centroids, shifts */
    PKV_K_KM_FINISH,    /* k-means: stop test */
    PKV_K_KM_STORE,     /* k-means: centroids -> fp16 bank patterns */
    PKV_K_CENTRE,       /* flush: Chebyshev centre of each unit's window -> new pattern */
    PKV_K_ASSIGN,       /* flush: nearest pattern of every window token (K and V) and V's gate */
    PKV_K_ENCODE,       /* one work-group per (unit, block): quantize, pack */
    PKV_K_QSEARCH,      /* the MSE quantizer's range search of each run, before PKV_K_ENCODE */
    PKV_K_WINDOW,       /* window writes */
    PKV_K_STREAM,       /* plain streaming read, for the read-bandwidth measurement */
    PKV_K_FMA_PROBE,    /* checks that the compiler honours FP_CONTRACT OFF */
    PKV_K_STAGE,        /* engine integration: the application's K/V or q converted and checked */
    PKV_K_COUNT
};

/* Scratch buffers, reused between ops. */
enum pkv_ocl_scratch_id {
    PKV_S_PARAMS, PKV_S_TOKENS, PKV_S_U0, PKV_S_U1, PKV_S_U2, PKV_S_TAB, PKV_S_WORK, PKV_S_WROWS,
    PKV_S_PART, PKV_S_OUT, PKV_S_QC, PKV_S_DUMMY, PKV_S_COUNTERS, PKV_S_LOGITS, /* PKV_S_LOGITS: split attention's logit records */
    PKV_S_RAW, PKV_S_STAGED, PKV_S_STATUS, /* engine integration: raw input, converted input, status word */
    PKV_S_COUNT
};

/* The attention program of one cache shape (the shape is compiled in: ocl_attention.cl). */
#define PKV_OCL_GROUPS 3
#define PKV_OCL_ATTN_SHAPE 15 /* d, G, k_bits, v_bits, mode, rows per work-group, bank capacity, V staged, V channels per item, K staged, chunks per step, prefetch, fixed-point histogram, fp16 V depth, split attention */
#define PKV_OCL_MAX_ATTN_PROGRAMS 16
/* Its kernels are programs of their own (built in parallel, each cached on disk), each built when a
 * call first needs it. */
/* A split shape (shape[14]) runs logits and values in place of the one-pass kernel (MAIN). */
enum { PKV_OCL_ATTN_QC, PKV_OCL_ATTN_MAIN, PKV_OCL_ATTN_MERGE, PKV_OCL_ATTN_LOGITS, PKV_OCL_ATTN_VALUES, PKV_OCL_ATTN_PROGS };
typedef struct pkv_ocl_attn_program {
    uint32_t shape[PKV_OCL_ATTN_SHAPE];
    cl_program prog[PKV_OCL_ATTN_PROGS];
    cl_kernel qc, attn, merge, logits, values;
} pkv_ocl_attn_program;

typedef struct pkv_ocl {
    const pkv_ocl_api *cl;
    cl_platform_id platform;
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue q;
    int owns_handles; /* 0 when the application passed its own context and queue */
    pkv_log_fn log;
    void *log_user;
    pkv_log_level log_level;
    char cache_dir[1024];
    char platform_version[128], driver_version[128], device_version[128];
    size_t max_wg;        /* device max work-group size */
    cl_ulong max_alloc;   /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    cl_ulong local_mem;
    cl_uint compute_units;
    cl_program prog[PKV_OCL_GROUPS]; /* the write path's kernels, in three programs (ocl_program.c) */
    cl_kernel k[PKV_K_COUNT];
    size_t wg[PKV_K_COUNT]; /* work-group size used for each kernel (PKV_K_QSEARCH: the most it may use) */
    pkv_ocl_attn_program attn[PKV_OCL_MAX_ATTN_PROGRAMS];
    uint32_t n_attn;
    pkv_attn_plan_memo attn_plan; /* the last attention op's plan (attn_plan.h) */
    size_t counter_words;   /* attention's merge counters in s[PKV_S_COUNTERS], kept at zero between ops */
    pkv_ocl_scratch s[PKV_S_COUNT];
    uint32_t *wstage;       /* host staging of window writes (runs, then rows), reused */
    size_t wstage_bytes;
    /* timing of the last op: kernel events when the queue profiles, else the host clock */
    int profiling;
    cl_event ev_first, ev_last;
    double op_t0, last_op_ms;
    /* Enqueued calls (pkv_opencl_enqueue_*): nothing waits. finish() does not clFinish, uploads are
     * non-blocking from host copies freed when they complete, new buffers are not waited for. */
    int deferred;
    int status_ready; /* s[PKV_S_STATUS] holds its initial words */
    int is_cpu;       /* CL_DEVICE_TYPE_CPU (PoCL) */
    /* Pinned staging of large host uploads (pkv_ocl_upload_host): two halves of a host-allocated
     * buffer, mapped once; each half's last write; pin_failed: creating it failed, not tried again. */
    int pin_failed;
    cl_mem pin;
    unsigned char *pin_map;
    size_t pin_half;
    cl_event pin_ev[2];
    uint32_t pin_next;
    /* Window-write staging (pkv_ocl_wslot_take): PKV_OCL_WSLOTS slots of a host-allocated buffer,
     * mapped once, each with its last write's event; wpin_failed: creating it failed. */
    int wpin_failed;
    cl_mem wpin;
    unsigned char *wpin_map;
    size_t wslot_bytes;
    cl_event wslot_ev[8];
    uint32_t wslot_next;
} pkv_ocl;

static inline pkv_ocl *pkv_ocl_of(pkv_backend *be) { return (pkv_ocl *)be->impl; }

void pkv_ocl_log(const pkv_ocl *o, pkv_log_level level, const char *fmt, ...);

/* ocl_devices.c */
#define PKV_OCL_MAX_DEVICES 32
typedef struct pkv_ocl_device_ref {
    cl_platform_id platform;
    cl_device_id device;
} pkv_ocl_device_ref;
void pkv_ocl_describe(const pkv_ocl_api *cl, cl_platform_id plat, cl_device_id d, uint32_t index,
                      pkv_device_info *info);
/* All devices of all platforms, in platform order (refs may be NULL). */
pkv_status pkv_ocl_enumerate(const pkv_ocl_api *cl, pkv_ocl_device_ref *refs, pkv_device_info *infos, size_t cap,
                             size_t *count, char *why, size_t why_len);
pkv_status pkv_ocl_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                        size_t why_len);

/* ocl_buffers.c: the pkv_buf part of the backend table */
pkv_status pkv_ocl_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out);
void pkv_ocl_buf_free(pkv_backend *be, pkv_buf *buf);
pkv_status pkv_ocl_buf_write(pkv_backend *be, pkv_buf *buf, size_t offset, const void *src, size_t bytes);
pkv_status pkv_ocl_buf_read(pkv_backend *be, pkv_buf *buf, size_t offset, void *dst, size_t bytes);
pkv_status pkv_ocl_buf_copy(pkv_backend *be, pkv_buf *dst, size_t dst_offset, pkv_buf *src, size_t src_offset,
                            size_t bytes);
/* Maps a CL error to a status: allocation failures -> PKV_ERR_OUT_OF_DEVICE_MEMORY, else PKV_ERR_DEVICE. */
pkv_status pkv_ocl_status(cl_int err);
/* Makes s hold at least `bytes` (contents not kept). */
pkv_status pkv_ocl_scratch_reserve(pkv_ocl *o, pkv_ocl_scratch *s, size_t bytes);
pkv_status pkv_ocl_scratch_upload(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes);
/* The same without waiting for the queue, in any mode: the data is copied first (freed once written). */
pkv_status pkv_ocl_scratch_upload_async(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes);
void pkv_ocl_scratch_free(pkv_ocl *o, pkv_ocl_scratch *s);
/* Writes host memory into mem at off as scratch uploads do: blocking, or in deferred mode from a copy
 * without waiting (src may change once this returns, either way). */
pkv_status pkv_ocl_write_at(pkv_ocl *o, cl_mem mem, size_t off, const void *src, size_t bytes);
/* ocl_tables.c: an attention op's block slots into its table (table_word: where the sequences'
 * block_offsets count from) from the sequences' resident copies (pkv_tab_mirror), uploading only
 * the blocks added since; pkv_ocl_tables_forget after a failed op. */
pkv_status pkv_ocl_tables_record(pkv_backend *be, uint32_t H, const pkv_attn_op *op, cl_mem table);
void pkv_ocl_tables_forget(const pkv_attn_op *op);
/* Writes `bytes` of host memory into dst at dst_off without waiting for the device (blocking in
 * deferred mode). Uploads of 1 MiB or more on a GPU go through the pinned staging: pieces of up to 32
 * MiB copied on threads into a half, then written from it (the DMA path; a driver copies pageable
 * memory on one thread first). PKV_OPENCL_PINNED=0 never stages, 1 always stages uploads of 1 MiB
 * or more (CPU devices too), N > 1 stages every upload through halves of N bytes (tests). */
cl_int pkv_ocl_upload_host(pkv_ocl *o, cl_mem dst, size_t dst_off, const void *src, size_t bytes);
/* Waits for the pinned staging's writes and frees it. */
void pkv_ocl_pinned_free(pkv_ocl *o);
/* A decode step's window rows without a host allocation or copy per call: a slot of at least `bytes`
 * of host-allocated (pinned) memory for the caller to fill, then written to dst by
 * pkv_ocl_wslot_write without a wait; a slot is reused PKV_OCL_WSLOTS writes later, after its write
 * completed (waited for if not). NULL (use another path, which copies) in deferred mode, for more
 * than 4 MiB, or when the buffer cannot be made. */
#define PKV_OCL_WSLOTS 8u
unsigned char *pkv_ocl_wslot_take(pkv_ocl *o, size_t bytes, uint32_t *slot);
cl_int pkv_ocl_wslot_write(pkv_ocl *o, uint32_t slot, cl_mem dst, size_t bytes);
void pkv_ocl_wslots_free(pkv_ocl *o);

/* ocl_program.c: builds (or loads from the on-disk binary cache) the program and its kernels. */
pkv_status pkv_ocl_build(pkv_ocl *o, char *why, size_t why_len);
void pkv_ocl_release_program(pkv_ocl *o);
/* The attention programs for a shape, built (or loaded from the cache) on first use: ocl_attn, the
 * q.C pre-pass in PATTERN mode, the merge kernel with separate_merge (PKV_ATTN_SEPARATE_MERGE). */
pkv_status pkv_ocl_attn_program_get(pkv_ocl *o, const uint32_t shape[PKV_OCL_ATTN_SHAPE], int separate_merge,
                                    pkv_ocl_attn_program **out);

/* ocl_ops.c */
pkv_status pkv_ocl_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op);
pkv_status pkv_ocl_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op);
pkv_status pkv_ocl_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op);
pkv_status pkv_ocl_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op);
pkv_status pkv_ocl_prewarm(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len);

/* Kernel argument helper: sets args in order, each given as (size, pointer). */
cl_int pkv_ocl_args(pkv_ocl *o, cl_kernel k, int n, ...);
/* Runs a 1-D range of n_groups work-groups of `local` items (timed as part of the current op). */
cl_int pkv_ocl_launch(pkv_ocl *o, cl_kernel k, size_t n_groups, size_t local);
/* Brackets an op for pkv_last_op_time. */
void pkv_ocl_op_begin(pkv_ocl *o);
void pkv_ocl_op_end(pkv_ocl *o, int ok);
double pkv_ocl_last_op_ms(pkv_backend *be);
void pkv_ocl_release_events(pkv_ocl *o);

/* ocl_bench.c: streaming-read bandwidth of device memory (iface measure_read). */
pkv_status pkv_ocl_measure_read(pkv_backend *be, uint64_t bytes, double *gbps);

#endif
