/* Attention's block tables kept in device memory on OpenCL (backend.h: pkv_tab_mirror), as
 * src/vulkan/vk_tables.c does on Vulkan. An attention op copies each sequence's block slots from its
 * mirror into the op's table with one copy command per sequence, and writes only the slots of blocks
 * added since the mirror was last brought up to date (a window flush adds one block per kv head): the
 * host work and the bytes written per op do not grow with the context. The queue is in order, so the
 * mirror's new slots (written past what the copies read) need no further ordering. */
#include "internal.h"
#include "ocl_internal.h"

static pkv_status reserve(pkv_backend *be, uint32_t H, pkv_tab_mirror *m, uint32_t nb)
{
    if (m->buf && m->cap >= nb) return PKV_OK;
    uint32_t cap = m->cap ? 2 * m->cap : 16;
    while (cap < nb) cap *= 2;
    pkv_buf *b = NULL;
    pkv_status s = pkv_ocl_buf_alloc(be, (size_t)cap * H * sizeof(uint32_t), &b);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: attention's block table could not be allocated");
    pkv_ocl_buf_free(be, m->buf); /* released once the commands that read it are done */
    m->buf = b, m->cap = cap, m->synced = 0; /* written whole by this op: rare (doubling) */
    return PKV_OK;
}

pkv_status pkv_ocl_tables_record(pkv_backend *be, uint32_t H, const pkv_attn_op *op, cl_mem table)
{
    pkv_ocl *o = pkv_ocl_of(be);
    pkv_status s = PKV_OK;
    for (uint32_t i = 0; i < op->n_seqs && s == PKV_OK; i++) {
        const pkv_attn_seq *q = &op->seqs[i];
        pkv_tab_mirror *m = q->mirror;
        const size_t at = (size_t)q->block_offset * 4;
        if (!q->n_blocks) continue;
        if (!m) { /* not kept (no resident copy): every slot written */
            s = pkv_ocl_write_at(o, table, at, q->blocks, (size_t)q->n_blocks * H * 4);
            continue;
        }
        if (m->synced > q->n_blocks) m->synced = q->n_blocks; /* defensive: the core lowers it when it drops blocks */
        s = reserve(be, H, m, q->n_blocks);
        if (s == PKV_OK && m->synced) {
            const cl_int err = o->cl->clEnqueueCopyBuffer(o->q, m->buf->mem, table, 0, at, (size_t)m->synced * H * 4, 0,
                                                          NULL, NULL);
            if (err != CL_SUCCESS) s = pkv_fail(NULL, pkv_ocl_status(err), "opencl: copying a block table failed (%s)",
                                                pkv_ocl_error_name(err));
        }
        if (s != PKV_OK || m->synced >= q->n_blocks) continue;
        /* the blocks added since: into the op's table and into the mirror */
        const size_t from = (size_t)m->synced * H * 4, bytes = (size_t)(q->n_blocks - m->synced) * H * 4;
        const uint32_t *slots = q->blocks + (size_t)m->synced * H;
        s = pkv_ocl_write_at(o, table, at + from, slots, bytes);
        if (s == PKV_OK) s = pkv_ocl_write_at(o, m->buf->mem, from, slots, bytes);
        if (s == PKV_OK) m->synced = q->n_blocks;
    }
    return s;
}

void pkv_ocl_tables_forget(const pkv_attn_op *op)
{
    for (uint32_t i = 0; i < op->n_seqs; i++)
        if (op->seqs[i].mirror) op->seqs[i].mirror->synced = 0;
}
