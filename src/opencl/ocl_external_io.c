/* pkv_opencl_append / pkv_opencl_attention: K, V, q and out in the application's cl_mem buffers,
 * staged through host memory around the ordinary API calls (see patternkv_opencl.h). */
#include <stdlib.h>

#include "../internal.h"
#include "ocl_internal.h"
#include "patternkv_opencl.h"

static pkv_status check_opencl(const pkv_cache *cache, const char *fn)
{
    if (!cache) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s: cache is NULL", fn);
    if (cache->ctx->be->info.backend != PKV_BACKEND_OPENCL)
        return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: the cache does not run on the OpenCL backend", fn);
    return PKV_OK;
}

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

PKV_API pkv_status pkv_opencl_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, cl_mem k,
                                     size_t k_offset, cl_mem v, size_t v_offset, pkv_dtype dtype)
{
    static const char fn[] = "pkv_opencl_append";
    pkv_status st = check_opencl(cache, fn);
    if (st != PKV_OK) return st;
    if (!k || !v || (dtype != PKV_F32 && dtype != PKV_F16))
        return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null buffer or unknown dtype", fn);
    if (n_tokens == 0) return pkv_append(cache, seq, layer, 0, NULL, NULL, dtype);
    size_t bytes = (size_t)n_tokens * cache->g.H * cache->g.d * (dtype == PKV_F32 ? 4 : 2);
    void *hk = malloc(bytes), *hv = malloc(bytes);
    if (!hk || !hv) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    if (st == PKV_OK) st = transfer(cache, fn, 0, k, k_offset, hk, bytes);
    if (st == PKV_OK) st = transfer(cache, fn, 0, v, v_offset, hv, bytes);
    if (st == PKV_OK) st = pkv_append(cache, seq, layer, n_tokens, hk, hv, dtype);
    free(hk);
    free(hv);
    return st;
}

PKV_API pkv_status pkv_opencl_attention(pkv_cache *cache, const pkv_attention_params *params, cl_mem q,
                                        size_t q_offset, cl_mem out, size_t out_offset)
{
    static const char fn[] = "pkv_opencl_attention";
    pkv_status st = check_opencl(cache, fn);
    if (st != PKV_OK) return st;
    if (!params || !q || !out || (params->q_dtype != PKV_F32 && params->q_dtype != PKV_F16))
        return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null argument or unknown q dtype", fn);
    size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d;
    size_t qbytes = n * (params->q_dtype == PKV_F32 ? 4 : 2);
    void *hq = malloc(qbytes ? qbytes : 1);
    float *ho = malloc(n ? n * sizeof(float) : 1);
    if (!hq || !ho) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    if (st == PKV_OK && n) st = transfer(cache, fn, 0, q, q_offset, hq, qbytes);
    if (st == PKV_OK) st = pkv_attention(cache, params, hq, ho);
    if (st == PKV_OK && n) st = transfer(cache, fn, 1, out, out_offset, ho, n * sizeof(float));
    free(hq);
    free(ho);
    return st;
}
