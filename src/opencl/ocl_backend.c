/* The OpenCL backend: context creation on the selected (or the application's) device, and the
 * backend table. Devices: ocl_devices.c; buffers: ocl_buffers.c; launches and timing: ocl_launch.c;
 * the ops: ocl_ops.c; the program build and its on-disk cache: ocl_program.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "profile.h"
#include "device_select.h"
#include "ocl_internal.h"
#include "patternkv_opencl.h"

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

/* ---- create / destroy ------------------------------------------------------------------------- */

static void ocl_destroy(pkv_backend *be)
{
    if (!be) return;
    pkv_ocl *o = pkv_ocl_of(be);
    if (o) {
        if (o->q) o->cl->clFinish(o->q);
        pkv_ocl_release_events(o);
        pkv_ocl_pinned_free(o);
        pkv_ocl_wslots_free(o);
        for (int i = 0; i < PKV_S_COUNT; i++) pkv_ocl_scratch_free(o, &o->s[i]);
        free(o->wstage);
        pkv_attn_plan_memo_free(&o->attn_plan);
        pkv_ocl_release_program(o);
        if (o->q) o->cl->clReleaseCommandQueue(o->q);
        if (o->ctx) o->cl->clReleaseContext(o->ctx);
        free(o);
    }
    free(be);
}

static const pkv_backend_iface ocl_iface = {
    .destroy = ocl_destroy,
    .buf_alloc = pkv_ocl_buf_alloc,
    .buf_free = pkv_ocl_buf_free,
    .buf_write = pkv_ocl_buf_write,
    .buf_read = pkv_ocl_buf_read,
    .buf_copy = pkv_ocl_buf_copy,
    .quantizers = (1u << PKV_QUANTIZER_MSE) | (1u << PKV_QUANTIZER_MSE_K) | (1u << PKV_QUANTIZER_MSE_V),
    .mine = pkv_ocl_mine,
    .flush = pkv_ocl_flush,
    .write_window = pkv_ocl_write_window,
    .attention = pkv_ocl_attention,
    .resident_tables = 1, /* ocl_tables.c */
    .prewarm = pkv_ocl_prewarm,
    .measure_read = pkv_ocl_measure_read,
    .last_op_ms = pkv_ocl_last_op_ms,
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
static const pkv_abi_struct opencl_external_abi = {"pkv_opencl_external", "ext.struct_size = sizeof ext", 1,
                                                   {sizeof(pkv_opencl_external)}};

static pkv_status adopt_external(pkv_ocl *o, const pkv_opencl_external *app, pkv_device_info *info, char *why,
                                 size_t why_len)
{
    static const pkv_opencl_external none; /* fields a smaller (older) struct lacks stay 0 */
    pkv_opencl_external all, *ext = &all;
    if (pkv_abi_copy_in(&opencl_external_abi, app, &none, &all, why, why_len)) return PKV_ERR_INVALID_ARGUMENT;
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
        /* The library's launches rely on in-order execution (no events between them). */
        cl_command_queue_properties props = 0;
        if ((err = cl->clGetCommandQueueInfo(ext->queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL)) != CL_SUCCESS) {
            snprintf(why, why_len, "the external queue's properties cannot be read (%s)", pkv_ocl_error_name(err));
            return PKV_ERR_INVALID_ARGUMENT;
        }
        if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) {
            snprintf(why, why_len, "pkv_opencl_external.queue is an out-of-order queue: it must be in-order "
                                   "(created without CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)");
            return PKV_ERR_INVALID_ARGUMENT;
        }
    }
    pkv_ocl_describe(cl, plat, ext->device, 0, info);
    o->owns_handles = 0;
    return PKV_OK;
}

static pkv_status create_on_selected(const pkv_context_params *p, pkv_ocl *o, pkv_device_info *info, char *why,
                                     size_t why_len)
{
    const pkv_ocl_api *cl = o->cl;
    pkv_ocl_device_ref refs[PKV_OCL_MAX_DEVICES];
    pkv_device_info infos[PKV_OCL_MAX_DEVICES];
    size_t n = 0;
    pkv_status st = pkv_ocl_enumerate(cl, refs, infos, PKV_OCL_MAX_DEVICES, &n, why, why_len);
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
    const double t0 = pkv_clock_s();
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

    const pkv_opencl_external *ext = p ? p->opencl_external : NULL;
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
        be->max_buffer_bytes = o->max_alloc; /* the pool's buffers stay within it */
        if (!o->compute_units) o->compute_units = 1;
        cl_device_type type = 0;
        cl->clGetDeviceInfo(o->dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
        o->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
        be->driver_ms = (pkv_clock_s() - t0) * 1e3; /* the platform's part; the program build is ours */
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
    .list = pkv_ocl_list,
    .create = ocl_create,
};
