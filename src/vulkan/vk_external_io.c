/* pkv_vulkan_append / pkv_vulkan_attention: K, V, q and out in the application's VkBuffers (same
 * VkDevice as the context), copied through the library's staging ring around the ordinary API
 * calls. See include/patternkv_vulkan.h for the synchronization contract. */
#include <stdlib.h>

#include "internal.h"
#include "staged_io.h"
#include "patternkv_vulkan.h"
#include "vk_internal.h"

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

/* One transfer between an application buffer and host memory, ordered after the application's
 * earlier work on the queue and (for writes) before its later work. */
static pkv_status app_transfer(pkv_cache *cache, const char *fn, int write, uint64_t handle, size_t off, void *host,
                               size_t bytes)
{
    VkBuffer buf = (VkBuffer)handle;
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_begin(vk);
    if (s == PKV_OK) {
        app_barrier(vk, 1);
        s = write ? pkv_vk_upload_raw(vk, buf, off, host, bytes) : pkv_vk_download_raw(vk, buf, off, host, bytes);
    }
    if (s == PKV_OK && write) app_barrier(vk, 0);
    s = s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
    pthread_mutex_unlock(&vk->lock);
    if (s != PKV_OK)
        return pkv_fail(cache->ctx, s, "%s: %s %zu bytes of an application buffer failed: %s", fn,
                        write ? "writing" : "reading", bytes, pkv_last_error());
    return PKV_OK;
}

static pkv_status read_app(pkv_cache *c, const char *fn, uint64_t buf, size_t off, void *host, size_t bytes)
{
    return app_transfer(c, fn, 0, buf, off, host, bytes);
}

static pkv_status write_app(pkv_cache *c, const char *fn, uint64_t buf, size_t off, const void *host, size_t bytes)
{
    return app_transfer(c, fn, 1, buf, off, (void *)host, bytes);
}

PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkBuffer v, VkDeviceSize v_offset, pkv_dtype dtype)
{
    static const pkv_app_io io = {"pkv_vulkan_append", read_app, write_app};
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, io.fn);
    return st != PKV_OK ? st
                        : pkv_staged_append(cache, &io, seq, layer, n_tokens, (uint64_t)k, (size_t)k_offset, (uint64_t)v,
                                            (size_t)v_offset, dtype);
}

PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *params, VkBuffer q,
                                        VkDeviceSize q_offset, VkBuffer out, VkDeviceSize out_offset)
{
    static const pkv_app_io io = {"pkv_vulkan_attention", read_app, write_app};
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, io.fn);
    return st != PKV_OK ? st
                        : pkv_staged_attention(cache, &io, params, (uint64_t)q, (size_t)q_offset, (uint64_t)out,
                                               (size_t)out_offset);
}
