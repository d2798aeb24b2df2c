/* Engine integration on Vulkan: K, V, q and out in the application's VkBuffers (same VkDevice as
 * the context). One path for both kinds of call: the application's data is copied and converted on
 * the device (vk_stage.c), then the ordinary ops run on it. A recorded call (pkv_vulkan_cmd_*)
 * records all of it into the application's command buffer (vk->external); a synchronous call
 * records the same commands into the library's own command buffer and submits them, reading the
 * check back first. include/patternkv_vulkan.h has the synchronization contract. */
#include <float.h>
#include <stdlib.h>

#include "f16.h"
#include "internal.h"
#include "staged_io.h"
#include "patternkv_vulkan.h"
#include "vk_internal.h"

enum { STATUS_RECORDED = 0, STATUS_SYNC = 2 }; /* word offsets in vk->status */

/* Makes the application's earlier writes (submitted to the same queue) visible to our copies, and
 * our copies visible to its later commands. */
static void app_barrier(pkv_vk *vk, int before)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = before ? VK_ACCESS_MEMORY_WRITE_BIT : VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = before ? VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT
                                                  : VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT};
    if (!before) mb.dstAccessMask |= VK_ACCESS_HOST_READ_BIT; /* a host-visible out may be mapped after the call */
    vk->f.vkCmdPipelineBarrier(vk->cb, before ? VK_PIPELINE_STAGE_ALL_COMMANDS_BIT : VK_PIPELINE_STAGE_TRANSFER_BIT,
                               before ? VK_PIPELINE_STAGE_TRANSFER_BIT
                                      : VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                               0, 1, &mb, 0, NULL, 0, NULL);
}

static pkv_status check_range(pkv_cache *c, const char *fn, const char *what, VkBuffer b, VkDeviceSize size,
                              size_t need)
{
    if (!b) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: %s buffer is VK_NULL_HANDLE", fn, what);
    if (size == VK_WHOLE_SIZE || size < need)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: the %s range holds %llu bytes, the call needs %zu", fn,
                        what, size == VK_WHOLE_SIZE ? 0ull : (unsigned long long)size, need);
    return PKV_OK;
}

/* Switches recording to the application's command buffer (cmd) or back (cmd = NULL). Deferred
 * work of the library's own command buffer is submitted first: it comes before in the cache's
 * order. vk->lock held. */
static pkv_status record_into(pkv_vk *vk, VkCommandBuffer cmd)
{
    pkv_vk_unbind(vk); /* the application binds its own between calls; the own buffer was left bound otherwise */
    if (!cmd) {
        vk->cb = vk->own_cb;
        vk->external = 0;
        return PKV_OK;
    }
    pkv_status s = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (s != PKV_OK) return s;
    vk->own_cb = vk->cb;
    vk->cb = cmd;
    vk->external = vk->recorded_once = 1;
    if (cmd != vk->last_cmd) vk->after_barrier = vk->open_work = 0; /* within one command buffer only */
    vk->last_cmd = cmd;
    return PKV_OK;
}

/* Ends a recorded call: its staging, when no op consumed it (the call's checks and conversion are
 * in the command buffer whatever the op did), then back to the library's command buffer. */
static pkv_status finish_recorded(pkv_vk *vk, pkv_status st)
{
    if (st == PKV_OK) st = pkv_vk_stage_settle(vk);
    vk->stage_pending = NULL; /* after an error: the caller's staging description goes out of scope */
    record_into(vk, NULL);
    return st;
}

/* Synchronous calls: clears the call's status words, records the staging, submits, reads the flag. */
static pkv_status stage_sync(pkv_vk *vk, const pkv_vk_stage_in *in, uint32_t *flag)
{
    pkv_status s = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (s == PKV_OK) s = pkv_vk_stage_reserve(vk, in);
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    if (s == PKV_OK) {
        app_barrier(vk, 1);
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + STATUS_SYNC * 4, 4, 0);
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + STATUS_SYNC * 4 + 4, 4, UINT32_MAX);
        s = pkv_vk_stage_record(vk, in);
    }
    if (s == PKV_OK) s = pkv_vk_download(vk, vk->status, STATUS_SYNC * 4, flag, 4);
    return s == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), s);
}

