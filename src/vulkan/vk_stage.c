/* Engine integration without host copies: the application's K/V or q buffers are copied on the
 * device into the scratch buffer, then stage_input.comp converts them (fp16 for K/V, fp32 for q,
 * rounded exactly as the host path rounds) into vk->staged and flags NaN, Inf and out-of-range
 * values. Only the 4-byte flag comes back to the host. */
#include "vk_internal.h"

#define WG_STAGE 256u

pkv_status pkv_vk_staged_reserve(pkv_vk *vk, size_t bytes) { return pkv_vk_grow(vk, &vk->staged, bytes); }

pkv_status pkv_vk_stage(pkv_vk *vk, const VkBuffer *src, const VkDeviceSize *src_off, uint32_t n_src, size_t n_values,
                        pkv_dtype dtype, int to_f32, float max_abs, int *bad)
{
    const size_t in_bytes = n_values * (dtype == PKV_F16 ? 2 : 4), out_bytes = n_values * (to_f32 ? 4 : 2);
    const size_t raw_words = (in_bytes + 3) / 4;
    *bad = 0;
    pthread_mutex_lock(&vk->lock);
    /* Deferred work may still read the old scratch or staged buffers: submit it first. */
    pkv_status s = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, (raw_words * n_src + 1) * 4);
    if (s == PKV_OK) s = pkv_vk_staged_reserve(vk, out_bytes * n_src);
    VkPipeline pipe = VK_NULL_HANDLE;
    uint32_t spec[PKV_VK_SPEC_MAX] = {WG_STAGE};
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_STAGE_INPUT, spec, &pipe);
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    const VkDeviceSize flag_at = vk->scratch ? vk->scratch->off + raw_words * n_src * 4 : 0;
    if (s == PKV_OK) {
        /* the application's earlier writes on this queue before our copies */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
        vk->f.vkCmdPipelineBarrier(vk->cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb,
                                   0, NULL, 0, NULL);
        vk->f.vkCmdFillBuffer(vk->cb, vk->scratch->page->buf, flag_at, 4, 0);
        for (uint32_t i = 0; i < n_src; i++) {
            VkBufferCopy c = {src_off[i], vk->scratch->off + raw_words * i * 4, in_bytes};
            vk->f.vkCmdCopyBuffer(vk->cb, src[i], vk->scratch->page->buf, 1, &c);
        }
        pkv_vk_barrier(vk);
    }
    pkv_buf *bufs[4] = {vk->scratch, vk->staged, NULL, NULL};
    const uint32_t pairs = (uint32_t)(n_values / 2), groups = (pairs + WG_STAGE - 1) / WG_STAGE;
    const uint32_t gx = groups < 65535u ? (groups ? groups : 1) : 65535u, gy = (groups + gx - 1) / gx;
    for (uint32_t i = 0; s == PKV_OK && i < n_src; i++) {
        struct { uint32_t n_pairs, in_f16, out_f32, raw_off, out_off, flag_off; float max_abs; } pc = {
            pairs, dtype == PKV_F16, (uint32_t)to_f32, (uint32_t)(raw_words * i), (uint32_t)(out_bytes * i / 4),
            (uint32_t)(raw_words * n_src), max_abs};
        s = pkv_vk_dispatch(vk, pipe, bufs, &pc, sizeof pc, gx, gy ? gy : 1, 1);
    }
    uint32_t flag = 0;
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_download(vk, vk->scratch, raw_words * n_src * 4, &flag, 4);
    }
    s = s == PKV_OK ? pkv_vk_finish(vk) : (vk->recording ? (pkv_vk_abandon(vk), s) : s);
    pthread_mutex_unlock(&vk->lock);
    *bad = flag != 0;
    return s;
}
