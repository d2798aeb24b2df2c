/* The OpenCL entry points we use, resolved at run time from the ICD loader (libOpenCL.so.1), so a
 * machine without OpenCL still runs the other backends. Headers give types only. */
#ifndef PKV_OCL_LOADER_H
#define PKV_OCL_LOADER_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <stddef.h>

/* X(name) for every function of the table. */
#define PKV_OCL_FUNCTIONS(X) \
    X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) \
    X(clCreateContext) X(clRetainContext) X(clReleaseContext) X(clGetContextInfo) \
    X(clCreateCommandQueue) X(clRetainCommandQueue) X(clReleaseCommandQueue) X(clGetCommandQueueInfo) \
    X(clCreateBuffer) X(clReleaseMemObject) X(clGetMemObjectInfo) \
    X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer) X(clEnqueueCopyBuffer) X(clEnqueueFillBuffer) \
    X(clEnqueueMapBuffer) X(clEnqueueUnmapMemObject) \
    X(clCreateProgramWithSource) X(clCreateProgramWithBinary) X(clBuildProgram) \
    X(clGetProgramBuildInfo) X(clGetProgramInfo) X(clReleaseProgram) \
    X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg) X(clGetKernelWorkGroupInfo) \
    X(clEnqueueNDRangeKernel) X(clFinish) X(clFlush) \
    X(clWaitForEvents) X(clGetEventProfilingInfo) X(clReleaseEvent) \
    X(clSetEventCallback) X(clEnqueueMarkerWithWaitList) X(clEnqueueBarrierWithWaitList)

typedef struct pkv_ocl_api {
#define PKV_OCL_MEMBER(name) __typeof__(&name) name;
    PKV_OCL_FUNCTIONS(PKV_OCL_MEMBER)
#undef PKV_OCL_MEMBER
} pkv_ocl_api;

/* Loads the ICD loader once per process (thread-safe). Returns NULL and writes a sentence to why
 * when it is missing or incomplete. */
const pkv_ocl_api *pkv_ocl_load(char *why, size_t why_len);

/* "CL_OUT_OF_RESOURCES" etc. */
const char *pkv_ocl_error_name(cl_int err);

#endif
