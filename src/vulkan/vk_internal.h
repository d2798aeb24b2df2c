/* The Vulkan backend's private state, shared by its files (one idea per file):
 * vk_device.c (instance, devices, features), vk_memory.c (pages, buffers, staging ring, submits),
 * vk_pipelines.c (shaders, pipeline variants, on-disk pipeline cache), vk_ops.c (mine, flush,
 * attention), vk_backend.c (the backend table), vk_bench.c (bandwidth and timing probes). */
#ifndef PKV_VK_INTERNAL_H
#define PKV_VK_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "attn_plan.h"
#include "backend.h"
#include "vk_loader.h"

enum pkv_vk_kernel {
    PKV_K_KMEANS_INIT,
    PKV_K_KMEANS_ASSIGN,
    PKV_K_KMEANS_PARTIAL,
    PKV_K_KMEANS_REDUCE,
    PKV_K_KMEANS_FINISH,
    PKV_K_KMEANS_STORE,
    PKV_K_ASSIGN,
    PKV_K_QUANT_SEARCH,
    PKV_K_QUANT_BLOCK,
    PKV_K_FLUSH_CENTRE,
    PKV_K_ATTN_QC,
    PKV_K_ATTN_DECODE,
    PKV_K_ATTN_DECODE_SG, /* the same with subgroup arithmetic */
    PKV_K_ATTN_DECODE_CM, /* the same on cooperative matrices (attn_step_cm.glsl) */
    PKV_K_ATTN_MERGE,
    PKV_K_ATTN_WARP,    /* one warp per item (attn_warp.comp) */
    PKV_K_ATTN_WARP_SG, /* the same with subgroup arithmetic */
    PKV_K_ATTN_LOGITS,    /* split attention, pass 1 (attn_logits.comp) */
    PKV_K_ATTN_LOGITS_SG,
    PKV_K_ATTN_LOGITS_CM, /* the same on cooperative matrices (attn_split_cm.glsl) */
    PKV_K_ATTN_LOGITS_CME, /* the same with the matrices emulated (tests) */
    PKV_K_ATTN_VALUES,    /* pass 2 (attn_values.comp) */
    PKV_K_ATTN_VALUES_SG,
    PKV_K_ATTN_VALUES_CM,
    PKV_K_ATTN_VALUES_CME,
    PKV_K_READ_BW,
    PKV_K_STAGE_INPUT,
    PKV_K_WINDOW_WRITE,
    PKV_K_COUNT
};

#define PKV_VK_SPEC_MAX 17  /* specialization constants: [0] workgroup size, then per kernel */
#define PKV_VK_PUSH_BYTES 128
/* Bindings of the one descriptor set layout: the op's four buffers (pkv_vk_dispatch's bufs), then the
 * context's status word (vk->status), the same in every set: attention converts and checks a recorded
 * call's q where it reads it (attn_common.glsl's q_value) and reports there. */
#define PKV_VK_BINDINGS 5

typedef struct pkv_vk_variant {
    int kernel;
    uint32_t spec[PKV_VK_SPEC_MAX];
    VkPipeline pipe;
    int pending;       /* being created by a background thread (pkv_vk_pipelines_start) */
} pkv_vk_variant;

/* The kernel shapes attention runs for an op's query rows per KV head (rows_group: its q_len times
 * the GQA group): rows per workgroup, whether the V codes are staged, and the three pipelines'
 * (kernel, specialization). Attention and pkv_vk_prewarm share it (vk_ops.c: attn_config). */
typedef struct pkv_vk_attn_cfg {
    uint32_t nr, stage_v, wg;
    uint32_t groups_per_cu, max_splits, cps_multiple; /* the planner's wave, the merge's limit, the kernel's step */
    pkv_attn_shape shape;
    int split;                           /* split attention: kernel[3] the logits pass, kernel[1] the values pass */
    int emu_refused;                     /* PKV_ATTN_COOPMAT=emu asked for, split attention runs, and its emulated kernels do not serve the shape */
    int kernel[4];                       /* q.C pre-pass, decode, separate merge, logits */
    uint32_t spec[4][PKV_VK_SPEC_MAX];
} pkv_vk_attn_cfg;

