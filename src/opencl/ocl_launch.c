/* Kernel arguments, launches and the timing of ops (kernel timestamps, else the host clock). */
#include <stdarg.h>
#include <time.h>

#include "ocl_internal.h"

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

void pkv_ocl_release_events(pkv_ocl *o)
{
    if (o->ev_first) o->cl->clReleaseEvent(o->ev_first);
    if (o->ev_last) o->cl->clReleaseEvent(o->ev_last);
    o->ev_first = o->ev_last = NULL;
}

void pkv_ocl_op_begin(pkv_ocl *o)
{
    pkv_ocl_release_events(o);
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
    pkv_ocl_release_events(o);
}

double pkv_ocl_last_op_ms(pkv_backend *be) { return pkv_ocl_of(be)->last_op_ms; }
