/* Attention's block tables kept in device memory (backend.h: pkv_tab_mirror). Each sequence's
 * device copy (per layer) holds its chunks and windows words (the op table's fixed part, F words)
 * and then its block slots, in the layout the op's table gives a sequence in scratch (vk_ops.c:
 * fixed part, then block slots, sequence after sequence): an attention op copies both with one copy
 * region per sequence, and uploads only the slots of blocks added since the mirror was last brought
 * up to date (a window flush adds one block per kv head) and the fixed part when it changed (a
 * flush or a bank growth; compared with the host's copy, `fixed`): the host work of recording a
 * decode step does not grow with the context, and its per-layer words need no upload of their own.
 * The mirror is written only where the op's copy does not read it (past the synced blocks; the
 * fixed part only when it is not copied), so the copies of one op and the updates of the same op
 * need no barrier between them; those of an earlier op are ordered by the barrier every op has
 * after its uploads. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vk_internal.h"

pkv_status pkv_vk_tables_reserve(pkv_vk *vk, uint32_t H, const pkv_attn_op *op)
{
    const uint32_t F = op->n_seqs ? op->fixed_len / op->n_seqs : 0;
    for (uint32_t i = 0; i < op->n_seqs; i++) {
        pkv_tab_mirror *m = op->seqs[i].mirror;
        const uint32_t nb = op->seqs[i].n_blocks;
        if (!m || (m->buf && m->cap >= nb && m->fixed)) continue;
        if (!m->fixed && !(m->fixed = malloc((size_t)F * sizeof *m->fixed)))
            return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
        if (m->buf && m->cap >= nb) continue;
        uint32_t cap = m->cap ? 2 * m->cap : 16;
        while (cap < nb) cap *= 2;
        pkv_buf *b = NULL;
        pkv_status s = pkv_vk_buf_alloc(vk, ((size_t)F + (size_t)cap * H) * sizeof(uint32_t), &b);
        if (s != PKV_OK) return s;
        if (m->buf) pkv_vk_buf_free(vk, m->buf); /* kept until the context is freed once a call was recorded */
        m->buf = b, m->cap = cap, m->synced = 0, m->fixed_ok = 0; /* uploaded whole by this op: rare (doubling) */
    }
    return PKV_OK;
}

pkv_status pkv_vk_tables_record(pkv_vk *vk, uint32_t H, const pkv_attn_op *op, uint32_t *seq_desc, pkv_buf *dst,
                                size_t table_word)
{
    const uint32_t F = op->n_seqs ? op->fixed_len / op->n_seqs : 0;
    pkv_status s = pkv_vk_regions_reserve(vk, op->n_seqs);
    /* what the mirrors hold: one region per sequence (its fixed part too when unchanged), one copy per
     * source buffer (page) */
    uint32_t n = 0, next = 0;
    VkBuffer src = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < op->n_seqs && s == PKV_OK; i++) {
        const pkv_attn_seq *q = &op->seqs[i];
        pkv_tab_mirror *m = q->mirror;
        const uint32_t seq_at = next; /* its words in the op's table: fixed part, then block slots */
        next += F + q->n_blocks * H;
        if (seq_desc) {
            uint32_t *d = seq_desc + (size_t)i * PKV_ATTN_SEQ_WORDS;
            d[3] = seq_at, d[6] = seq_at + F; /* table_offset, block_offset (attn_plan.h) */
        }
        const VkDeviceSize at = table_word + seq_at; /* in dst */
        if (!m || !m->buf) continue;
        if (m->synced > q->n_blocks) m->synced = q->n_blocks; /* defensive: the core lowers it when it drops blocks */
        const int fixed = m->fixed_ok && !memcmp(m->fixed, op->table + q->table_offset, (size_t)F * 4);
        if (!fixed) m->fixed_ok = 0;
        if (!fixed && !m->synced) continue;
        if (n && m->buf->page->buf != src) {
            vk->f.vkCmdCopyBuffer(vk->cb, src, dst->page->buf, n, vk->regions);
            n = 0;
        }
        src = m->buf->page->buf;
        const VkDeviceSize skip = fixed ? 0 : F; /* words */
        vk->regions[n++] = (VkBufferCopy){m->buf->off + skip * 4, dst->off + (at + skip) * 4,
                                          ((VkDeviceSize)F - skip + (VkDeviceSize)m->synced * H) * 4};
    }
    if (s == PKV_OK && n) vk->f.vkCmdCopyBuffer(vk->cb, src, dst->page->buf, n, vk->regions);
    /* the fixed parts that changed and the blocks added since: into the op's table and into the
     * mirror (disjoint from what is copied) */
    next = 0;
    for (uint32_t i = 0; i < op->n_seqs && s == PKV_OK; i++) {
        const pkv_attn_seq *q = &op->seqs[i];
        pkv_tab_mirror *m = q->mirror;
        const VkDeviceSize at = table_word + next;
        next += F + q->n_blocks * H;
        const int mirrored = m && m->buf;
        if (!mirrored || !m->fixed_ok) {
            const uint32_t *words = op->table + q->table_offset;
            s = pkv_vk_upload(vk, dst, at * 4, words, (size_t)F * 4);
            if (s == PKV_OK && mirrored) {
                s = pkv_vk_upload(vk, m->buf, 0, words, (size_t)F * 4);
                if (s == PKV_OK) memcpy(m->fixed, words, (size_t)F * 4), m->fixed_ok = 1;
            }
        }
        if (s != PKV_OK || !q->n_blocks) continue;
        const uint32_t from = mirrored ? m->synced : 0;
        if (from >= q->n_blocks) continue;
        const size_t bytes = (size_t)(q->n_blocks - from) * H * 4;
        const uint32_t *slots = q->blocks + (size_t)from * H;
        s = pkv_vk_upload(vk, dst, (at + F + (VkDeviceSize)from * H) * 4, slots, bytes);
        if (s == PKV_OK && mirrored) {
            s = pkv_vk_upload(vk, m->buf, ((VkDeviceSize)F + (VkDeviceSize)from * H) * 4, slots, bytes);
            if (s == PKV_OK) m->synced = q->n_blocks;
        }
    }
    return s;
}

void pkv_vk_tables_forget(const pkv_attn_op *op)
{
    for (uint32_t i = 0; i < op->n_seqs; i++)
        if (op->seqs[i].mirror) op->seqs[i].mirror->synced = 0, op->seqs[i].mirror->fixed_ok = 0;
}