/* The last attention configuration worked out, with what it depends on (the cache's geometry, the
 * context's shape switches, the op's q_len and query heads): a decode step asks for the same one
 * layer after layer. */
typedef struct pkv_vk_attn_memo {
    int valid;
    pkv_geom g;
    pkv_attn_env env;
    uint32_t q_len, n_q_heads;
    int size; /* the op's chunks for the device: few, some, many (vk_ops.c: attn_chunk_class) */
    pkv_vk_attn_cfg cfg;
    VkPipeline pipe[4];      /* cfg's pipelines once looked up (pipelines live as long as the context) */
    /* The last op's plan, reused by the next op with the same sequences' lengths, banks and table
     * offsets, as every layer of a decode step after the first (attn_plan.h; OpenCL keeps one too). */
    pkv_attn_plan_memo plan;
} pkv_vk_attn_memo;

/* One large device-local allocation with one VkBuffer over all of it; pkv_bufs are ranges of it. */
typedef struct pkv_vk_range { VkDeviceSize off, size; } pkv_vk_range;
typedef struct pkv_vk_page {
    VkDeviceMemory mem;
    VkBuffer buf;
    VkDeviceSize size, used;
    pkv_vk_range *free_list; /* sorted by offset, coalesced */
    uint32_t n_free, cap_free;
} pkv_vk_page;

struct pkv_buf {
    pkv_vk_page *page;
    VkDeviceSize off, size;
};

typedef struct pkv_vk_pending_read { VkDeviceSize ring_off; void *dst; size_t bytes; } pkv_vk_pending_read;