/* The checks every append shares; *bytes: of each of K and V, all sequences. */
static pkv_status append_args(pkv_cache *cache, const char *fn, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                              uint32_t n_tokens, VkBuffer k, VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_size,
                              pkv_dtype dtype, size_t *bytes)
{
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if ((st = pkv_append_batch_check(cache, fn, seqs, n_seqs, layer, n_tokens, dtype)) != PKV_OK) return st;
    *bytes = (size_t)n_seqs * n_tokens * cache->g.H * cache->g.d * (dtype == PKV_F16 ? 2 : 4);
    if ((st = check_range(cache, fn, "k", k, k_size, *bytes)) != PKV_OK) return st;
    return check_range(cache, fn, "v", v, v_size, *bytes);
}

/* An append of n_tokens to each of n_seqs sequences of one layer (K, V: [n_seqs][n_tokens][H][d]):
 * staged as 2 n_seqs sources, per sequence its K then its V (the core's device token layout), then
 * one append of all of them (pkv_append_device). */
static pkv_status append_common(pkv_cache *cache, VkCommandBuffer cmd, const char *fn, const pkv_seq *seqs,
                                uint32_t n_seqs, uint32_t layer, uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset,
                                VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_offset, VkDeviceSize v_size,
                                pkv_dtype dtype)
{
    size_t bytes;
    pkv_status st = append_args(cache, fn, seqs, n_seqs, layer, n_tokens, k, k_size, v, v_size, dtype, &bytes);
    if (st != PKV_OK || n_tokens == 0) return st;
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    VkBuffer src_local[16], *src = 2 * n_seqs <= 16 ? src_local : malloc(2 * n_seqs * sizeof *src);
    VkDeviceSize off_local[16], *off = 2 * n_seqs <= 16 ? off_local : malloc(2 * n_seqs * sizeof *off);
    if (!src || !off) {
        if (src != src_local) free(src);
        if (off != off_local) free(off);
        return pkv_fail(cache->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    }
    const size_t per_seq = bytes / n_seqs;
    for (uint32_t i = 0; i < n_seqs; i++) {
        src[2 * i] = k, off[2 * i] = k_offset + i * per_seq;
        src[2 * i + 1] = v, off[2 * i + 1] = v_offset + i * per_seq;
    }
    const pkv_vk_stage_in in = {src, off, 2 * n_seqs, (size_t)n_tokens * cache->g.H * cache->g.d, dtype, 0, PKV_F16_MAX,
                                cmd ? STATUS_RECORDED : STATUS_SYNC, PKV_VULKAN_STATUS_KV_NONFINITE, layer,
                                cache->g.d / 2};
    pthread_mutex_lock(&vk->lock);
    uint32_t flag = 0;
    if (cmd) { /* staged by the window write, straight into the rows (vk_stage.c), or by an op before it */
        st = record_into(vk, cmd);
        if (st == PKV_OK) st = pkv_vk_stage_reserve(vk, &in);
        if (st == PKV_OK) pkv_vk_stage_defer(vk, &in);
    } else {
        st = stage_sync(vk, &in, &flag);
    }
    if (st != PKV_OK) st = pkv_fail(cache->ctx, st, "%s: reading the application's K and V failed: %s", fn, pkv_last_error());
    else if (flag) st = pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: K or V holds NaN, Inf or a value beyond fp16 range", fn);
    else st = pkv_append_device(cache, seqs, n_seqs, layer, n_tokens, vk->staged, 0);
    if (cmd) st = finish_recorded(vk, st);
    pthread_mutex_unlock(&vk->lock);
    if (src != src_local) free(src);
    if (off != off_local) free(off);
    return st;
}

PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_offset,
                                     VkDeviceSize v_size, pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, NULL, "pkv_vulkan_append", &seq, 1, layer, n_tokens, k, k_offset, k_size, v, v_offset,
                         v_size, dtype);
}

