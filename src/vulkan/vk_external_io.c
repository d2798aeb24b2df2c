/* pkv_vulkan_append / pkv_vulkan_attention: K, V, q and out in the application's VkBuffers (same
 * VkDevice as the context), copied through the library's staging ring around the ordinary API
 * calls. See include/patternkv_vulkan.h for the synchronization contract. */
#include <stdlib.h>

#include "internal.h"
#include "patternkv_vulkan.h"
#include "vk_internal.h"

static pkv_status check_vulkan(const pkv_cache *cache, const char *fn)
{
    if (!cache) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s: cache is NULL", fn);
    if (cache->ctx->be->info.backend != PKV_BACKEND_VULKAN)
        return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: the cache does not run on the Vulkan backend", fn);
    return PKV_OK;
}

/* Makes the application's earlier writes (submitted to the same queue) visible to our copies, and
 * our copies visible to its later commands. */
static void app_barrier(pkv_vk *vk, int before)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = before ? VK_ACCESS_MEMORY_WRITE_BIT : VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = before ? VK_ACCESS_TRANSFER_READ_BIT : VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT};
    vk->f.vkCmdPipelineBarrier(vk->cb, before ? VK_PIPELINE_STAGE_ALL_COMMANDS_BIT : VK_PIPELINE_STAGE_TRANSFER_BIT,
                               before ? VK_PIPELINE_STAGE_TRANSFER_BIT : VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                               NULL, 0, NULL);
}

static pkv_status read_app(pkv_cache *cache, const char *fn, VkBuffer buf, VkDeviceSize off, void *host, size_t bytes)
{
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_begin(vk);
    if (s == PKV_OK) {
        app_barrier(vk, 1);
        s = pkv_vk_download_raw(vk, buf, off, host, bytes);
    }
    s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
    pthread_mutex_unlock(&vk->lock);
    if (s != PKV_OK) return pkv_fail(cache->ctx, s, "%s: reading %zu bytes of an application buffer failed: %s", fn, bytes, pkv_last_error());
    return PKV_OK;
}

static pkv_status write_app(pkv_cache *cache, const char *fn, VkBuffer buf, VkDeviceSize off, const void *host, size_t bytes)
{
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_begin(vk);
    if (s == PKV_OK) {
        app_barrier(vk, 1);
        s = pkv_vk_upload_raw(vk, buf, off, host, bytes);
    }
    if (s == PKV_OK) app_barrier(vk, 0);
    s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
    pthread_mutex_unlock(&vk->lock);
    if (s != PKV_OK) return pkv_fail(cache->ctx, s, "%s: writing %zu bytes of an application buffer failed: %s", fn, bytes, pkv_last_error());
    return PKV_OK;
}

PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkBuffer v, VkDeviceSize v_offset, pkv_dtype dtype)
{
    static const char fn[] = "pkv_vulkan_append";
    pkv_status st = check_vulkan(cache, fn);
    if (st != PKV_OK) return st;
    if (!k || !v || (dtype != PKV_F32 && dtype != PKV_F16))
        return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null buffer or unknown dtype", fn);
    if (n_tokens == 0) return pkv_append(cache, seq, layer, 0, NULL, NULL, dtype);
    size_t bytes = (size_t)n_tokens * cache->g.H * cache->g.d * (dtype == PKV_F32 ? 4 : 2);
    void *hk = malloc(bytes), *hv = malloc(bytes);
    if (!hk || !hv) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    if (st == PKV_OK) st = read_app(cache, fn, k, k_offset, hk, bytes);
    if (st == PKV_OK) st = read_app(cache, fn, v, v_offset, hv, bytes);
    if (st == PKV_OK) st = pkv_append(cache, seq, layer, n_tokens, hk, hv, dtype);
    free(hk);
    free(hv);
    return st;
}

PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *params, VkBuffer q,
                                        VkDeviceSize q_offset, VkBuffer out, VkDeviceSize out_offset)
{
    static const char fn[] = "pkv_vulkan_attention";
    pkv_status st = check_vulkan(cache, fn);
    if (st != PKV_OK) return st;
    if (!params || !q || !out || (params->q_dtype != PKV_F32 && params->q_dtype != PKV_F16))
        return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null argument or unknown q dtype", fn);
    size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d;
    size_t qbytes = n * (params->q_dtype == PKV_F32 ? 4 : 2);
    void *hq = malloc(qbytes ? qbytes : 1);
    float *ho = malloc(n ? n * sizeof(float) : 1);
    if (!hq || !ho) st = pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    if (st == PKV_OK && n) st = read_app(cache, fn, q, q_offset, hq, qbytes);
    if (st == PKV_OK) st = pkv_attention(cache, params, hq, ho);
    if (st == PKV_OK && n) st = write_app(cache, fn, out, out_offset, ho, n * sizeof(float));
    free(hq);
    free(ho);
    return st;
}
