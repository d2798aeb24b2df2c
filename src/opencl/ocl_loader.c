/* dlopen of the OpenCL ICD loader; see ocl_loader.h. */
#include "ocl_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pkv_ocl_api g_api;
static const pkv_ocl_api *g_loaded;
static char g_why[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void load_once(void)
{
    /* PKV_OPENCL_LIBRARY overrides the name (tests use it to simulate a machine without OpenCL). */
    const char *name = getenv("PKV_OPENCL_LIBRARY");
    if (!name || !*name) name = "libOpenCL.so.1";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib && !getenv("PKV_OPENCL_LIBRARY")) lib = dlopen("libOpenCL.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(g_why, sizeof g_why, "%s not found (install an OpenCL ICD loader and driver)", name);
        return;
    }
#define PKV_OCL_RESOLVE(fn)                                                                         \
    {                                                                                               \
        void *sym = dlsym(lib, #fn);                                                                \
        if (!sym) {                                                                                 \
            snprintf(g_why, sizeof g_why, "%s lacks %s (OpenCL 1.2 loader needed)", name, #fn); \
            dlclose(lib);                                                                           \
            return;                                                                                 \
        }                                                                                           \
        memcpy(&g_api.fn, &sym, sizeof sym);                                                        \
    }
    PKV_OCL_FUNCTIONS(PKV_OCL_RESOLVE)
#undef PKV_OCL_RESOLVE
    g_loaded = &g_api; /* the library stays loaded for the life of the process */
}

const pkv_ocl_api *pkv_ocl_load(char *why, size_t why_len)
{
    pthread_once(&g_once, load_once);
    if (!g_loaded && why && why_len) snprintf(why, why_len, "%s", g_why);
    return g_loaded;
}

const char *pkv_ocl_error_name(cl_int err)
{
    switch (err) {
#define E(x) case x: return #x;
    E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
    E(CL_BUILD_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE) E(CL_INVALID_BINARY)
    E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_GROUP_SIZE)
    E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_MEM_OBJECT)
    E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL)
    E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_CONTEXT)
    E(CL_INVALID_OPERATION) E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_KERNEL_NAME)
    E(CL_PLATFORM_NOT_FOUND_KHR) E(CL_INVALID_PLATFORM) E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) E(CL_INVALID_EVENT_WAIT_LIST)
#undef E
    default: return "CL error";
    }
}