typedef struct pkv_vk {
    pkv_vk_funcs f;
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    int owns_instance, owns_device;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    uint8_t device_uuid[VK_UUID_SIZE];
    uint32_t subgroup_size, subgroup_arith; /* subgroup arithmetic in compute shaders */
    uint32_t features;                      /* PKV_FEATURE_* */
    uint32_t compute_units;                 /* multiprocessors / compute units where the driver says, else 0 */
    int coopmat;                            /* VK_NV_cooperative_matrix and shaderFloat16 enabled (our own device) */
    int pipeline_stats;                     /* PKV_VULKAN_PIPELINE_STATS: log each pipeline's statistics */
    int eager_attention;                    /* prepare creates attention's pipelines too (vk_ops.c) */
    pthread_mutex_t lock;
    void (*ext_lock)(void *), (*ext_unlock)(void *); /* the application's queue lock, if given */
    void *ext_lock_user;

    /* memory */
    pkv_vk_page **pages;
    uint32_t n_pages;
    VkDeviceSize page_bytes, align, device_bytes, device_limit;
    pkv_buf *scratch;          /* per-op uploads, tables, partial results */
    pkv_buf *staged;           /* the application's K/V or q converted on the device (vk_stage.c) */
    pkv_buf *dummy;            /* bound where an arena does not exist */
    /* The device status word (vk_record.c): words [0] flags and [1] lowest failing layer of the
     * recorded calls; [2], [3] the same for the synchronous call running now. */
    pkv_buf *status;

    /* Recording into the application's command buffer (vk_record.c). While `external` is set,
     * vk->cb is the application's: pkv_vk_begin/finish neither begin, end nor submit it, uploads
     * are recorded inline (vkCmdUpdateBuffer), descriptor sets come from ext_sets (never reset), and
     * buffers are retired instead of freed. Once a call was recorded (`recorded_once`), every freed
     * buffer is retired (a pending command buffer of the application may still use it) until the
     * context is freed. */
    int external, recorded_once;
    int after_barrier;         /* recorded: the library's last command in vk->cb is a full barrier */
    int flush_chained;         /* a shard's flush recorded, not submitted: the next shard's flush of the call follows (pkv_flush_op.more) */
    /* recorded: the library's last command in vk->cb has no barrier after it (PKV_VK_OPEN_*): a
     * recorded append's window conversion (reads one half of kv_raw, writes windows and the status
     * word) or a recorded attention's copy of out (reads scratch, writes the application's out).
     * The next op_start ends it with a barrier, except in an op whose commands before its first
     * barrier touch none of that memory (pkv_vk_op_start_overlap, the scatter's start);
     * pkv_vk_begin and uploads end it too. */
    int open_work;
    pkv_buf *kv_raw;           /* recorded appends' raw K/V and row table, two halves used in turn */
    VkCommandBuffer own_cb, last_cmd; /* the library's own; the last application one recorded into */
    pkv_buf **retired;
    uint32_t n_retired, cap_retired;
    VkDescriptorPool *ext_pools;
    uint32_t n_ext_pools, ext_pool_left;
    struct pkv_vk_ext_set { VkDescriptorBufferInfo bufs[4]; VkDescriptorSet set; } *ext_sets;
    uint32_t n_ext_sets, cap_ext_sets;
    uint32_t ext_hint[8]; /* by a hash of a set's first two bindings: 1 + the index of the set last found */
    /* Recorded attention's table upload skip (vk_ops.c attn_tab_kept): what the last recorded
     * attention op left in scratch at word seq_off (the sequence descriptors, items and zeroed merge
     * counters of plan number `made` of attn_memo.plan, `words` words), in command buffer cb at its
     * call for `layer`. An op of a later layer in the same command buffer with the same plan (every
     * layer of a decode step after the first) uploads nothing; any other op that writes scratch
     * clears `valid` (pkv_vk_scratch_written). */
    struct pkv_vk_attn_tab {
        int valid;
        VkCommandBuffer cb;
        VkBuffer buf;
        VkDeviceSize off;
        uint32_t seq_off, words, layer;
        uint64_t made;
    } attn_tab;
    const struct pkv_vk_stage_in *stage_pending; /* a recorded call's K/V or q not staged yet (vk_stage.c) */
    uint32_t *host_tab;                          /* a host table of the op being recorded, reused */
    size_t cap_host_tab;

    /* submission: the command buffer being recorded, a staging ring, a descriptor pool reset per op.
     * Two command buffers and fences take turns, each with its half of the ring: when an op's uploads
     * fill its half, that part is submitted without a wait and recording goes on in the other (whose
     * previous submission is waited for first), so the host's copy into one half overlaps the
     * device's copy out of the other. cb and fence are cbs[cur] and fences[cur]. */
    VkCommandPool cmd_pool;
    VkCommandBuffer cb, cbs[2];
    VkFence fence, fences[2];
    int in_flight[2];          /* submitted by a ring turn and not yet waited for */
    uint32_t deferred_windows; /* window ops recorded since the last submission (pkv_vk_kick) */
    uint64_t row_tables[3]; /* recorded appends' row tables: in the push constants, by rule, uploaded (tests) */
    uint64_t skipped_tables; /* recorded attention ops that left out their table upload (attn_tab; tests) */
    uint32_t cur;
    int recording;
    VkBuffer ring_buf;
    VkDeviceMemory ring_mem;
    uint8_t *ring_map;
    VkDeviceSize ring_size, ring_used, ring_half; /* ring_used: an offset in half `cur` */
    VkDeviceSize ring_target;  /* the configured size: the ring starts at most 4 MiB and grows to it once */
    pkv_vk_page ring_page;     /* the ring as a pkv_buf (ring_view) that a dispatch can bind; never freed */
    pkv_buf ring_view;
    pkv_vk_pending_read *pending;
    uint32_t n_pending, cap_pending;
    VkBufferCopy *regions;     /* copy regions of window writes, reused */
    uint32_t cap_regions;
    VkDescriptorPool desc_pool;
    /* what the library bound in vk->cb since it began recording into it (pkv_vk_unbind): a dispatch
     * binds a pipeline, a set or push constants only when they differ */
    VkPipeline bound_pipe;
    VkDescriptorSet bound_set;
    int push_valid;
    uint8_t pushed[PKV_VK_PUSH_BYTES]; /* the last push: its first pushed_bytes given, zeros after them */
    uint32_t pushed_bytes;
    VkDescriptorSet last_set;  /* the last set allocated since the pool was reset, and its buffers */
    VkDescriptorBufferInfo last_set_bufs[4];
    VkQueryPool query_pool;    /* two timestamps around each op, when the queue has them */
    uint64_t ts_mask;          /* the queue's valid timestamp bits */
    double last_attention_ms;
    double last_op_ms;         /* device time of the last mine/flush/attention, < 0 unknown */

    /* pipelines */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkShaderModule modules[PKV_K_COUNT];
    VkPipelineCache pipe_cache;
    char cache_path[1024];
    int cache_loaded;          /* the on-disk cache was valid and used */
    int cache_dirty;
    pkv_vk_variant *variants;  /* every pipeline made in this context, kept until it is freed */
    uint32_t n_variants, cap_variants;
    uint32_t hot_variant[PKV_K_COUNT]; /* per kernel: where its last looked-up variant was (checked before use) */
    pkv_vk_attn_memo attn_memo;        /* under `lock` */
    VkPipeline stage_pipe;             /* stage_input's pipeline once looked up (vk_stage.c) */
    /* The table above is read and changed under pipe_lock, never held while a pipeline compiles;
     * callers that create pipelines (the ops, prepare, prewarm) also hold `lock`, so that no two
     * create the same one. Background creations (pkv_vk_pipelines_start) signal pipe_done. */
    pthread_mutex_t pipe_lock;
    pthread_cond_t pipe_done;
    pthread_t *bg_threads;     /* background creations, joined when the context is freed */
    uint32_t n_bg, cap_bg;
    double pipeline_ms;        /* total time spent creating pipelines in this context */
    double ring_ms;            /* pkv_vk_memory_init's staging ring (create, allocate, map), for PKV_PROFILE */
    uint32_t pipelines_created;
} pkv_vk;

