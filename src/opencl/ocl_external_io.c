/* Engine integration on OpenCL: K, V, q and out in the application's cl_mem buffers (same cl_context
 * as the library). The data stays on the device: copied into the library's scratch, converted and
 * checked there (ocl_stage in ocl_misc.cl), then the ordinary ops run on it. The enqueued calls
 * (pkv_opencl_enqueue_*) do all of it on the context's queue without waiting for anything (o->deferred)
 * and return an event; the synchronous calls check the values first (one small read) and wait for
 * their ops as pkv_append / pkv_attention do. include/patternkv_opencl.h has the contract. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "f16.h"
#include "internal.h"
#include "staged_io.h"
#include "ocl_internal.h"
#include "patternkv_opencl.h"

enum { STATUS_ENQUEUED = 0, STATUS_SYNC = 2 }; /* word offsets in s[PKV_S_STATUS] */

static pkv_status cl_fail(pkv_cache *c, const char *fn, const char *what, cl_int err)
{
    return pkv_fail(c->ctx, pkv_ocl_status(err), "%s: %s failed (%s)", fn, what, pkv_ocl_error_name(err));
}

/* A range of an application buffer: the given size must hold `need` bytes and lie in the buffer. */
static pkv_status check_range(pkv_cache *c, const char *fn, const char *what, cl_mem m, size_t off, size_t size,
                              size_t need)
{
    pkv_ocl *o = pkv_ocl_of(c->ctx->be);
    if (!m) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: %s buffer is NULL", fn, what);
    size_t mem_size = 0;
    cl_int err = o->cl->clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof mem_size, &mem_size, NULL);
    if (err != CL_SUCCESS) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: %s is not a cl_mem (%s)", fn, what, pkv_ocl_error_name(err));
    if (size < need)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: the %s range holds %zu bytes, the call needs %zu", fn, what, size, need);
    if (off > mem_size || size > mem_size - off)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: the %s range (%zu bytes at offset %zu) exceeds its buffer of %zu bytes",
                        fn, what, size, off, mem_size);
    return PKV_OK;
}

/* The status words exist and hold their initial values (flags 0, lowest layer UINT32_MAX). */
static cl_int status_init(pkv_ocl *o, uint32_t first_word, uint32_t n_words)
{
    if (pkv_ocl_scratch_reserve(o, &o->s[PKV_S_STATUS], 16) != PKV_OK) return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    if (!o->status_ready) first_word = 0, n_words = 4, o->status_ready = 1;
    static const cl_uint words[4] = {0, UINT32_MAX, 0, UINT32_MAX};
    cl_int err = CL_SUCCESS;
    for (uint32_t w = first_word; w < first_word + n_words && err == CL_SUCCESS; w++)
        err = o->cl->clEnqueueFillBuffer(o->q, o->s[PKV_S_STATUS].mem, &words[w], 4, (size_t)w * 4, 4, 0, NULL, NULL);
    return err;
}

/* Enqueues: copies of n_src ranges of n_values values each into s[PKV_S_RAW], their conversion into
 * s[PKV_S_STAGED] (fp16, or fp32 for q), the checks into the status words. */
