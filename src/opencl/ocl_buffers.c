/* Device buffers: the arenas of the common layer (pkv_buf) and the backend's own scratch buffers.
 * Every buffer is touched when allocated so that out-of-memory is reported here, as a status. */
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "host_alloc.h"
#include "ocl_internal.h"
#include "parallel.h"
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

/* An asynchronous write of a host copy of src (src may change or go away once this returns). */
static pkv_status write_async(pkv_ocl *o, cl_mem mem, size_t off, const void *src, size_t bytes)
{
    async_copy *copy = malloc(sizeof *copy + bytes);
    if (!copy) return PKV_ERR_OUT_OF_HOST_MEMORY;
    copy->alloc = pkv_alloc_current();
    memcpy(copy->data, src, bytes);
    cl_event ev = NULL;
    cl_int err = o->cl->clEnqueueWriteBuffer(o->q, mem, CL_FALSE, off, bytes, copy->data, 0, NULL, &ev);
    if (err == CL_SUCCESS) err = o->cl->clSetEventCallback(ev, CL_COMPLETE, free_copy, copy);
    if (err != CL_SUCCESS) {
        if (ev) o->cl->clWaitForEvents(1, &ev); /* the copy must outlive the write */
        free(copy);
    }
    if (ev) o->cl->clReleaseEvent(ev);
    return pkv_ocl_status(err);
}

pkv_status pkv_ocl_write_at(pkv_ocl *o, cl_mem mem, size_t off, const void *src, size_t bytes)
{
    if (!bytes) return PKV_OK;
    if (o->deferred) return write_async(o, mem, off, src, bytes);
    /* blocking: waits for the queue too (PKV_PROFILE counts it as "wait") */
    const double tw = pkv_prof_start();
    cl_int err = o->cl->clEnqueueWriteBuffer(o->q, mem, CL_TRUE, off, bytes, src, 0, NULL, NULL);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    pkv_prof_submit();
    return pkv_ocl_status(err);
}

pkv_status pkv_ocl_scratch_upload_async(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes)
{
    pkv_status st = pkv_ocl_scratch_reserve(o, s, bytes);
    return st != PKV_OK || !bytes ? st : write_async(o, s->mem, 0, src, bytes);
}

pkv_status pkv_ocl_scratch_upload(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes)
{
    pkv_status st = pkv_ocl_scratch_reserve(o, s, bytes);
    return st != PKV_OK ? st : pkv_ocl_write_at(o, s->mem, 0, src, bytes);
}

void pkv_ocl_scratch_free(pkv_ocl *o, pkv_ocl_scratch *s)
{
    if (s->mem) o->cl->clReleaseMemObject(s->mem);
    s->mem = NULL;
    s->bytes = 0;
}

/* ---- window-write slots ---------------------------------------------------------------------- */

#define WSLOT_MAX ((size_t)4 << 20)

static void wslot_wait(pkv_ocl *o, uint32_t i)
{
    if (!o->wslot_ev[i]) return;
    const double tw = pkv_prof_start();
    o->cl->clWaitForEvents(1, &o->wslot_ev[i]);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    o->cl->clReleaseEvent(o->wslot_ev[i]);
    o->wslot_ev[i] = NULL;
}

void pkv_ocl_wslots_free(pkv_ocl *o)
{
    for (uint32_t i = 0; i < PKV_OCL_WSLOTS; i++) wslot_wait(o, i);
    if (o->wpin && o->wpin_map && o->q &&
        o->cl->clEnqueueUnmapMemObject(o->q, o->wpin, o->wpin_map, 0, NULL, NULL) == CL_SUCCESS)
        o->cl->clFinish(o->q);
    if (o->wpin) o->cl->clReleaseMemObject(o->wpin);
    o->wpin = NULL, o->wpin_map = NULL, o->wslot_bytes = 0;
}

unsigned char *pkv_ocl_wslot_take(pkv_ocl *o, size_t bytes, uint32_t *slot)
{
    if (o->deferred || o->wpin_failed || bytes > WSLOT_MAX) return NULL;
    if (bytes > o->wslot_bytes) {
        size_t want = o->wslot_bytes ? 2 * o->wslot_bytes : (size_t)64 << 10;
        while (want < bytes) want *= 2;
        if (want > WSLOT_MAX) want = WSLOT_MAX;
        pkv_ocl_wslots_free(o);
        cl_int err = CL_SUCCESS;
        o->wpin = o->cl->clCreateBuffer(o->ctx, CL_MEM_READ_ONLY | CL_MEM_ALLOC_HOST_PTR, PKV_OCL_WSLOTS * want, NULL, &err);
        if (err == CL_SUCCESS)
            o->wpin_map = o->cl->clEnqueueMapBuffer(o->q, o->wpin, CL_TRUE, CL_MAP_WRITE, 0, PKV_OCL_WSLOTS * want, 0, NULL,
                                                    NULL, &err);
        if (err != CL_SUCCESS || !o->wpin_map) {
            if (o->wpin) o->cl->clReleaseMemObject(o->wpin);
            o->wpin = NULL, o->wpin_map = NULL, o->wpin_failed = 1;
            pkv_ocl_log(o, PKV_LOG_DEBUG, "opencl: no window-write slots (%s): copies per call", pkv_ocl_error_name(err));
            return NULL;
        }
        o->wslot_bytes = want, o->wslot_next = 0;
    }
    const uint32_t i = o->wslot_next;
    /* its write of PKV_OCL_WSLOTS calls ago: waited for when still running (a queue that far behind
     * makes the next synchronous op wait anyway; choosing the other path by timing would make the host
     * allocations of a run differ from run to run) */
    wslot_wait(o, i);
    o->wslot_next = (i + 1) % PKV_OCL_WSLOTS;
    *slot = i;
    return o->wpin_map + (size_t)i * o->wslot_bytes;
}

