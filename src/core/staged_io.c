/* The engine-integration entry points of the GPU backends (pkv_vulkan_append, pkv_opencl_append, ...)
 * take K, V, q and out in the application's device buffers. Today they stage the data through host
 * memory around the ordinary API calls; this is that one path, given a backend's way to read and
 * write an application buffer. */
#include <stdlib.h>

#include "staged_io.h"

pkv_status pkv_staged_check(const pkv_cache *cache, pkv_backend_kind kind, const char *fn)
{
    if (!cache) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s: cache is NULL", fn);
    if (cache->ctx->be->info.backend != kind)
        return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: the cache does not run on the %s backend", fn,
                        pkv_backend_name(kind));
    return PKV_OK;
}

pkv_status pkv_staged_append(pkv_cache *cache, const pkv_app_io *io, pkv_seq seq, uint32_t layer, uint32_t n_tokens,
                             uint64_t k, size_t k_offset, uint64_t v, size_t v_offset, pkv_dtype dtype)
{
    if (!k || !v || (dtype != PKV_F32 && dtype != PKV_F16))
        return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null buffer or unknown dtype", io->fn);
    if (n_tokens == 0) return pkv_append(cache, seq, layer, 0, NULL, NULL, dtype);
    size_t bytes = (size_t)n_tokens * cache->g.H * cache->g.d * (dtype == PKV_F32 ? 4 : 2);
    void *hk = malloc(bytes), *hv = malloc(bytes);
    pkv_status st = PKV_OK;
    if (!hk || !hv) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", io->fn);
    if (st == PKV_OK) st = io->read(cache, io->fn, k, k_offset, hk, bytes);
    if (st == PKV_OK) st = io->read(cache, io->fn, v, v_offset, hv, bytes);
    if (st == PKV_OK) st = pkv_append(cache, seq, layer, n_tokens, hk, hv, dtype);
    free(hk);
    free(hv);
    return st;
}

pkv_status pkv_staged_attention(pkv_cache *cache, const pkv_app_io *io, const pkv_attention_params *app_params,
                                uint64_t q, size_t q_offset, uint64_t out, size_t out_offset)
{
    if (!app_params || !q || !out) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null argument", io->fn);
    pkv_attention_params full, *params = &full;
    pkv_status st = pkv_attention_check(cache, app_params, params);
    if (st != PKV_OK) return st;
    size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d;
    size_t qbytes = n * (params->q_dtype == PKV_F32 ? 4 : 2);
    void *hq = calloc(qbytes ? qbytes : 1, 1);
    float *ho = malloc(n ? n * sizeof(float) : 1);
    if (!hq || !ho) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", io->fn);
    if (st == PKV_OK && n) st = io->read(cache, io->fn, q, q_offset, hq, qbytes);
    if (st == PKV_OK) st = pkv_attention(cache, params, hq, ho);
    if (st == PKV_OK && n) st = io->write(cache, io->fn, out, out_offset, ho, n * sizeof(float));
    free(hq);
    free(ho);
    return st;
}
