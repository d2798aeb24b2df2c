/* Engine integration for the OpenCL backend: run PatternKV on the application's own OpenCL
 * context and command queue, so its kernels and ours share one queue (no extra synchronisation).
 *
 *   pkv_opencl_external ext = {.struct_size = sizeof ext, .context = ctx, .device = dev, .queue = q};
 *   pkv_context_params p = pkv_context_params_default();
 *   p.opencl_external = &ext;   (the backend is then OpenCL)
 *
 * The library retains the handles (clRetain*) and releases them when its context is freed; the
 * application may release its own references at any time. The queue must be in-order and belong to
 * `context` and `device`. Every synchronous PatternKV call has finished its device work when it
 * returns; the enqueued calls below return at once with an event.
 * The handles must come from the same OpenCL ICD loader the library loads (libOpenCL.so.1). */
#ifndef PATTERNKV_OPENCL_H
#define PATTERNKV_OPENCL_H

#include "patternkv.h"

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pkv_opencl_external {
    uint32_t struct_size;      /* sizeof(pkv_opencl_external) (stable ABI, patternkv.h) */
    cl_context context;        /* required */
    cl_device_id device;       /* required: a device of `context` */
    cl_command_queue queue;    /* NULL: the library creates an in-order queue on `context` */
} pkv_opencl_external;

/* ---- synchronous calls on application buffers ------------------------------------------------
 * pkv_append / pkv_attention with K, V, q and out in cl_mem buffers of the context's cl_context: the
 * same layouts at byte offsets (K, V [n_tokens][n_kv_heads][head_dim] of dtype; q of params->q_dtype
 * and out fp32, [n_seqs][q_len][n_q_heads][head_dim]). Each range is (buffer, offset, size): size
 * must hold what the call reads or writes and the range must lie in the buffer (CL_MEM_SIZE), else
 * PKV_ERR_INVALID_ARGUMENT. The data stays on the device: copied into the library's buffers on the
 * context's queue, converted and checked there (NaN, Inf, beyond fp16 -> PKV_ERR_NONFINITE, nothing
 * stored; the call reads that check back, 8 bytes); then the ops run as pkv_append / pkv_attention's
 * do and the call waits for them (clFinish on the queue, which includes earlier work of yours on
 * it). k_new/v_new are not supported here. PKV_ERR_UNSUPPORTED when the cache is not on OpenCL. */
PKV_API pkv_status pkv_opencl_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                     size_t k_offset, size_t k_size, cl_mem v, size_t v_offset, size_t v_size,
                                     pkv_dtype dtype);
PKV_API pkv_status pkv_opencl_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                        size_t q_offset, size_t q_size, cl_mem out, size_t out_offset,
                                        size_t out_size);
/* Batch append: n_tokens tokens to each of the n_seqs distinct sequences seqs[] of one layer, K and V
 * [n_seqs][n_tokens][n_kv_heads][head_dim] of dtype (sequence i's at offset i * n_tokens * n_kv_heads *
 * head_dim values). The cache ends up as after pkv_opencl_append of each sequence in turn (bit for
 * bit), with one conversion launch, one window write and one flush op for all of them. */
PKV_API pkv_status pkv_opencl_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                           uint32_t n_tokens, cl_mem k, size_t k_offset, size_t k_size, cl_mem v,
                                           size_t v_offset, size_t v_size, pkv_dtype dtype);

/* ---- enqueued calls (engine mode) ------------------------------------------------------------
 * The same work, enqueued on the context's command queue (the application's, given in
 * pkv_opencl_external) after the n_wait events of `wait` (a barrier with that wait list), without
 * waiting for anything: no clFinish, no blocking transfer (the small tables the ops need go by
 * non-blocking writes of host copies the library frees when they ran). *event (if not NULL) gets an
 * event that completes when everything the call enqueued has run (clReleaseEvent it). The queue is
 * flushed so the work starts. As on Vulkan, host decisions (block tables, flushes, new patterns,
 * splits, mining of a first prompt) are made at enqueue time, so the cache's host state includes
 * the tokens at once; data checks run on the device: a bad value is stored as 0, sets a bit and the
 * lowest failing layer in the context's status word (pkv_opencl_read_status, after the work
 * completed), and the cache stays consistent and usable (recover as patternkv_vulkan.h says: drop
 * or recompute the sequence, or continue from a fork taken before).
 * Ordering: the queue is in-order, so your commands enqueued before a call run before it (its
 * copies of K/V/q see your writes) and commands after it see `out`; with another queue, pass your
 * events in `wait` and wait for *event. Lifetimes: keep the cache, the context and the K/V/q buffers
 * until the returned event completed; do not make synchronous calls on the context meanwhile.
 * Growing the library's buffers (its first calls, or a cache that outgrows its arenas) allocates
 * new buffers without waiting (an allocation failure then shows as an error of a later call). */
PKV_API pkv_status pkv_opencl_enqueue_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                             size_t k_offset, size_t k_size, cl_mem v, size_t v_offset, size_t v_size,
                                             pkv_dtype dtype, cl_uint n_wait, const cl_event *wait, cl_event *event);
/* The enqueued batch append (pkv_opencl_append_batch's layout and result). */
PKV_API pkv_status pkv_opencl_enqueue_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                                   uint32_t n_tokens, cl_mem k, size_t k_offset, size_t k_size, cl_mem v,
                                                   size_t v_offset, size_t v_size, pkv_dtype dtype, cl_uint n_wait,
                                                   const cl_event *wait, cl_event *event);
PKV_API pkv_status pkv_opencl_enqueue_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                                size_t q_offset, size_t q_size, cl_mem out, size_t out_offset,
                                                size_t out_size, cl_uint n_wait, const cl_event *wait, cl_event *event);

enum { /* bits of the status word */
    PKV_OPENCL_STATUS_KV_NONFINITE = 1u << 0, /* an enqueued append's K or V held NaN, Inf or |x| > 65504 */
    PKV_OPENCL_STATUS_Q_NONFINITE = 1u << 1,  /* an enqueued attention's q held NaN or Inf */
};

/* The context's status word of enqueued calls (waits for the queue: call it when their events
 * completed): *flags the PKV_OPENCL_STATUS_* bits since the last reset, *first_layer (may be NULL)
 * the lowest layer that failed (UINT32_MAX if none); reset != 0 clears it. */
PKV_API pkv_status pkv_opencl_read_status(pkv_cache *cache, uint32_t *flags, uint32_t *first_layer, int reset);

#ifdef __cplusplus
}
#endif
#endif /* PATTERNKV_OPENCL_H */
