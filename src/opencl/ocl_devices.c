/* Listing OpenCL devices: every device of every platform, described for pkv_device_info. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

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
void pkv_ocl_describe(const pkv_ocl_api *cl, cl_platform_id plat, cl_device_id d, uint32_t index,
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
pkv_status pkv_ocl_enumerate(const pkv_ocl_api *cl, pkv_ocl_device_ref *refs, pkv_device_info *infos, size_t cap,
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
        cl_device_id devs[PKV_OCL_MAX_DEVICES];
        cl_uint nd = 0;
        if (cl->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, PKV_OCL_MAX_DEVICES, devs, &nd) != CL_SUCCESS) continue;
        if (nd > PKV_OCL_MAX_DEVICES) nd = PKV_OCL_MAX_DEVICES;
        for (cl_uint i = 0; i < nd && n < cap; i++, n++) {
            if (refs) refs[n] = (pkv_ocl_device_ref){plats[p], devs[i]};
            pkv_ocl_describe(cl, plats[p], devs[i], (uint32_t)n, &infos[n]);
        }
    }
    *count = n;
    if (n == 0) {
        snprintf(why, why_len, "%u platform(s) but no device", (unsigned)n_plat);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    return PKV_OK;
}

pkv_status pkv_ocl_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                           size_t why_len)
{
    (void)p;
    *count = 0;
    const pkv_ocl_api *cl = pkv_ocl_load(why, why_len);
    if (!cl) return PKV_ERR_BACKEND_UNAVAILABLE;
    pkv_device_info infos[PKV_OCL_MAX_DEVICES];
    size_t n = 0;
    pkv_status st = pkv_ocl_enumerate(cl, NULL, infos, PKV_OCL_MAX_DEVICES, &n, why, why_len);
    if (st != PKV_OK) return st;
    for (size_t i = 0; i < n && i < cap; i++) out[i] = infos[i];
    *count = n;
    return PKV_OK;
}
