/* pkv_opencl_append / pkv_opencl_attention: K, V, q and out in the application's cl_mem buffers,
 * staged through host memory around the ordinary API calls (see patternkv_opencl.h). */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"
#include "staged_io.h"
#include "ocl_internal.h"
#include "patternkv_opencl.h"

static pkv_status transfer(pkv_cache *cache, const char *fn, int write, cl_mem mem, size_t offset, void *host,
                           size_t bytes)
{
    pkv_ocl *o = pkv_ocl_of(cache->ctx->be);
    cl_int err = write ? o->cl->clEnqueueWriteBuffer(o->q, mem, CL_TRUE, offset, bytes, host, 0, NULL, NULL)
                       : o->cl->clEnqueueReadBuffer(o->q, mem, CL_TRUE, offset, bytes, host, 0, NULL, NULL);
    if (err == CL_SUCCESS) return PKV_OK;
    pkv_status st = err == CL_INVALID_MEM_OBJECT || err == CL_INVALID_VALUE || err == CL_INVALID_CONTEXT
                        ? PKV_ERR_INVALID_ARGUMENT
                        : pkv_ocl_status(err);
    return pkv_fail(cache->ctx, st, "%s: %s %zu bytes at offset %zu of a cl_mem failed (%s)", fn,
                    write ? "writing" : "reading", bytes, offset, pkv_ocl_error_name(err));
}

static pkv_status read_app(pkv_cache *c, const char *fn, uint64_t buf, size_t off, void *host, size_t bytes)
{
    return transfer(c, fn, 0, (cl_mem)(uintptr_t)buf, off, host, bytes);
}

static pkv_status write_app(pkv_cache *c, const char *fn, uint64_t buf, size_t off, const void *host, size_t bytes)
{
    return transfer(c, fn, 1, (cl_mem)(uintptr_t)buf, off, (void *)host, bytes);
}

PKV_API pkv_status pkv_opencl_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                     size_t k_offset, cl_mem v, size_t v_offset, pkv_dtype dtype)
{
    static const pkv_app_io io = {"pkv_opencl_append", read_app, write_app};
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_OPENCL, io.fn);
    return st != PKV_OK ? st
                        : pkv_staged_append(cache, &io, seq, layer, n_tokens, (uint64_t)(uintptr_t)k, k_offset,
                                            (uint64_t)(uintptr_t)v, v_offset, dtype);
}

PKV_API pkv_status pkv_opencl_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                        size_t q_offset, cl_mem out, size_t out_offset)
{
    static const pkv_app_io io = {"pkv_opencl_attention", read_app, write_app};
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_OPENCL, io.fn);
    return st != PKV_OK ? st
                        : pkv_staged_attention(cache, &io, params, (uint64_t)(uintptr_t)q, q_offset,
                                               (uint64_t)(uintptr_t)out, out_offset);
}
