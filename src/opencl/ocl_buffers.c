/* Device buffers: the arenas of the common layer (pkv_buf) and the backend's own scratch buffers.
 * Every buffer is touched when allocated so that out-of-memory is reported here, as a status. */
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "host_alloc.h"
#include "ocl_internal.h"
#include "profile.h"

/* Allocates and touches a buffer: many drivers allocate lazily, so a fill makes an out-of-memory
 * show up here, as a status, rather than in a later kernel. */
static cl_int alloc_touched(pkv_ocl *o, size_t bytes, cl_mem *out)
{
    *out = NULL;
    if (bytes == 0) bytes = 16;
    if (bytes > o->max_alloc) return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    if (pkv_fault_device_alloc()) return CL_MEM_OBJECT_ALLOCATION_FAILURE; /* tests only (fault.h) */
    cl_int err = CL_SUCCESS;
    cl_mem m = o->cl->clCreateBuffer(o->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) return err;
    const cl_uint zero = 0;
    size_t fill = bytes & ~(size_t)3;
    if (fill) err = o->cl->clEnqueueFillBuffer(o->q, m, &zero, sizeof zero, 0, fill, 0, NULL, NULL);
    if (err == CL_SUCCESS && !o->deferred) err = o->cl->clFinish(o->q);
    if (err != CL_SUCCESS) {
        o->cl->clReleaseMemObject(m);
        return err;
    }
    *out = m;
    return CL_SUCCESS;
}

pkv_status pkv_ocl_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out)
{
    pkv_ocl *o = pkv_ocl_of(be);
    *out = NULL;
    pkv_buf *b = calloc(1, sizeof *b);
    if (!b) return PKV_ERR_OUT_OF_HOST_MEMORY;
    cl_int err = alloc_touched(o, bytes, &b->mem);
    if (err != CL_SUCCESS) {
        free(b);
        pkv_ocl_log(o, PKV_LOG_DEBUG, "opencl: allocating %zu bytes failed (%s)", bytes, pkv_ocl_error_name(err));
        return pkv_ocl_status(err);
    }
    b->bytes = bytes;
    *out = b;
    return PKV_OK;
}

void pkv_ocl_buf_free(pkv_backend *be, pkv_buf *buf)
{
    if (!buf) return;
    if (buf->mem) pkv_ocl_of(be)->cl->clReleaseMemObject(buf->mem);
    free(buf);
}

static pkv_status range_ok(const pkv_buf *b, size_t off, size_t bytes)
{
    return off <= b->bytes && bytes <= b->bytes - off ? PKV_OK : PKV_ERR_INVALID_ARGUMENT;
}

pkv_status pkv_ocl_buf_write(pkv_backend *be, pkv_buf *buf, size_t offset, const void *src, size_t bytes)
{
    if (range_ok(buf, offset, bytes) != PKV_OK) return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    return pkv_ocl_status(o->cl->clEnqueueWriteBuffer(o->q, buf->mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL));
}

pkv_status pkv_ocl_buf_read(pkv_backend *be, pkv_buf *buf, size_t offset, void *dst, size_t bytes)
{
    if (range_ok(buf, offset, bytes) != PKV_OK) return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    return pkv_ocl_status(o->cl->clEnqueueReadBuffer(o->q, buf->mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL));
}

pkv_status pkv_ocl_buf_copy(pkv_backend *be, pkv_buf *dst, size_t dst_offset, pkv_buf *src, size_t src_offset,
                               size_t bytes)
{
    if (range_ok(dst, dst_offset, bytes) != PKV_OK || range_ok(src, src_offset, bytes) != PKV_OK)
        return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    cl_int err = o->cl->clEnqueueCopyBuffer(o->q, src->mem, dst->mem, src_offset, dst_offset, bytes, 0, NULL, NULL);
    if (err == CL_SUCCESS && !o->deferred) err = o->cl->clFinish(o->q);
    return pkv_ocl_status(err);
}

pkv_status pkv_ocl_scratch_reserve(pkv_ocl *o, pkv_ocl_scratch *s, size_t bytes)
{
    if (s->mem && s->bytes >= bytes) return PKV_OK;
    size_t want = bytes + bytes / 4 + 256;
    cl_mem m = NULL;
    cl_int err = alloc_touched(o, want, &m);
    if (err != CL_SUCCESS) return pkv_ocl_status(err);
    if (s->mem) o->cl->clReleaseMemObject(s->mem);
    s->mem = m;
    s->bytes = want;
    return PKV_OK;
}

/* The host copy of an asynchronous write, freed by the write's completion callback (a driver thread)
 * through the allocator of the call that made it (the context's: it outlives every pending write,
 * since freeing the context finishes its queue first). */
typedef struct async_copy {
    const pkv_allocator *alloc;
    _Alignas(16) unsigned char data[];
} async_copy;

static void CL_CALLBACK free_copy(cl_event ev, cl_int status, void *p)
{
    (void)ev, (void)status;
    async_copy *c = p;
    const pkv_allocator *prev = pkv_alloc_enter(c->alloc);
    free(c);
    pkv_alloc_leave(&prev);
}

pkv_status pkv_ocl_scratch_upload_async(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes)
{
    pkv_status st = pkv_ocl_scratch_reserve(o, s, bytes);
    if (st != PKV_OK || !bytes) return st;
    async_copy *copy = malloc(sizeof *copy + bytes);
    if (!copy) return PKV_ERR_OUT_OF_HOST_MEMORY;
    copy->alloc = pkv_alloc_current();
    memcpy(copy->data, src, bytes);
    cl_event ev = NULL;
    cl_int err = o->cl->clEnqueueWriteBuffer(o->q, s->mem, CL_FALSE, 0, bytes, copy->data, 0, NULL, &ev);
    if (err == CL_SUCCESS) err = o->cl->clSetEventCallback(ev, CL_COMPLETE, free_copy, copy);
    if (err != CL_SUCCESS) {
        if (ev) o->cl->clWaitForEvents(1, &ev); /* the copy must outlive the write */
        free(copy);
    }
    if (ev) o->cl->clReleaseEvent(ev);
    return pkv_ocl_status(err);
}

pkv_status pkv_ocl_scratch_upload(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes)
{
    if (o->deferred) return pkv_ocl_scratch_upload_async(o, s, src, bytes);
    pkv_status st = pkv_ocl_scratch_reserve(o, s, bytes);
    if (st != PKV_OK || !bytes) return st;
    /* blocking: waits for the queue too (PKV_PROFILE counts it as "wait") */
    const double tw = pkv_prof_start();
    cl_int err = o->cl->clEnqueueWriteBuffer(o->q, s->mem, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    pkv_prof_submit();
    return pkv_ocl_status(err);
}

void pkv_ocl_scratch_free(pkv_ocl *o, pkv_ocl_scratch *s)
{
    if (s->mem) o->cl->clReleaseMemObject(s->mem);
    s->mem = NULL;
    s->bytes = 0;
}