enum { PKV_VK_OPEN_NONE, PKV_VK_OPEN_SCATTER_1, PKV_VK_OPEN_SCATTER_2, PKV_VK_OPEN_COPY_OUT };

static inline pkv_vk *pkv_vk_of(pkv_backend *be) { return (pkv_vk *)be->impl; }

/* vk_device.c */
pkv_status pkv_vk_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                       size_t why_len);
pkv_status pkv_vk_open(pkv_vk *vk, const pkv_context_params *p, pkv_device_info *info, char *why, size_t why_len);
void pkv_vk_close(pkv_vk *vk);

/* vk_memory.c */
pkv_status pkv_vk_memory_init(pkv_vk *vk, const pkv_context_params *p);
void pkv_vk_memory_destroy(pkv_vk *vk);
pkv_status pkv_vk_buf_alloc(pkv_vk *vk, size_t bytes, pkv_buf **out);
void pkv_vk_buf_free(pkv_vk *vk, pkv_buf *b);
pkv_status pkv_vk_grow(pkv_vk *vk, pkv_buf **buf, size_t bytes);
pkv_status pkv_vk_scratch_reserve(pkv_vk *vk, size_t bytes);
/* An op other than attention records writes into scratch: attention's upload skip (attn_tab) ends. */
static inline void pkv_vk_scratch_written(pkv_vk *vk) { vk->attn_tab.valid = 0; }
pkv_status pkv_vk_begin(pkv_vk *vk);
pkv_status pkv_vk_upload(pkv_vk *vk, pkv_buf *dst, VkDeviceSize off, const void *src, size_t bytes);
pkv_status pkv_vk_download(pkv_vk *vk, pkv_buf *src, VkDeviceSize off, void *dst, size_t bytes);
/* The same on any VkBuffer of the device (absolute offsets): the application's buffers. */
pkv_status pkv_vk_upload_raw(pkv_vk *vk, VkBuffer dst, VkDeviceSize off, const void *src, size_t bytes);
pkv_status pkv_vk_download_raw(pkv_vk *vk, VkBuffer src, VkDeviceSize off, void *dst, size_t bytes);
void pkv_vk_barrier(pkv_vk *vk);
pkv_status pkv_vk_submit_wait(pkv_vk *vk);
/* Submits what is recorded without waiting (a ring turn) when it holds PKV_VK_KICK_WINDOWS window ops
 * or more and nothing to read back: a decode loop's deferred window writes then run while the host
 * goes on, instead of all at once with the next op (a flush ran 127 steps' writes of every layer,
 * each dispatch behind a barrier, inside its own wall time). Not in a recorded call. */
