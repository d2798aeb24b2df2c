/* Engine integration without host copies: the application's K/V or q buffers are copied on the
 * device into the scratch buffer, then stage_input.comp converts them (fp16 for K/V, fp32 for q,
 * rounded exactly as the host path rounds) into vk->staged and reports NaN, Inf and out-of-range
 * values in the device status word (vk_record.c), storing 0 in their place. */
#include "vk_internal.h"

#define WG_STAGE 256u

static size_t raw_words(const pkv_vk_stage_in *in) { return (in->n_values * (in->dtype == PKV_F16 ? 2 : 4) + 3) / 4; }

pkv_status pkv_vk_stage_reserve(pkv_vk *vk, const pkv_vk_stage_in *in)
{
    pkv_status s = pkv_vk_scratch_reserve(vk, raw_words(in) * in->n_src * 4 + 4);
    if (s == PKV_OK) s = pkv_vk_grow(vk, &vk->staged, in->n_values * (in->to_f32 ? 4 : 2) * in->n_src);
    return s;
}

pkv_status pkv_vk_stage_record(pkv_vk *vk, const pkv_vk_stage_in *in)
{
    const size_t in_bytes = in->n_values * (in->dtype == PKV_F16 ? 2 : 4), out_bytes = in->n_values * (in->to_f32 ? 4 : 2);
    const size_t rw = raw_words(in);
    VkPipeline pipe = VK_NULL_HANDLE;
    uint32_t spec[PKV_VK_SPEC_MAX] = {WG_STAGE};
    pkv_status s = pkv_vk_pipeline(vk, PKV_K_STAGE_INPUT, spec, &pipe);
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    if (s != PKV_OK) return s;
    pkv_vk_op_start(vk);
    for (uint32_t i = 0; i < in->n_src; i++) {
        VkBufferCopy c = {in->src_off[i], vk->scratch->off + rw * i * 4, in_bytes};
        vk->f.vkCmdCopyBuffer(vk->cb, in->src[i], vk->scratch->page->buf, 1, &c);
    }
    pkv_vk_barrier(vk);
    pkv_buf *bufs[4] = {vk->scratch, vk->staged, vk->status, NULL};
    /* the raw sources lie back to back when their bytes are whole words (always for K/V: head_dim is
     * a multiple of 8), and so do the outputs: one dispatch converts them all */
    const uint32_t n_disp = rw * 4 == in_bytes ? 1 : in->n_src, per = in->n_src / n_disp;
    const uint32_t pairs = (uint32_t)(in->n_values / 2) * per, groups = (pairs + WG_STAGE - 1) / WG_STAGE;
    const uint32_t gx = groups < 65535u ? (groups ? groups : 1) : 65535u, gy = (groups + gx - 1) / gx;
    for (uint32_t i = 0; s == PKV_OK && i < n_disp; i++) {
        struct { uint32_t n_pairs, in_f16, out_f32, raw_off, out_off, status_word; float max_abs; uint32_t flag, layer; } pc = {
            pairs, in->dtype == PKV_F16, (uint32_t)in->to_f32, (uint32_t)(rw * i), (uint32_t)(out_bytes * i / 4),
            in->status_word, in->max_abs, in->flag, in->layer};
        s = pkv_vk_dispatch(vk, pipe, bufs, &pc, sizeof pc, gx, gy ? gy : 1, 1);
    }
    if (s == PKV_OK) pkv_vk_op_end_barrier(vk);
    return s;
}
