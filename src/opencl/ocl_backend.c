/* The OpenCL backend: device listing, context creation, device buffers. The ops are in ocl_ops.c,
 * the program build and its on-disk cache in ocl_program.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../device_select.h"
#include "ocl_internal.h"
#include "patternkv_opencl.h"

#define MAX_DEVICES 32

typedef struct ocl_device_ref {
    cl_platform_id platform;
    cl_device_id device;
} ocl_device_ref;

void pkv_ocl_log(const pkv_ocl *o, pkv_log_level level, const char *fmt, ...)
{
    if (level > o->log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->log) o->log(level, msg, o->log_user);
    else fprintf(stderr, "patternkv: %s\n", msg);
}

pkv_status pkv_ocl_status(cl_int err)
{
    if (err == CL_SUCCESS) return PKV_OK;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_INVALID_BUFFER_SIZE)
        return PKV_ERR_OUT_OF_DEVICE_MEMORY;
    if (err == CL_OUT_OF_HOST_MEMORY) return PKV_ERR_OUT_OF_HOST_MEMORY;
    return PKV_ERR_DEVICE;
}

static int has_ext(const char *exts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n)
        if ((p == exts || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
    return 0;
}

static void device_string(const pkv_ocl_api *cl, cl_device_id d, cl_device_info what, char *out, size_t cap)
{
    out[0] = 0;
    if (cl->clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) out[0] = 0;
    out[cap - 1] = 0;
}

/* Fills the public description of one device. */
static void describe(const pkv_ocl_api *cl, cl_platform_id plat, cl_device_id d, uint32_t index,
                     pkv_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->backend = PKV_BACKEND_OPENCL;
    info->index = index;
    device_string(cl, d, CL_DEVICE_NAME, info->name, sizeof info->name);
    char plat_name[64] = "", drv[64] = "";
    cl->clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof plat_name, plat_name, NULL);
    plat_name[sizeof plat_name - 1] = 0;
    device_string(cl, d, CL_DRIVER_VERSION, drv, sizeof drv);
    snprintf(info->driver, sizeof info->driver, "%s %s", plat_name, drv);

    cl_device_type type = 0;
    cl_bool unified = CL_FALSE;
    cl->clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl->clGetDeviceInfo(d, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    if (type & CL_DEVICE_TYPE_CPU) info->type = PKV_DEVICE_CPU;
    else if (type & CL_DEVICE_TYPE_GPU) info->type = unified ? PKV_DEVICE_INTEGRATED_GPU : PKV_DEVICE_DISCRETE_GPU;
    else info->type = PKV_DEVICE_OTHER;

    cl_ulong mem = 0;
    cl->clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    info->memory_bytes = mem;

    size_t ext_len = 0;
    cl->clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len);
    char *exts = calloc(ext_len + 1, 1);
    if (exts && cl->clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, ext_len, exts, NULL) == CL_SUCCESS) {
        /* vload_half/vstore_half and byte stores are core in OpenCL 1.2: 8- and 16-bit storage always. */
        info->features = PKV_FEATURE_STORAGE_8BIT | PKV_FEATURE_STORAGE_16BIT;
        if (has_ext(exts, "cl_khr_fp16")) info->features |= PKV_FEATURE_FP16_MATH;
        if (has_ext(exts, "cl_khr_integer_dot_product")) info->features |= PKV_FEATURE_INT_DOT;
        if (has_ext(exts, "cl_khr_subgroups") || has_ext(exts, "cl_intel_subgroups"))
            info->features |= PKV_FEATURE_SUBGROUPS;
        cl_uint width = 0;
        if (has_ext(exts, "cl_nv_device_attribute_query") &&
            cl->clGetDeviceInfo(d, 0x4003 /* CL_DEVICE_WARP_SIZE_NV */, sizeof width, &width, NULL) == CL_SUCCESS) {
            info->subgroup_size = width;
            info->features |= PKV_FEATURE_SUBGROUPS;
        } else if (has_ext(exts, "cl_amd_device_attribute_query") &&
                   cl->clGetDeviceInfo(d, 0x4043 /* CL_DEVICE_WAVEFRONT_WIDTH_AMD */, sizeof width, &width,
                                       NULL) == CL_SUCCESS) {
            info->subgroup_size = width;
            info->features |= PKV_FEATURE_SUBGROUPS;
        }
    }
    free(exts);
}