#define PKV_VK_KICK_WINDOWS 8u
pkv_status pkv_vk_kick(pkv_vk *vk);
/* Ends an op: submits what is recorded, waits, resets the descriptor pool. */
pkv_status pkv_vk_finish(pkv_vk *vk);
/* Recorded commands only: a barrier from every earlier compute or transfer command of the command
 * buffer, at the start of each op (the library's own submissions are ordered by their fence waits),
 * unless the library's last command was such a barrier already (pkv_vk_op_end_barrier). */
void pkv_vk_op_start(pkv_vk *vk);
/* op_start for an op whose commands up to its first barrier write only scratch and read only the
 * application's buffers: after a recorded append's window conversion (open_work) it records no
 * barrier, so that they overlap it. */
void pkv_vk_op_start_overlap(pkv_vk *vk);
/* Ends open work (open_work) with a barrier (recorded mode; nothing if none is open). */
void pkv_vk_close_open(pkv_vk *vk);
/* Ends an op with a full barrier; in recorded mode the next op_start then needs none. */
void pkv_vk_op_end_barrier(pkv_vk *vk);
/* Abandons a half-recorded op after an error (nothing recorded runs). */
void pkv_vk_abandon(pkv_vk *vk);
/* Room for bytes in the staging ring: *got is at most `want`, a multiple of `unit` (>= unit), at
 * ring offset *off. Submits what is recorded first when the ring is full (order is kept). */
pkv_status pkv_vk_ring_take(pkv_vk *vk, size_t want, size_t unit, VkDeviceSize *off, size_t *got);
/* vk->host_tab with room for `words` (NULL: out of host memory): a table an op builds and uploads. */
uint32_t *pkv_vk_host_table(pkv_vk *vk, size_t words);
/* Attention's block tables in device memory (vk_tables.c, backend.h: pkv_tab_mirror). Before the
 * op's commands: each sequence's mirror large enough (allocations record into vk->cb). In the op's
 * upload phase: sequence after sequence, its fixed part (op->table from its table_offset,
 * fixed_len / n_seqs words) and then its block slots [n_blocks][H] into dst from word table_word
 * (copies from the mirrors, updates of what they lack); seq_desc (not NULL): the op's sequence
 * descriptors ([n_seqs][PKV_ATTN_SEQ_WORDS]) get those offsets (words 3 and 6). On an op's failure:
 * forget what the mirrors hold (its commands may never run). */
pkv_status pkv_vk_tables_reserve(pkv_vk *vk, uint32_t H, const pkv_attn_op *op);
pkv_status pkv_vk_tables_record(pkv_vk *vk, uint32_t H, const pkv_attn_op *op, uint32_t *seq_desc, pkv_buf *dst,
                                size_t table_word);
void pkv_vk_tables_forget(const pkv_attn_op *op);
/* vk->regions holds at least n entries. */
pkv_status pkv_vk_regions_reserve(pkv_vk *vk, uint32_t n);

/* vk_pipelines.c */
pkv_status pkv_vk_pipelines_init(pkv_vk *vk, const pkv_context_params *p);
void pkv_vk_pipelines_destroy(pkv_vk *vk);
pkv_status pkv_vk_pipeline(pkv_vk *vk, int kernel, const uint32_t *spec, VkPipeline *out);
/* Creates the n (at most PKV_VK_PIPELINES_MAX) pipelines (kernel, spec) that do not exist yet, one
 * thread each where there are several (drivers compile each on the calling thread). _get also returns all n, old and
 * new, in out: an op's pipelines in one call, created together on its first use. */
#define PKV_VK_PIPELINES_MAX 64u
pkv_status pkv_vk_pipelines_create(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX]);
pkv_status pkv_vk_pipelines_get(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX],
                                VkPipeline *out);
/* Starts creating the n pipelines that do not exist yet on background threads, one each, and
 * returns: pkv_vk_pipelines_get waits for one still being created; a failed one is retried there
 * (and fails there). A thread that cannot start leaves its pipeline to be created on first use. */
void pkv_vk_pipelines_start(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX]);
/* Pipelines still being created in the background (tests). */
uint32_t pkv_vk_pipelines_pending(pkv_vk *vk);
/* Binds the pipeline, a descriptor set of the 4 buffers (NULL: dummy), push constants (each only when
 * not bound already); dispatches. */