PKV_API pkv_status pkv_vulkan_append_batch(pkv_cache *cache, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                           uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset, VkDeviceSize k_size,
                                           VkBuffer v, VkDeviceSize v_offset, VkDeviceSize v_size, pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return append_common(cache, NULL, "pkv_vulkan_append_batch", seqs, n_seqs, layer, n_tokens, k, k_offset, k_size, v,
                         v_offset, v_size, dtype);
}

PKV_API pkv_status pkv_vulkan_cmd_append(pkv_cache *cache, VkCommandBuffer cmd, pkv_seq seq, uint32_t layer,
                                         uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset, VkDeviceSize k_size,
                                         VkBuffer v, VkDeviceSize v_offset, VkDeviceSize v_size, pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    if (!cmd) return pkv_fail(cache ? cache->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_vulkan_cmd_append: cmd is NULL");
    return append_common(cache, cmd, "pkv_vulkan_cmd_append", &seq, 1, layer, n_tokens, k, k_offset, k_size, v, v_offset,
                         v_size, dtype);
}

PKV_API pkv_status pkv_vulkan_cmd_append_batch(pkv_cache *cache, VkCommandBuffer cmd, const pkv_seq *seqs, uint32_t n_seqs,
                                               uint32_t layer, uint32_t n_tokens, VkBuffer k, VkDeviceSize k_offset,
                                               VkDeviceSize k_size, VkBuffer v, VkDeviceSize v_offset,
                                               VkDeviceSize v_size, pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    if (!cmd)
        return pkv_fail(cache ? cache->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_vulkan_cmd_append_batch: cmd is NULL");
    return append_common(cache, cmd, "pkv_vulkan_cmd_append_batch", seqs, n_seqs, layer, n_tokens, k, k_offset, k_size,
                         v, v_offset, v_size, dtype);
}

static pkv_status attention_common(pkv_cache *cache, VkCommandBuffer cmd, const char *fn,
                                   const pkv_attention_params *app_params, VkBuffer q, VkDeviceSize q_offset,
                                   VkDeviceSize q_size, VkBuffer out, VkDeviceSize out_offset, VkDeviceSize out_size)
{
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, fn);
    if (st != PKV_OK) return st;
    pkv_clear_error();
    if (!app_params) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
    pkv_attention_params full, *params = &full;
    if ((st = pkv_attention_check(cache, app_params, params)) != PKV_OK) return st;
    if (params->k_new) return pkv_fail(cache->ctx, PKV_ERR_UNSUPPORTED, "%s: k_new/v_new are host memory only", fn);
    const size_t n = (size_t)params->n_seqs * params->q_len * params->n_q_heads * cache->g.d, bytes = n * 4;
    if ((st = check_range(cache, fn, "q", q, q_size, n * (params->q_dtype == PKV_F16 ? 2 : 4))) != PKV_OK) return st;
    if ((st = check_range(cache, fn, "out", out, out_size, bytes)) != PKV_OK) return st;
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    const pkv_vk_stage_in in = {&q, &q_offset, 1, n, params->q_dtype, 1, FLT_MAX,
                                cmd ? STATUS_RECORDED : STATUS_SYNC, PKV_VULKAN_STATUS_Q_NONFINITE, params->layer, 0};
    pthread_mutex_lock(&vk->lock);
    uint32_t flag = 0;
    if (cmd) { /* staged inside the attention op's own scratch (vk_stage.c) */
        st = record_into(vk, cmd);
        if (st == PKV_OK) st = pkv_vk_stage_reserve(vk, &in);
        if (st == PKV_OK) pkv_vk_stage_defer(vk, &in);
    } else {
        st = vk->recording ? pkv_vk_finish(vk) : PKV_OK; /* deferred writes may read the old staged buffer */
        if (st == PKV_OK) st = pkv_vk_grow(vk, &vk->staged, 2 * bytes); /* q, then the result */
        if (st == PKV_OK) st = stage_sync(vk, &in, &flag);
    }
    if (st != PKV_OK) st = pkv_fail(cache->ctx, st, "%s: reading the application's q failed: %s", fn, pkv_last_error());
    else if (flag) st = pkv_fail(cache->ctx, PKV_ERR_NONFINITE, "%s: q holds NaN or Inf", fn);
    if (st == PKV_OK && cmd) { /* the result straight into the application's buffer */
        pkv_vk_page app_page = {.buf = out};
        pkv_buf app_out = {.page = &app_page, .off = 0, .size = out_offset + out_size};
        st = pkv_attention_device(cache, params, vk->staged, 0, &app_out, out_offset);
    } else if (st == PKV_OK) {
        st = pkv_attention_device(cache, params, vk->staged, 0, vk->staged, bytes);
        /* the result into the application's buffer, visible to its later commands on the queue */
        if (st == PKV_OK) st = pkv_vk_begin(vk);
        if (st == PKV_OK) {
            pkv_vk_barrier(vk);
            VkBufferCopy c = {vk->staged->off + bytes, out_offset, bytes};
            vk->f.vkCmdCopyBuffer(vk->cb, vk->staged->page->buf, out, 1, &c);
            app_barrier(vk, 0);
            st = pkv_vk_finish(vk);
            if (st != PKV_OK) st = pkv_fail(cache->ctx, st, "%s: writing the result failed: %s", fn, pkv_last_error());
        }
    }
    if (cmd) st = finish_recorded(vk, st);
    pthread_mutex_unlock(&vk->lock);
    return st;
}

PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *params, VkBuffer q,
                                        VkDeviceSize q_offset, VkDeviceSize q_size, VkBuffer out,
                                        VkDeviceSize out_offset, VkDeviceSize out_size)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    return attention_common(cache, NULL, "pkv_vulkan_attention", params, q, q_offset, q_size, out, out_offset, out_size);
}