static cl_int stage(pkv_ocl *o, const cl_mem *src, const size_t *off, uint32_t n_src, size_t n_values, pkv_dtype dtype,
                    int to_f32, float max_abs, uint32_t status_word, uint32_t flag, uint32_t layer)
{
    const size_t in_bytes = n_values * (dtype == PKV_F16 ? 2 : 4), out_bytes = n_values * (to_f32 ? 4 : 2);
    const size_t raw_words = (in_bytes + 3) / 4;
    if (pkv_ocl_scratch_reserve(o, &o->s[PKV_S_RAW], raw_words * 4 * n_src) != PKV_OK ||
        pkv_ocl_scratch_reserve(o, &o->s[PKV_S_STAGED], out_bytes * n_src) != PKV_OK)
        return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    cl_int err = status_init(o, 0, 0);
    cl_mem raw = o->s[PKV_S_RAW].mem, dst = o->s[PKV_S_STAGED].mem, st = o->s[PKV_S_STATUS].mem;
    for (uint32_t i = 0; i < n_src && err == CL_SUCCESS; i++)
        err = o->cl->clEnqueueCopyBuffer(o->q, src[i], raw, off[i], raw_words * 4 * i, in_bytes, 0, NULL, NULL);
    cl_kernel k = o->k[PKV_K_STAGE];
    /* the raw sources lie back to back when their bytes are whole words (always for K/V: head_dim is a
     * multiple of 8), and so do the outputs: one launch converts them all (a batch append's 2 x n_seqs) */
    const uint32_t n_launch = raw_words * 4 == in_bytes ? 1 : n_src;
    const cl_uint pairs = (cl_uint)(n_values / 2 * (n_src / n_launch)), in_f16 = dtype == PKV_F16, out_f32 = (cl_uint)to_f32;
    const size_t local = o->wg[PKV_K_STAGE] < 256 ? o->wg[PKV_K_STAGE] : 256;
    for (uint32_t i = 0; i < n_launch && err == CL_SUCCESS; i++) {
        const cl_uint raw_off = (cl_uint)(raw_words * i), out_off = (cl_uint)(out_bytes * i / 4);
        size_t global = (pairs + local - 1) / local * local;
        err = pkv_ocl_args(o, k, 12, sizeof raw, &raw, sizeof raw_off, &raw_off, sizeof pairs, &pairs, sizeof in_f16,
                           &in_f16, sizeof out_f32, &out_f32, sizeof dst, &dst, sizeof out_off, &out_off, sizeof st, &st,
                           sizeof status_word, &status_word, sizeof max_abs, &max_abs, sizeof flag, &flag, sizeof layer,
                           &layer);
        if (err == CL_SUCCESS && global) err = o->cl->clEnqueueNDRangeKernel(o->q, k, 1, NULL, &global, &local, 0, NULL, NULL);
    }
    return err;
}

/* Reads the status words at `word` (2 words) and, with reset, restores them. Waits for the queue. */
static cl_int read_status(pkv_ocl *o, uint32_t word, uint32_t w[2], int reset)
{
    cl_int err = status_init(o, 0, 0);
    if (err == CL_SUCCESS)
        err = o->cl->clEnqueueReadBuffer(o->q, o->s[PKV_S_STATUS].mem, CL_TRUE, (size_t)word * 4, 8, w, 0, NULL, NULL);
    if (err == CL_SUCCESS && reset) err = status_init(o, word, 2);
    if (err == CL_SUCCESS && reset) err = o->cl->clFinish(o->q);
    return err;
}

/* Starts an enqueued call: the application's events first. */
static pkv_status begin(pkv_cache *c, const char *fn, int enqueued, cl_uint n_wait, const cl_event *wait)
{
    pkv_ocl *o = pkv_ocl_of(c->ctx->be);
    if ((n_wait && !wait) || (!n_wait && wait))
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: n_wait and wait must be given together", fn);
    if (!enqueued) return PKV_OK;
    o->deferred = 1;
    cl_int err = n_wait ? o->cl->clEnqueueBarrierWithWaitList(o->q, n_wait, wait, NULL) : CL_SUCCESS;
    if (err != CL_SUCCESS) {
        o->deferred = 0;
        return cl_fail(c, fn, "waiting for the application's events", err);
    }
    return PKV_OK;
}

/* Ends a call: an enqueued one returns the event of its last command. */
static pkv_status end(pkv_cache *c, const char *fn, int enqueued, pkv_status st, cl_event *event)
{
    pkv_ocl *o = pkv_ocl_of(c->ctx->be);
    if (!enqueued) return st;
    o->deferred = 0;
    cl_int err = CL_SUCCESS;
    if (event) {
        *event = NULL;
        err = o->cl->clEnqueueMarkerWithWaitList(o->q, 0, NULL, event);
    }
    if (err == CL_SUCCESS) err = o->cl->clFlush(o->q); /* starts it; never waits */
    return st != PKV_OK ? st : err != CL_SUCCESS ? cl_fail(c, fn, "enqueueing the marker", err) : PKV_OK;
}

/* An append of n_tokens to each of n_seqs sequences of one layer (K, V: [n_seqs][n_tokens][H][d]):
 * staged as 2 n_seqs sources, per sequence its K then its V (the core's device token layout), then one
 * append of all of them (pkv_append_device). */
