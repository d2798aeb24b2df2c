/* Engine integration for the OpenCL backend: run PatternKV on the application's own OpenCL
 * context and command queue, so its kernels and ours share one queue (no extra synchronisation).
 *
 *   pkv_opencl_external ext = {.struct_size = sizeof ext, .context = ctx, .device = dev, .queue = q};
 *   pkv_context_params p = pkv_context_params_default();
 *   p.opencl_external = &ext;   (the backend is then OpenCL)
 *
 * The library retains the handles (clRetain*) and releases them when its context is freed; the
 * application may release its own references at any time. The queue must be in-order and belong to
 * `context` and `device`. Every PatternKV call has finished its device work when it returns.
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

/* Inputs and outputs in OpenCL buffers of the context's cl_context (an application that passed its
 * own context through pkv_opencl_external, typically). They behave exactly like pkv_append and
 * pkv_attention, which they call: k, v, q hold the same layouts at byte offsets into the buffers,
 * out receives fp32 [n_seqs][q_len][n_q_heads][head_dim]. The data is staged through host memory
 * (one blocking read or write on the library's queue), so ordering with the application's kernels
 * follows from a shared in-order queue, or from the application finishing its queue first.
 * PKV_ERR_UNSUPPORTED when the cache does not run on the OpenCL backend. */
PKV_API pkv_status pkv_opencl_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                     size_t k_offset, cl_mem v, size_t v_offset, pkv_dtype dtype);
PKV_API pkv_status pkv_opencl_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                        size_t q_offset, cl_mem out, size_t out_offset);

#ifdef __cplusplus
}
#endif
#endif /* PATTERNKV_OPENCL_H */
