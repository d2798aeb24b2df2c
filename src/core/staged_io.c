/* What the engine-integration entry points of the GPU backends (pkv_vulkan_*, pkv_opencl_*) check
 * first: a cache that runs on their backend. The data itself never goes through host memory: each
 * backend copies and converts it on the device (src/vulkan/vk_external_io.c, src/opencl/ocl_external_io.c). */
#include "staged_io.h"

pkv_status pkv_staged_check(const pkv_cache *cache, pkv_backend_kind kind, const char *fn)
{
    if (!cache) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s: cache is NULL", fn);
    if (cache->ctx->be->info.backend != kind)
        return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: the cache does not run on the %s backend", fn,
                        pkv_backend_name(kind));
    return PKV_OK;
}
