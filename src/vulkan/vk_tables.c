/* Attention's block tables kept in device memory (backend.h: pkv_tab_mirror). An attention op
 * copies each sequence's block slots from its mirror into the op's scratch with one copy region per
 * sequence, and uploads only the slots of blocks added since the mirror was last brought up to date
 * (a window flush adds one block per kv head): the host work of recording a decode step does not
 * grow with the context. The mirror is written only past what earlier ops read from it, so the
 * copies of one op and the updates of the next need no barrier between them beyond the one every
 * op already has after its uploads. */
#include "vk_internal.h"

pkv_status pkv_vk_tables_reserve(pkv_vk *vk, uint32_t H, const pkv_attn_op *op)
{
    for (uint32_t i = 0; i < op->n_seqs; i++) {
        pkv_tab_mirror *m = op->seqs[i].mirror;
        const uint32_t nb = op->seqs[i].n_blocks;
        if (!m || nb == 0 || (m->buf && m->cap >= nb)) continue;
        uint32_t cap = m->cap ? 2 * m->cap : 16;
        while (cap < nb) cap *= 2;
        pkv_buf *b = NULL;
        pkv_status s = pkv_vk_buf_alloc(vk, (size_t)cap * H * sizeof(uint32_t), &b);
        if (s != PKV_OK) return s;
        if (m->buf) pkv_vk_buf_free(vk, m->buf); /* kept until the context is freed once a call was recorded */
        m->buf = b, m->cap = cap, m->synced = 0;  /* uploaded whole by this op: rare (doubling) */
    }
    return PKV_OK;
}

pkv_status pkv_vk_tables_record(pkv_vk *vk, uint32_t H, const pkv_attn_op *op, pkv_buf *dst, size_t table_word)
{
    pkv_status s = pkv_vk_regions_reserve(vk, op->n_seqs);
    /* what the mirrors hold: one region per sequence, one copy per source buffer (page) */
    uint32_t n = 0;
    VkBuffer src = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < op->n_seqs && s == PKV_OK; i++) {
        const pkv_attn_seq *q = &op->seqs[i];
        pkv_tab_mirror *m = q->mirror;
        if (!m) continue;
        if (m->synced > q->n_blocks) m->synced = q->n_blocks; /* defensive: the core lowers it when it drops blocks */
        if (!m->buf || !m->synced) continue;
        if (n && m->buf->page->buf != src) {
            vk->f.vkCmdCopyBuffer(vk->cb, src, dst->page->buf, n, vk->regions);
            n = 0;
        }
        src = m->buf->page->buf;
        vk->regions[n++] = (VkBufferCopy){m->buf->off, dst->off + ((VkDeviceSize)table_word + q->block_offset) * 4,
                                          (VkDeviceSize)m->synced * H * 4};
    }
    if (s == PKV_OK && n) vk->f.vkCmdCopyBuffer(vk->cb, src, dst->page->buf, n, vk->regions);
    /* the blocks added since: into the op's table and into the mirror (disjoint from what is copied) */
    for (uint32_t i = 0; i < op->n_seqs && s == PKV_OK; i++) {
        const pkv_attn_seq *q = &op->seqs[i];
        pkv_tab_mirror *m = q->mirror;
        if (!q->n_blocks) continue;
        const uint32_t from = m ? m->synced : 0;
        if (from >= q->n_blocks) continue;
        const size_t bytes = (size_t)(q->n_blocks - from) * H * 4;
        const uint32_t *slots = q->blocks + (size_t)from * H;
        s = pkv_vk_upload(vk, dst, ((VkDeviceSize)table_word + q->block_offset + (size_t)from * H) * 4, slots, bytes);
        if (s == PKV_OK && m && m->buf) {
            s = pkv_vk_upload(vk, m->buf, (VkDeviceSize)from * H * 4, slots, bytes);
            if (s == PKV_OK) m->synced = q->n_blocks;
        }
    }
    return s;
}

void pkv_vk_tables_forget(const pkv_attn_op *op)
{
    for (uint32_t i = 0; i < op->n_seqs; i++)
        if (op->seqs[i].mirror) op->seqs[i].mirror->synced = 0;
}