pkv_status pkv_vk_dispatch(pkv_vk *vk, VkPipeline pipe, pkv_buf *const bufs[4], const void *push, uint32_t push_bytes,
                           uint32_t gx, uint32_t gy, uint32_t gz);
/* Forgets what is bound in vk->cb: when recording starts into a command buffer (the application's
 * binds come between two recorded calls). */
void pkv_vk_unbind(pkv_vk *vk);

/* vk_ops.c */
pkv_status pkv_vk_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op);
pkv_status pkv_vk_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op);
pkv_status pkv_vk_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op);
pkv_status pkv_vk_prepare(pkv_backend *be, const pkv_geom *g);
pkv_status pkv_vk_prewarm(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len);
pkv_status pkv_vk_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op);

/* vk_stage.c: the application's K/V or q (n_src buffers of n_values each, of `dtype`) copied into
 * the scratch buffer and converted, one after another, to fp16 (to_f32 = 0) or fp32 values. A value
 * that is NaN, Inf or beyond max_abs is stored as 0 and sets `flag` in status word status_word and
 * lowers word status_word + 1 to `layer`. row_pairs: words of one output row (K/V: head_dim / 2),
 * which lets a recorded append convert straight into window rows; 0 for q. vk->lock held. */
typedef struct pkv_vk_stage_in {
    const VkBuffer *src;
    const VkDeviceSize *src_off;
    uint32_t n_src;
    size_t n_values;
    pkv_dtype dtype;
    int to_f32;
    float max_abs;
    uint32_t status_word, flag, layer;
    uint32_t row_pairs;
} pkv_vk_stage_in;
/* Reserves scratch (raw values and a row table) and vk->staged for `in`. */
pkv_status pkv_vk_stage_reserve(pkv_vk *vk, const pkv_vk_stage_in *in);
/* Records the copy, a barrier, the conversion into vk->staged and a barrier (a whole op). */
pkv_status pkv_vk_stage_record(pkv_vk *vk, const pkv_vk_stage_in *in);
/* The parts: the copy of the raw values to word raw_off of dst (no barrier); the conversion of them
 * (in src) into `out` at word out_off (row_tab: a word offset in src of a row table, or 0xFFFFFFFF). */
void pkv_vk_stage_copy_to(pkv_vk *vk, const pkv_vk_stage_in *in, pkv_buf *dst, size_t raw_off);
pkv_status pkv_vk_stage_convert(pkv_vk *vk, const pkv_vk_stage_in *in, pkv_buf *src, pkv_buf *out, size_t raw_off,
                                size_t out_off, uint32_t row_tab);
/* Recorded appends: `in` (the caller's, alive until pkv_vk_stage_settle) is staged by the first
 * consumer: pkv_vk_write_window when pkv_vk_stage_scatters (straight into the window rows), else
 * pkv_vk_stage_settle, which every other op calls first (pkv_vk_stage_record into vk->staged). */
void pkv_vk_stage_defer(pkv_vk *vk, const pkv_vk_stage_in *in);
pkv_status pkv_vk_stage_settle(pkv_vk *vk);
/* Only when the op's runs name every staged row (an append whose tokens all go to the window in its
 * first round: a decode step); the others (mining first, or rounds with flushes between them, which
 * read vk->staged again) stage into vk->staged. */
int pkv_vk_stage_scatters(const pkv_vk *vk, const pkv_window_op *op);
/* Records the pending stage into the rows of dst the window op's runs name ([src row, dst row, rows]):
 * raw K/V and row table into a half of vk->kv_raw, a barrier, the conversion, and no barrier after
 * it (open_work): the next op's transfers into scratch, or the next append's into the other half,
 * overlap it. It overlaps an open copy of out in turn. */
pkv_status pkv_vk_stage_scatter(pkv_vk *vk, pkv_buf *dst, const uint32_t *runs, uint32_t n_runs);
/* vk_pipelines.c: whether a device UUID can key the pipeline cache file (not all zero). */
int pkv_vk_uuid_usable(const uint8_t *uuid);

#endif