static pkv_status append_common(pkv_cache *cache, int enqueued, const char *fn, const pkv_seq *seqs, uint32_t n_seqs,
                                uint32_t layer, uint32_t n_tokens, cl_mem k, size_t k_offset, size_t k_size, cl_mem v,
                                size_t v_offset, size_t v_size, pkv_dtype dtype, cl_uint n_wait, const cl_event *wait,
                                cl_event *event)
{
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_OPENCL, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if ((st = pkv_append_batch_check(cache, fn, seqs, n_seqs, layer, n_tokens, dtype)) != PKV_OK) return st;
    const size_t n = (size_t)n_tokens * cache->g.H * cache->g.d, per_seq = n * (dtype == PKV_F16 ? 2 : 4);
    if ((st = check_range(cache, fn, "k", k, k_offset, k_size, per_seq * n_seqs)) != PKV_OK) return st;
    if ((st = check_range(cache, fn, "v", v, v_offset, v_size, per_seq * n_seqs)) != PKV_OK) return st;
    cl_mem src_local[16], *src = 2 * n_seqs <= 16 ? src_local : malloc(2 * n_seqs * sizeof *src);
    size_t off_local[16], *off = 2 * n_seqs <= 16 ? off_local : malloc(2 * n_seqs * sizeof *off);
    if (!src || !off) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    if (st == PKV_OK) st = begin(cache, fn, enqueued, n_wait, wait);
    if (st != PKV_OK) {
        if (src && src != src_local) free(src);
        if (off && off != off_local) free(off);
        return st;
    }
    for (uint32_t i = 0; i < n_seqs; i++) {
        src[2 * i] = k, off[2 * i] = k_offset + i * per_seq;
        src[2 * i + 1] = v, off[2 * i + 1] = v_offset + i * per_seq;
    }
    pkv_ocl *o = pkv_ocl_of(cache->ctx->be);
    cl_int err = CL_SUCCESS;
    if (n_tokens) {
        err = enqueued ? CL_SUCCESS : status_init(o, STATUS_SYNC, 2);
        if (err == CL_SUCCESS)
            err = stage(o, src, off, 2 * n_seqs, n, dtype, 0, PKV_F16_MAX, enqueued ? STATUS_ENQUEUED : STATUS_SYNC,
                        PKV_OPENCL_STATUS_KV_NONFINITE, layer);
    }
    uint32_t w[2] = {0, 0};
    if (err == CL_SUCCESS && n_tokens && !enqueued) err = read_status(o, STATUS_SYNC, w, 0);
    if (err != CL_SUCCESS) st = cl_fail(cache, fn, "reading the application's K and V", err);
    else if (w[0]) st = pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: K or V holds NaN, Inf or a value beyond fp16 range", fn);
    else if (n_tokens) {
        pkv_buf staged = {.mem = o->s[PKV_S_STAGED].mem, .bytes = o->s[PKV_S_STAGED].bytes};
        st = pkv_append_device(cache, seqs, n_seqs, layer, n_tokens, &staged, 0);
    }
    if (src != src_local) free(src);
    if (off != off_local) free(off);
    return end(cache, fn, enqueued, st, event);
}

PKV_API pkv_status pkv_opencl_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                     size_t k_offset, size_t k_size, cl_mem v, size_t v_offset, size_t v_size,
                                     pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, 0, "pkv_opencl_append", &seq, 1, layer, n_tokens, k, k_offset, k_size, v, v_offset,
                         v_size, dtype, 0, NULL, NULL);
}

PKV_API pkv_status pkv_opencl_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                           uint32_t n_tokens, cl_mem k, size_t k_offset, size_t k_size, cl_mem v,
                                           size_t v_offset, size_t v_size, pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, 0, "pkv_opencl_append_batch", seqs, n_seqs, layer, n_tokens, k, k_offset, k_size, v,
                         v_offset, v_size, dtype, 0, NULL, NULL);
}

PKV_API pkv_status pkv_opencl_enqueue_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                             size_t k_offset, size_t k_size, cl_mem v, size_t v_offset, size_t v_size,
                                             pkv_dtype dtype, cl_uint n_wait, const cl_event *wait, cl_event *event)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, 1, "pkv_opencl_enqueue_append", &seq, 1, layer, n_tokens, k, k_offset, k_size, v,
                         v_offset, v_size, dtype, n_wait, wait, event);
}