/* All devices of all platforms, in platform order. */
static pkv_status enumerate(const pkv_ocl_api *cl, ocl_device_ref *refs, pkv_device_info *infos, size_t cap,
                            size_t *count, char *why, size_t why_len)
{
    cl_platform_id plats[16];
    cl_uint n_plat = 0;
    cl_int err = cl->clGetPlatformIDs(16, plats, &n_plat);
    *count = 0;
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && n_plat == 0)) {
        snprintf(why, why_len, "no OpenCL platform installed (no ICD in /etc/OpenCL/vendors)");
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "clGetPlatformIDs failed (%s)", pkv_ocl_error_name(err));
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    if (n_plat > 16) n_plat = 16;
    size_t n = 0;
    for (cl_uint p = 0; p < n_plat; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (cl->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS) continue;
        if (nd > MAX_DEVICES) nd = MAX_DEVICES;
        for (cl_uint i = 0; i < nd && n < cap; i++, n++) {
            if (refs) refs[n] = (ocl_device_ref){plats[p], devs[i]};
            describe(cl, plats[p], devs[i], (uint32_t)n, &infos[n]);
        }
    }
    *count = n;
    if (n == 0) {
        snprintf(why, why_len, "%u platform(s) but no device", (unsigned)n_plat);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    return PKV_OK;
}

static pkv_status ocl_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                           size_t why_len)
{
    (void)p;
    *count = 0;
    const pkv_ocl_api *cl = pkv_ocl_load(why, why_len);
    if (!cl) return PKV_ERR_BACKEND_UNAVAILABLE;
    pkv_device_info infos[MAX_DEVICES];
    size_t n = 0;
    pkv_status st = enumerate(cl, NULL, infos, MAX_DEVICES, &n, why, why_len);
    if (st != PKV_OK) return st;
    for (size_t i = 0; i < n && i < cap; i++) out[i] = infos[i];
    *count = n;
    return PKV_OK;
}

/* ---- buffers ------------------------------------------------------------------------------ */

/* Allocates and touches a buffer: many drivers allocate lazily, so a fill makes an out-of-memory
 * show up here, as a status, rather than in a later kernel. */
static cl_int alloc_touched(pkv_ocl *o, size_t bytes, cl_mem *out)
{
    *out = NULL;
    if (bytes == 0) bytes = 16;
    if (bytes > o->max_alloc) return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    cl_int err = CL_SUCCESS;
    cl_mem m = o->cl->clCreateBuffer(o->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) return err;
    const cl_uint zero = 0;
    size_t fill = bytes & ~(size_t)3;
    if (fill) err = o->cl->clEnqueueFillBuffer(o->q, m, &zero, sizeof zero, 0, fill, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = o->cl->clFinish(o->q);
    if (err != CL_SUCCESS) {
        o->cl->clReleaseMemObject(m);
        return err;
    }
    *out = m;
    return CL_SUCCESS;
}

static pkv_status ocl_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out)
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

static void ocl_buf_free(pkv_backend *be, pkv_buf *buf)
{
    if (!buf) return;
    if (buf->mem) pkv_ocl_of(be)->cl->clReleaseMemObject(buf->mem);
    free(buf);
}

static pkv_status range_ok(const pkv_buf *b, size_t off, size_t bytes)
{
    return off <= b->bytes && bytes <= b->bytes - off ? PKV_OK : PKV_ERR_INVALID_ARGUMENT;
}

static pkv_status ocl_buf_write(pkv_backend *be, pkv_buf *buf, size_t offset, const void *src, size_t bytes)
{
    if (range_ok(buf, offset, bytes) != PKV_OK) return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    return pkv_ocl_status(o->cl->clEnqueueWriteBuffer(o->q, buf->mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL));
}

