/* The streaming-read bandwidth measurement (see ocl_bench.h and pkv_measure_read_bandwidth). */
#include "ocl_bench.h"

#include "internal.h"
#include "ocl_internal.h"

pkv_status pkv_ocl_measure_read(pkv_backend *be, uint64_t bytes, double *gbps)
{
    pkv_ocl *o = pkv_ocl_of(be);
    const pkv_ocl_api *cl = o->cl;
    const int reps = 5;
    if (bytes > o->max_alloc) bytes = o->max_alloc;
    if (bytes > ((uint64_t)0xFFFFFFFFu << 4)) bytes = (uint64_t)0xFFFFFFFFu << 4;
    if (bytes < 16) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "opencl: read bandwidth: buffer too small");
    cl_uint n4 = (cl_uint)(bytes / 16);
    size_t local = o->wg[PKV_K_STREAM];
    size_t global = (size_t)o->compute_units * 2048;
    global = (global + local - 1) / local * local;

    cl_int err = CL_SUCCESS;
    /* a queue of our own with profiling: the application's queue may not have it */
    cl_command_queue q = cl->clCreateCommandQueue(o->ctx, o->dev, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) return pkv_fail(NULL, PKV_ERR_DEVICE, "opencl: profiling queue: %s", pkv_ocl_error_name(err));
    pkv_ocl_scratch src = {0}, dst = {0};
    pkv_status st = pkv_ocl_scratch_reserve(o, &src, (size_t)n4 * 16);
    if (st == PKV_OK) st = pkv_ocl_scratch_reserve(o, &dst, global * 4);
    double best = 0.0;
    if (st == PKV_OK) {
        cl_kernel k = o->k[PKV_K_STREAM];
        err = pkv_ocl_args(o, k, 3, sizeof src.mem, (const void *)&src.mem, sizeof n4, (const void *)&n4,
                           sizeof dst.mem, (const void *)&dst.mem);
        for (int r = 0; r <= reps && err == CL_SUCCESS; r++) {
            cl_event ev = NULL;
            err = cl->clEnqueueNDRangeKernel(q, k, 1, NULL, &global, &local, 0, NULL, &ev);
            if (err == CL_SUCCESS) err = cl->clWaitForEvents(1, &ev);
            cl_ulong t0 = 0, t1 = 0;
            if (err == CL_SUCCESS) err = cl->clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
            if (err == CL_SUCCESS) err = cl->clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
            if (ev) cl->clReleaseEvent(ev);
            if (err == CL_SUCCESS && r > 0 && t1 > t0) { /* r = 0 is the warm-up */
                double rate = (double)n4 * 16.0 / ((double)(t1 - t0) * 1e-9) / 1e9;
                if (rate > best) best = rate;
            }
        }
        if (err != CL_SUCCESS) st = pkv_fail(NULL, pkv_ocl_status(err), "opencl: read bandwidth: %s", pkv_ocl_error_name(err));
    } else {
        st = pkv_fail(NULL, st, "opencl: read bandwidth: cannot allocate %llu bytes", (unsigned long long)bytes);
    }
    pkv_ocl_scratch_free(o, &src);
    pkv_ocl_scratch_free(o, &dst);
    cl->clReleaseCommandQueue(q);
    if (st == PKV_OK && best <= 0.0) st = pkv_fail(NULL, PKV_ERR_DEVICE, "opencl: read bandwidth: no timing from the driver");
    *gbps = best;
    return st;
}

pkv_status pkv_opencl_read_bandwidth(pkv_context *ctx, size_t bytes, int reps, double *gbps)
{
    (void)reps;
    if (!ctx || !gbps || bytes < 16)
        return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_opencl_read_bandwidth: bad argument");
    if (ctx->be->info.backend != PKV_BACKEND_OPENCL)
        return pkv_fail(ctx, PKV_ERR_UNSUPPORTED, "pkv_opencl_read_bandwidth: the context is not on OpenCL");
    return pkv_ocl_measure_read(ctx->be, bytes, gbps);
}