PKV_API pkv_status pkv_opencl_enqueue_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                                   uint32_t n_tokens, cl_mem k, size_t k_offset, size_t k_size, cl_mem v,
                                                   size_t v_offset, size_t v_size, pkv_dtype dtype, cl_uint n_wait,
                                                   const cl_event *wait, cl_event *event)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, 1, "pkv_opencl_enqueue_append_batch", seqs, n_seqs, layer, n_tokens, k, k_offset, k_size,
                         v, v_offset, v_size, dtype, n_wait, wait, event);
}

static pkv_status attention_common(pkv_cache *cache, int enqueued, const char *fn, const pkv_attention_params *app_params,
                                   cl_mem q, size_t q_offset, size_t q_size, cl_mem out, size_t out_offset,
                                   size_t out_size, cl_uint n_wait, const cl_event *wait, cl_event *event)
{
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_OPENCL, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if (!app_params) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
    pkv_attention_params full, *params = &full;
    if ((st = pkv_attention_check(cache, app_params, params)) != PKV_OK) return st;
    if (params->k_new) return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: k_new/v_new are host memory only", fn);
    const size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d;
    if ((st = check_range(cache, fn, "q", q, q_offset, q_size, n * (params->q_dtype == PKV_F16 ? 2 : 4))) != PKV_OK) return st;
    if ((st = check_range(cache, fn, "out", out, out_offset, out_size, n * 4)) != PKV_OK) return st;
    if ((st = begin(cache, fn, enqueued, n_wait, wait)) != PKV_OK) return st;
    pkv_ocl *o = pkv_ocl_of(cache->ctx->be);
    cl_int err = enqueued ? CL_SUCCESS : status_init(o, STATUS_SYNC, 2);
    if (err == CL_SUCCESS)
        err = stage(o, &q, &q_offset, 1, n, params->q_dtype, 1, FLT_MAX, enqueued ? STATUS_ENQUEUED : STATUS_SYNC,
                    PKV_OPENCL_STATUS_Q_NONFINITE, params->layer);
    uint32_t w[2] = {0, 0};
    if (err == CL_SUCCESS && !enqueued) err = read_status(o, STATUS_SYNC, w, 0);
    if (err != CL_SUCCESS) st = cl_fail(cache, fn, "reading the application's q", err);
    else if (w[0]) st = pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: q holds NaN or Inf", fn);
    else {
        pkv_buf staged = {.mem = o->s[PKV_S_STAGED].mem, .bytes = o->s[PKV_S_STAGED].bytes};
        pkv_buf app_out = {.mem = out, .bytes = out_offset + out_size};
        st = pkv_attention_device(cache, params, &staged, 0, &app_out, out_offset);
    }
    return end(cache, fn, enqueued, st, event);
}

PKV_API pkv_status pkv_opencl_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q, size_t q_offset,
                                        size_t q_size, cl_mem out, size_t out_offset, size_t out_size)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return attention_common(cache, 0, "pkv_opencl_attention", params, q, q_offset, q_size, out, out_offset, out_size, 0,
                            NULL, NULL);
}

PKV_API pkv_status pkv_opencl_enqueue_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                                size_t q_offset, size_t q_size, cl_mem out, size_t out_offset,
                                                size_t out_size, cl_uint n_wait, const cl_event *wait, cl_event *event)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return attention_common(cache, 1, "pkv_opencl_enqueue_attention", params, q, q_offset, q_size, out, out_offset,
                            out_size, n_wait, wait, event);
}

PKV_API pkv_status pkv_opencl_read_status(pkv_cache *cache, uint32_t *flags, uint32_t *first_layer, int reset)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    static const char fn[] = "pkv_opencl_read_status";
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_OPENCL, fn);
    if (st != PKV_OK) return st;
    if (!flags) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: flags is NULL", fn);
    pkv_clear_error();
    uint32_t w[2];
    cl_int err = read_status(pkv_ocl_of(cache->ctx->be), STATUS_ENQUEUED, w, reset);
    if (err != CL_SUCCESS) return cl_fail(cache, fn, "reading the status word", err);
    *flags = w[0];
    if (first_layer) *first_layer = w[1];
    return PKV_OK;
}