static pkv_status ocl_buf_read(pkv_backend *be, pkv_buf *buf, size_t offset, void *dst, size_t bytes)
{
    if (range_ok(buf, offset, bytes) != PKV_OK) return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    return pkv_ocl_status(o->cl->clEnqueueReadBuffer(o->q, buf->mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL));
}

static pkv_status ocl_buf_copy(pkv_backend *be, pkv_buf *dst, size_t dst_offset, pkv_buf *src, size_t src_offset,
                               size_t bytes)
{
    if (range_ok(dst, dst_offset, bytes) != PKV_OK || range_ok(src, src_offset, bytes) != PKV_OK)
        return PKV_ERR_INVALID_ARGUMENT;
    if (!bytes) return PKV_OK;
    pkv_ocl *o = pkv_ocl_of(be);
    cl_int err = o->cl->clEnqueueCopyBuffer(o->q, src->mem, dst->mem, src_offset, dst_offset, bytes, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = o->cl->clFinish(o->q);
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

pkv_status pkv_ocl_scratch_upload(pkv_ocl *o, pkv_ocl_scratch *s, const void *src, size_t bytes)
{
    pkv_status st = pkv_ocl_scratch_reserve(o, s, bytes);
    if (st != PKV_OK || !bytes) return st;
    return pkv_ocl_status(o->cl->clEnqueueWriteBuffer(o->q, s->mem, CL_TRUE, 0, bytes, src, 0, NULL, NULL));
}

void pkv_ocl_scratch_free(pkv_ocl *o, pkv_ocl_scratch *s)
{
    if (s->mem) o->cl->clReleaseMemObject(s->mem);
    s->mem = NULL;
    s->bytes = 0;
}

/* ---- kernels -------------------------------------------------------------------------------- */

cl_int pkv_ocl_args(pkv_ocl *o, cl_kernel k, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < n && err == CL_SUCCESS; i++) {
        size_t size = va_arg(ap, size_t);
        const void *ptr = va_arg(ap, const void *);
        err = o->cl->clSetKernelArg(k, (cl_uint)i, size, ptr);
    }
    va_end(ap);
    return err;
}

cl_int pkv_ocl_launch(pkv_ocl *o, cl_kernel k, size_t n_groups, size_t local)
{
    if (n_groups == 0) return CL_SUCCESS;
    size_t global = n_groups * local;
    cl_event ev = NULL;
    cl_int err = o->cl->clEnqueueNDRangeKernel(o->q, k, 1, NULL, &global, &local, 0, NULL, o->profiling ? &ev : NULL);
    if (ev) {
        if (!o->ev_first) o->ev_first = ev;
        else {
            if (o->ev_last) o->cl->clReleaseEvent(o->ev_last);
            o->ev_last = ev;
        }
    }
    return err;
}

static double now_ms(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void release_events(pkv_ocl *o)
{
    if (o->ev_first) o->cl->clReleaseEvent(o->ev_first);
    if (o->ev_last) o->cl->clReleaseEvent(o->ev_last);
    o->ev_first = o->ev_last = NULL;
}

void pkv_ocl_op_begin(pkv_ocl *o)
{
    release_events(o);
    o->last_op_ms = -1.0;
    o->op_t0 = now_ms();
}

void pkv_ocl_op_end(pkv_ocl *o, int ok)
{
    double host = now_ms() - o->op_t0;
    o->last_op_ms = ok ? host : -1.0;
    cl_ulong t0 = 0, t1 = 0;
    cl_event last = o->ev_last ? o->ev_last : o->ev_first;
    if (ok && o->ev_first &&
        o->cl->clGetEventProfilingInfo(o->ev_first, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
        o->cl->clGetEventProfilingInfo(last, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS && t1 >= t0)
        o->last_op_ms = (double)(t1 - t0) * 1e-6; /* first kernel start to last kernel end */
    release_events(o);
}

static double ocl_last_op_ms(pkv_backend *be) { return pkv_ocl_of(be)->last_op_ms; }

/* ---- create / destroy ------------------------------------------------------------------------- */

static void ocl_destroy(pkv_backend *be)
{
    if (!be) return;
    pkv_ocl *o = pkv_ocl_of(be);
    if (o) {
        if (o->q) o->cl->clFinish(o->q);
        release_events(o);
        for (int i = 0; i < PKV_S_COUNT; i++) pkv_ocl_scratch_free(o, &o->s[i]);
        pkv_ocl_release_program(o);
        if (o->q) o->cl->clReleaseCommandQueue(o->q);
        if (o->ctx) o->cl->clReleaseContext(o->ctx);
        free(o);
    }
    free(be);
}

static const pkv_backend_iface ocl_iface = {
    .destroy = ocl_destroy,
    .buf_alloc = ocl_buf_alloc,
    .buf_free = ocl_buf_free,
    .buf_write = ocl_buf_write,
    .buf_read = ocl_buf_read,
    .buf_copy = ocl_buf_copy,
    .mine = pkv_ocl_mine,
    .flush = pkv_ocl_flush,
    .attention = pkv_ocl_attention,
    .measure_read = pkv_ocl_measure_read,
    .last_op_ms = ocl_last_op_ms,
};

/* The program-cache directory: params, else $PKV_CACHE_DIR, else ~/.cache/patternkv ("" if none). */
static void pick_cache_dir(const pkv_context_params *p, char *out, size_t cap)
{
    const char *env = getenv("PKV_CACHE_DIR"), *home = getenv("HOME");
    if (p && p->cache_dir && *p->cache_dir) snprintf(out, cap, "%s", p->cache_dir);
    else if (env && *env) snprintf(out, cap, "%s", env);
    else if (home && *home) snprintf(out, cap, "%s/.cache/patternkv", home);
    else out[0] = 0;
}

/* Handles from the application (engine integration), retained so both sides can release freely. */
static pkv_status adopt_external(pkv_ocl *o, const pkv_opencl_external *ext, pkv_device_info *info, char *why,
                                 size_t why_len)
{
    const pkv_ocl_api *cl = o->cl;
    if (!ext->context || !ext->device) {
        snprintf(why, why_len, "pkv_opencl_external needs a context and a device");
        return PKV_ERR_INVALID_ARGUMENT;
    }
    cl_platform_id plat = NULL;
    cl_int err = cl->clGetDeviceInfo(ext->device, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "the external device is not valid (%s)", pkv_ocl_error_name(err));
        return PKV_ERR_INVALID_ARGUMENT;
    }
    o->platform = plat;
    o->dev = ext->device;
    if ((err = cl->clRetainContext(ext->context)) != CL_SUCCESS) {
        snprintf(why, why_len, "the external context is not valid (%s)", pkv_ocl_error_name(err));
        return PKV_ERR_INVALID_ARGUMENT;
    }
    o->ctx = ext->context;
    if (ext->queue) {
        if ((err = cl->clRetainCommandQueue(ext->queue)) != CL_SUCCESS) {
            snprintf(why, why_len, "the external queue is not valid (%s)", pkv_ocl_error_name(err));
            return PKV_ERR_INVALID_ARGUMENT;
        }
        o->q = ext->queue;
    }
    describe(cl, plat, ext->device, 0, info);
    o->owns_handles = 0;
    return PKV_OK;
}

static pkv_status create_on_selected(const pkv_context_params *p, pkv_ocl *o, pkv_device_info *info, char *why,
                                     size_t why_len)
{
    const pkv_ocl_api *cl = o->cl;
    ocl_device_ref refs[MAX_DEVICES];
    pkv_device_info infos[MAX_DEVICES];
    size_t n = 0;
    pkv_status st = enumerate(cl, refs, infos, MAX_DEVICES, &n, why, why_len);
    if (st != PKV_OK) return st;
    char reason[200] = "";
    int sel = pkv_select_device(p, infos, n, reason, sizeof reason);
    if (sel < 0) {
        snprintf(why, why_len, "%s", reason);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    o->platform = refs[sel].platform;
    o->dev = refs[sel].device;
    *info = infos[sel];
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)o->platform, 0};
    cl_int err = CL_SUCCESS;
    o->ctx = cl->clCreateContext(props, 1, &o->dev, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        o->ctx = NULL;
        snprintf(why, why_len, "clCreateContext on %s failed (%s)", info->name, pkv_ocl_error_name(err));
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    o->owns_handles = 1;
    return PKV_OK;
}

static pkv_status ocl_create(const pkv_context_params *p, pkv_backend **out, char *why, size_t why_len)
{
    *out = NULL;
    const pkv_ocl_api *cl = pkv_ocl_load(why, why_len);
    if (!cl) return PKV_ERR_BACKEND_UNAVAILABLE;
    pkv_backend *be = calloc(1, sizeof *be);
    pkv_ocl *o = calloc(1, sizeof *o);
    if (!be || !o) {
        free(be);
        free(o);
        snprintf(why, why_len, "out of host memory");
        return PKV_ERR_OUT_OF_HOST_MEMORY;
    }
    be->iface = &ocl_iface;
    be->impl = o;
    o->cl = cl;
    o->log = p ? p->log : NULL;
    o->log_user = p ? p->log_user : NULL;
    o->log_level = p ? p->log_level : PKV_LOG_WARN;
    pick_cache_dir(p, o->cache_dir, sizeof o->cache_dir);

    const pkv_opencl_external *ext = p ? (const pkv_opencl_external *)p->external : NULL;
    if (ext && ext->backend != PKV_BACKEND_OPENCL) ext = NULL; /* another backend's handles */
    pkv_status st = ext ? adopt_external(o, ext, &be->info, why, why_len)
                        : create_on_selected(p, o, &be->info, why, why_len);
    cl_int err = CL_SUCCESS;
    if (st == PKV_OK && !o->q) {
        o->q = cl->clCreateCommandQueue(o->ctx, o->dev, CL_QUEUE_PROFILING_ENABLE, &err);
        if (err != CL_SUCCESS) {
            o->q = NULL;
            snprintf(why, why_len, "clCreateCommandQueue failed (%s)", pkv_ocl_error_name(err));
            st = PKV_ERR_BACKEND_UNAVAILABLE;
        }
    }
    if (st == PKV_OK) {
        cl_command_queue_properties props = 0;
        cl->clGetCommandQueueInfo(o->q, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL);
        o->profiling = (props & CL_QUEUE_PROFILING_ENABLE) != 0;
        o->last_op_ms = -1.0;
        size_t wg = 0;
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof o->max_alloc, &o->max_alloc, NULL);
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof o->local_mem, &o->local_mem, NULL);
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof o->compute_units, &o->compute_units, NULL);
        cl->clGetPlatformInfo(o->platform, CL_PLATFORM_VERSION, sizeof o->platform_version, o->platform_version, NULL);
        cl->clGetDeviceInfo(o->dev, CL_DRIVER_VERSION, sizeof o->driver_version, o->driver_version, NULL);
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_VERSION, sizeof o->device_version, o->device_version, NULL);
        o->platform_version[sizeof o->platform_version - 1] = 0;
        o->driver_version[sizeof o->driver_version - 1] = 0;
        o->device_version[sizeof o->device_version - 1] = 0;
        o->max_wg = wg ? wg : 1;
        if (!o->max_alloc) o->max_alloc = (cl_ulong)1 << 28;
        if (!o->compute_units) o->compute_units = 1;
        st = pkv_ocl_build(o, why, why_len);
    }
    if (st != PKV_OK) {
        ocl_destroy(be);
        return st;
    }
    *out = be;
    return PKV_OK;
}

const pkv_backend_entry pkv_opencl_backend_entry = {
    .kind = PKV_BACKEND_OPENCL,
    .list = ocl_list,
    .create = ocl_create,
};
