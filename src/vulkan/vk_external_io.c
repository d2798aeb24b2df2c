/* pkv_vulkan_append / pkv_vulkan_attention: K, V, q and out in the application's VkBuffers (same
 * VkDevice as the context). The data stays on the device: copied and converted there (vk_stage.c),
 * then the ordinary ops read it from device memory. See include/patternkv_vulkan.h for the
 * synchronization contract. */
#include <float.h>
#include <stdlib.h>

#include "f16.h"
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

PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkBuffer v, VkDeviceSize v_offset, pkv_dtype dtype)
{
    static const char fn[] = "pkv_vulkan_append";
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if (!k || !v) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null buffer", fn);
    if ((st = pkv_append_check(cache, seq, layer, n_tokens, dtype)) != PKV_OK || n_tokens == 0) return st;
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    const VkBuffer src[2] = {k, v};
    const VkDeviceSize off[2] = {k_offset, v_offset};
    int bad = 0;
    st = pkv_vk_stage(vk, src, off, 2, (size_t)n_tokens * cache->g.H * cache->g.d, dtype, 0, PKV_F16_MAX, &bad);
    if (st != PKV_OK)
        return pkv_fail(cache->ctx, st, "%s: reading the application's K and V failed: %s", fn, pkv_last_error());
    if (bad) return pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: K or V holds NaN, Inf or a value beyond fp16 range", fn);
    return pkv_append_device(cache, seq, layer, n_tokens, vk->staged, 0);
}

PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *app_params, VkBuffer q,
                                        VkDeviceSize q_offset, VkBuffer out, VkDeviceSize out_offset)
{
    static const char fn[] = "pkv_vulkan_attention";
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if (!app_params || !q || !out) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: null argument", fn);
    pkv_attention_params full, *params = &full;
    if ((st = pkv_attention_check(cache, app_params, params)) != PKV_OK) return st;
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    const size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d, bytes = n * 4;
    /* vk->staged holds q (fp32) then the output; made big enough for both before q goes in. */
    pthread_mutex_lock(&vk->lock);
    st = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (st == PKV_OK) st = pkv_vk_staged_reserve(vk, 2 * bytes);
    pthread_mutex_unlock(&vk->lock);
    int bad = 0;
    if (st == PKV_OK) st = pkv_vk_stage(vk, &q, &q_offset, 1, n, params->q_dtype, 1, FLT_MAX, &bad);
    if (st != PKV_OK) return pkv_fail(cache->ctx, st, "%s: reading the application's q failed: %s", fn, pkv_last_error());
    if (bad) return pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: q holds NaN or Inf", fn);
    if ((st = pkv_attention_device(cache, params, vk->staged, 0, vk->staged, bytes)) != PKV_OK) return st;
    /* the result into the application's buffer, visible to its later commands on the queue */
    pthread_mutex_lock(&vk->lock);
    st = pkv_vk_begin(vk);
    if (st == PKV_OK) {
        pkv_vk_barrier(vk);
        VkBufferCopy c = {vk->staged->off + bytes, out_offset, bytes};
        vk->f.vkCmdCopyBuffer(vk->cb, vk->staged->page->buf, out, 1, &c);
        app_barrier(vk, 0);
    }
    st = st == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), st);
    pthread_mutex_unlock(&vk->lock);
    return st == PKV_OK ? st : pkv_fail(cache->ctx, st, "%s: writing the result failed: %s", fn, pkv_last_error());
}