cl_int pkv_ocl_wslot_write(pkv_ocl *o, uint32_t slot, cl_mem dst, size_t bytes)
{
    cl_int err = o->cl->clEnqueueWriteBuffer(o->q, dst, CL_FALSE, 0, bytes, o->wpin_map + (size_t)slot * o->wslot_bytes, 0,
                                             NULL, &o->wslot_ev[slot]);
    if (err != CL_SUCCESS) o->wslot_ev[slot] = NULL;
    return err;
}

/* ---- pinned staging of large host uploads ----------------------------------------------------- */

#define PIN_HALF_BYTES ((size_t)32 << 20)
#define PIN_MIN_BYTES ((size_t)1 << 20) /* smaller uploads: one plain write */

static void pin_wait(pkv_ocl *o, uint32_t h, cl_int *err)
{
    if (!o->pin_ev[h]) return;
    const double tw = pkv_prof_start();
    cl_int e = o->cl->clWaitForEvents(1, &o->pin_ev[h]);
    pkv_prof_add(PKV_PROF_WAIT, tw);
    if (err && *err == CL_SUCCESS) *err = e;
    o->cl->clReleaseEvent(o->pin_ev[h]);
    o->pin_ev[h] = NULL;
}

void pkv_ocl_pinned_free(pkv_ocl *o)
{
    pin_wait(o, 0, NULL);
    pin_wait(o, 1, NULL);
    if (o->pin && o->pin_map && o->q && o->cl->clEnqueueUnmapMemObject(o->q, o->pin, o->pin_map, 0, NULL, NULL) == CL_SUCCESS)
        o->cl->clFinish(o->q);
    if (o->pin) o->cl->clReleaseMemObject(o->pin);
    o->pin = NULL, o->pin_map = NULL, o->pin_half = 0;
}

/* The staging buffer of halves of `half` bytes, made and mapped on first use; on failure the backend
 * stops trying. */
static int pinned_ready(pkv_ocl *o, size_t half)
{
    while (2 * half > o->max_alloc && half > 4096) half /= 2;
    if (o->pin_map && o->pin_half == half) return 1;
    if (o->pin_map) pkv_ocl_pinned_free(o);
    cl_int err = CL_SUCCESS;
    o->pin = o->cl->clCreateBuffer(o->ctx, CL_MEM_READ_ONLY | CL_MEM_ALLOC_HOST_PTR, 2 * half, NULL, &err);
    if (err == CL_SUCCESS)
        o->pin_map = o->cl->clEnqueueMapBuffer(o->q, o->pin, CL_TRUE, CL_MAP_WRITE, 0, 2 * half, 0, NULL, NULL, &err);
    if (err != CL_SUCCESS || !o->pin_map) {
        if (o->pin) o->cl->clReleaseMemObject(o->pin);
        o->pin = NULL, o->pin_map = NULL, o->pin_failed = 1;
        pkv_ocl_log(o, PKV_LOG_DEBUG, "opencl: no pinned staging (%s): plain writes", pkv_ocl_error_name(err));
        return 0;
    }
    o->pin_half = half;
    return 1;
}

cl_int pkv_ocl_upload_host(pkv_ocl *o, cl_mem dst, size_t dst_off, const void *src, size_t bytes)
{
    const char *env = getenv("PKV_OPENCL_PINNED");
    const long knob = env && *env ? atol(env) : -1;
    const size_t half = knob > 1 ? (size_t)knob : PIN_HALF_BYTES;
    const int stage = knob == 0 ? 0 : knob > 1 ? 1 : bytes >= PIN_MIN_BYTES && (knob == 1 || !o->is_cpu);
    if (!stage || o->deferred || o->pin_failed || !pinned_ready(o, half)) {
        const double ts = pkv_prof_start(); /* a driver may copy pageable memory here, on one thread */
        cl_int err = o->cl->clEnqueueWriteBuffer(o->q, dst, o->deferred ? CL_TRUE : CL_FALSE, dst_off, bytes, src, 0,
                                                 NULL, NULL);
        pkv_prof_add(PKV_PROF_STAGE, ts);
        return err;
    }
    const unsigned char *p = src;
    cl_int err = CL_SUCCESS;
    while (bytes && err == CL_SUCCESS) {
        const uint32_t h = o->pin_next;
        pin_wait(o, h, &err); /* the half's previous write has read it */
        if (err != CL_SUCCESS) break;
        const size_t n = bytes < o->pin_half ? bytes : o->pin_half;
        unsigned char *at = o->pin_map + h * o->pin_half;
        const double ts = pkv_prof_start();
        pkv_parallel_memcpy(at, p, n);
        pkv_prof_add(PKV_PROF_STAGE, ts);
        err = o->cl->clEnqueueWriteBuffer(o->q, dst, CL_FALSE, dst_off, n, at, 0, NULL, &o->pin_ev[h]);
        if (err != CL_SUCCESS) o->pin_ev[h] = NULL;
        p += n, dst_off += n, bytes -= n;
        o->pin_next ^= 1u;
    }
    return err;
}