PKV_API pkv_status pkv_vulkan_cmd_attention(pkv_cache *cache, VkCommandBuffer cmd, const pkv_attention_params *params,
                                            VkBuffer q, VkDeviceSize q_offset, VkDeviceSize q_size, VkBuffer out,
                                            VkDeviceSize out_offset, VkDeviceSize out_size)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    if (!cmd) return pkv_fail(cache ? cache->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_vulkan_cmd_attention: cmd is NULL");
    return attention_common(cache, cmd, "pkv_vulkan_cmd_attention", params, q, q_offset, q_size, out, out_offset, out_size);
}

PKV_API pkv_status pkv_vulkan_read_status(pkv_cache *cache, uint32_t *flags, uint32_t *first_layer, int reset)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(cache));
    static const char fn[] = "pkv_vulkan_read_status";
    pkv_status st = pkv_staged_check(cache, PKV_BACKEND_VULKAN, fn);
    if (st != PKV_OK) return st;
    if (!flags) return pkv_fail(cache->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: flags is NULL", fn);
    pkv_clear_error();
    pkv_vk *vk = pkv_vk_of(cache->ctx->be);
    uint32_t w[2] = {0, UINT32_MAX};
    pthread_mutex_lock(&vk->lock);
    st = vk->recording ? pkv_vk_finish(vk) : PKV_OK;
    if (st == PKV_OK) st = pkv_vk_begin(vk);
    if (st == PKV_OK) {
        app_barrier(vk, 1); /* the recorded commands' writes (their command buffers completed) */
        st = pkv_vk_download(vk, vk->status, STATUS_RECORDED * 4, w, 8);
    }
    if (st == PKV_OK && reset) {
        pkv_vk_barrier(vk);
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + STATUS_RECORDED * 4, 4, 0);
        vk->f.vkCmdFillBuffer(vk->cb, vk->status->page->buf, vk->status->off + STATUS_RECORDED * 4 + 4, 4, UINT32_MAX);
    }
    st = st == PKV_OK ? pkv_vk_finish(vk) : (pkv_vk_abandon(vk), st);
    pthread_mutex_unlock(&vk->lock);
    if (st != PKV_OK) return pkv_fail(cache->ctx, st, "%s: %s", fn, pkv_last_error());
    *flags = w[0];
    if (first_layer) *first_layer = w[1];
    return PKV_OK;
}
