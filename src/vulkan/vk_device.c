/* Vulkan instance and devices: listing with the optional features we use, choosing one, creating
 * the logical device (or adopting the application's, see include/patternkv_vulkan.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "device_select.h"
#include "patternkv_vulkan.h"
#include "vk_internal.h"

static pkv_status create_instance(pkv_vk_funcs *f, VkInstance *inst, char *why, size_t why_len)
{
    uint32_t api = VK_API_VERSION_1_0;
    if (f->vkEnumerateInstanceVersion) f->vkEnumerateInstanceVersion(&api);
    if (api < VK_API_VERSION_1_1) {
        snprintf(why, why_len, "the Vulkan loader supports only Vulkan 1.0 (1.1 needed)");
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    /* Portability enumeration lists MoltenVK-style drivers too, when the loader has it. */
    const char *exts[1];
    uint32_t n_ext = 0, n_avail = 0;
    VkInstanceCreateFlags flags = 0;
    if (f->vkEnumerateInstanceExtensionProperties &&
        f->vkEnumerateInstanceExtensionProperties(NULL, &n_avail, NULL) == VK_SUCCESS && n_avail) {
        VkExtensionProperties *props = calloc(n_avail, sizeof *props);
        if (props && f->vkEnumerateInstanceExtensionProperties(NULL, &n_avail, props) == VK_SUCCESS)
            for (uint32_t i = 0; i < n_avail; i++)
                if (strcmp(props[i].extensionName, "VK_KHR_portability_enumeration") == 0) {
                    exts[n_ext++] = "VK_KHR_portability_enumeration";
                    flags |= 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
                }
        free(props);
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "patternkv",
                             .pEngineName = "patternkv",
                             .engineVersion = PKV_VERSION_NUMBER,
                             .apiVersion = api >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : api};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .flags = flags,
                               .pApplicationInfo = &app,
                               .enabledExtensionCount = n_ext,
                               .ppEnabledExtensionNames = exts};
    VkResult r = f->vkCreateInstance(&ci, NULL, inst);
    if (r != VK_SUCCESS) {
        snprintf(why, why_len, "vkCreateInstance failed (VkResult %d): no usable Vulkan driver", (int)r);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    return PKV_OK;
}

static int has_device_ext(pkv_vk_funcs *f, VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (f->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n) return 0;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    int found = 0;
    if (p && f->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static pkv_device_type map_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return PKV_DEVICE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return PKV_DEVICE_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return PKV_DEVICE_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return PKV_DEVICE_CPU;
    default: return PKV_DEVICE_OTHER;
    }
}

/* Fills info and the properties we keep; features are reported, never required. */
static void describe(pkv_vk_funcs *f, VkPhysicalDevice pd, uint32_t index, pkv_device_info *info, pkv_vk *vk)
{
    VkPhysicalDeviceProperties props;
    f->vkGetPhysicalDeviceProperties(pd, &props);
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceIDProperties ids = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &sub};
    const int v12 = props.apiVersion >= VK_API_VERSION_1_2;
    if (v12 || has_device_ext(f, pd, "VK_KHR_driver_properties")) sub.pNext = &drv;
    /* multiprocessor counts, where the vendor's extension reports them (attention sizes its split) */
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
    if (has_device_ext(f, pd, "VK_NV_shader_sm_builtins")) sm.pNext = ids.pNext, ids.pNext = &sm;
    if (has_device_ext(f, pd, "VK_AMD_shader_core_properties")) amd.pNext = ids.pNext, ids.pNext = &amd;
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &ids};
    f->vkGetPhysicalDeviceProperties2(pd, &p2);
    uint32_t units = sm.shaderSMCount;
    if (!units) units = amd.shaderEngineCount * amd.shaderArraysPerEngineCount * amd.computeUnitsPerShaderArray;

    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderIntegerDotProductFeatures idot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    void *chain = &s16;
    if (v12 || has_device_ext(f, pd, "VK_KHR_shader_float16_int8")) f16.pNext = chain, chain = &f16;
    if (v12 || has_device_ext(f, pd, "VK_KHR_8bit_storage")) s8.pNext = chain, chain = &s8;
    if (props.apiVersion >= VK_API_VERSION_1_3 || has_device_ext(f, pd, "VK_KHR_shader_integer_dot_product"))
        idot.pNext = chain, chain = &idot;
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = chain};
    f->vkGetPhysicalDeviceFeatures2(pd, &feats);

    VkPhysicalDeviceMemoryProperties mem;
    f->vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    uint64_t local = 0;
    for (uint32_t h = 0; h < mem.memoryHeapCount; h++)
        if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) local += mem.memoryHeaps[h].size;

    const uint32_t need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    const int sub_ok = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sub.supportedOperations & need) == need;
    uint32_t features = 0;
    if (f16.shaderFloat16) features |= PKV_FEATURE_FP16_MATH;
    if (s8.storageBuffer8BitAccess) features |= PKV_FEATURE_STORAGE_8BIT;
    if (s16.storageBuffer16BitAccess) features |= PKV_FEATURE_STORAGE_16BIT;
    if (idot.shaderIntegerDotProduct) features |= PKV_FEATURE_INT_DOT;
    if (has_device_ext(f, pd, "VK_KHR_cooperative_matrix") || has_device_ext(f, pd, "VK_NV_cooperative_matrix"))
        features |= PKV_FEATURE_COOPERATIVE_MATRIX;
    if (sub_ok) features |= PKV_FEATURE_SUBGROUPS;

    memset(info, 0, sizeof *info);
    info->backend = PKV_BACKEND_VULKAN;
    info->index = index;
    info->type = map_type(props.deviceType);
    snprintf(info->name, sizeof info->name, "%.127s", props.deviceName);
    if (drv.driverName[0])
        snprintf(info->driver, sizeof info->driver, "%.60s %.60s", drv.driverName, drv.driverInfo);
    else
        snprintf(info->driver, sizeof info->driver, "driver 0x%x, Vulkan %u.%u", props.driverVersion,
                 VK_API_VERSION_MAJOR(props.apiVersion), VK_API_VERSION_MINOR(props.apiVersion));
    info->subgroup_size = sub.subgroupSize;
    info->features = features;
    info->memory_bytes = local;
    if (vk) {
        vk->props = props;
        vk->mem_props = mem;
        memcpy(vk->device_uuid, ids.deviceUUID, VK_UUID_SIZE);
        vk->subgroup_size = sub.subgroupSize;
        /* PKV_VULKAN_NO_SUBGROUPS=1 forces the shared-memory reductions (tests run both paths). */
        const char *nosub = getenv("PKV_VULKAN_NO_SUBGROUPS");
        vk->subgroup_arith = (uint32_t)sub_ok && !(nosub && *nosub && *nosub != '0');
        vk->features = features;
        vk->compute_units = units;
    }
}

/* Instance + physical devices (the caller frees `*pds`). */
static pkv_status enumerate(pkv_vk_funcs *f, VkInstance *inst, VkPhysicalDevice **pds, uint32_t *n, char *why,
                            size_t why_len)
{
    pkv_status s = create_instance(f, inst, why, why_len);
    if (s != PKV_OK) return s;
    if (pkv_vk_load_instance(f, *inst, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    *n = 0;
    if (f->vkEnumeratePhysicalDevices(*inst, n, NULL) != VK_SUCCESS || *n == 0) {
        snprintf(why, why_len, "no Vulkan device found");
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    *pds = calloc(*n, sizeof **pds);
    if (!*pds) return PKV_ERR_OUT_OF_HOST_MEMORY;
    VkResult r = f->vkEnumeratePhysicalDevices(*inst, n, *pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        snprintf(why, why_len, "vkEnumeratePhysicalDevices failed (VkResult %d)", (int)r);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    return PKV_OK;
}

pkv_status pkv_vk_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                       size_t why_len)
{
    (void)p;
    *count = 0;
    pkv_vk_funcs f;
    if (pkv_vk_load_global(&f, NULL, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    VkInstance inst = VK_NULL_HANDLE;
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    pkv_status s = enumerate(&f, &inst, &pds, &n, why, why_len);
    if (s == PKV_OK) {
        for (uint32_t i = 0; i < n && i < cap; i++) describe(&f, pds[i], i, &out[i], NULL);
        *count = n;
    }
    free(pds);
    if (inst && f.vkDestroyInstance) f.vkDestroyInstance(inst, NULL);
    pkv_vk_unload(&f);
    return s;
}

static int compute_family(pkv_vk_funcs *f, VkPhysicalDevice pd)
{
    uint32_t n = 0;
    f->vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties q[16];
    if (n > 16) n = 16;
    f->vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        /* prefer a family with timestamps; first one otherwise */
        if (best < 0 || (q[i].timestampValidBits && !q[best].timestampValidBits)) best = (int)i;
    }
    return best;
}

/* 0.1.0's pkv_vulkan_external ended with queue_mutex_user; api_version came after. */
static const pkv_abi_struct vulkan_external_abi = {
    "pkv_vulkan_external", "ext.struct_size = sizeof ext", 2,
    {offsetof(pkv_vulkan_external, api_version), sizeof(pkv_vulkan_external)}};

static pkv_status adopt_external(pkv_vk *vk, const pkv_vulkan_external *app, pkv_device_info *info, char *why,
                                 size_t why_len)
{
    static const pkv_vulkan_external none; /* fields a smaller (older) struct lacks stay 0 */
    pkv_vulkan_external all, *ext = &all;
    if (pkv_abi_copy_in(&vulkan_external_abi, app, &none, &all, why, why_len)) return PKV_ERR_INVALID_ARGUMENT;
    if (!ext->instance || !ext->physical_device || !ext->device || !ext->queue) {
        snprintf(why, why_len, "pkv_vulkan_external: instance, physical_device, device and queue are required");
        return PKV_ERR_INVALID_ARGUMENT;
    }
    const int checked = pkv_abi_size_of(app) >= sizeof(pkv_vulkan_external);
    if (checked && ext->api_version < VK_API_VERSION_1_1) {
        snprintf(why, why_len,
                 "pkv_vulkan_external.api_version is %u.%u: the instance must be created with apiVersion >= "
                 "VK_API_VERSION_1_1 (set api_version to the VkApplicationInfo.apiVersion used)",
                 VK_API_VERSION_MAJOR(ext->api_version), VK_API_VERSION_MINOR(ext->api_version));
        return PKV_ERR_INVALID_ARGUMENT;
    }
    if (pkv_vk_load_global(&vk->f, ext->get_instance_proc_addr, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    if (pkv_vk_load_instance(&vk->f, ext->instance, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    vk->instance = ext->instance;
    vk->phys = ext->physical_device;
    vk->device = ext->device;
    vk->queue = ext->queue;
    vk->queue_family = ext->queue_family_index;
    vk->ext_lock = ext->queue_mutex_lock;
    vk->ext_unlock = ext->queue_mutex_unlock;
    vk->ext_lock_user = ext->queue_mutex_user;
    uint32_t n = 0;
    vk->f.vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, NULL);
    VkQueueFamilyProperties q[16];
    if (n > 16) n = 16;
    vk->f.vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, q);
    if (ext->queue_family_index >= n || !(q[ext->queue_family_index].queueFlags & VK_QUEUE_COMPUTE_BIT)) {
        snprintf(why, why_len, "pkv_vulkan_external: queue family %u does not support compute", ext->queue_family_index);
        return PKV_ERR_INVALID_ARGUMENT;
    }
    describe(&vk->f, vk->phys, 0, info, vk);
    if (vk->props.apiVersion < VK_API_VERSION_1_1) {
        snprintf(why, why_len, "pkv_vulkan_external: the physical device supports Vulkan %u.%u; 1.1 is needed",
                 VK_API_VERSION_MAJOR(vk->props.apiVersion), VK_API_VERSION_MINOR(vk->props.apiVersion));
        return PKV_ERR_INVALID_ARGUMENT;
    }
    if (pkv_vk_load_device(&vk->f, vk->device, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    return PKV_OK;
}

pkv_status pkv_vk_open(pkv_vk *vk, const pkv_context_params *p, pkv_device_info *info, char *why, size_t why_len)
{
    if (p && p->vulkan_external) return adopt_external(vk, p->vulkan_external, info, why, why_len);

    if (pkv_vk_load_global(&vk->f, NULL, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    pkv_status s = enumerate(&vk->f, &vk->instance, &pds, &n, why, why_len);
    if (vk->instance) vk->owns_instance = 1;
    if (s != PKV_OK) {
        free(pds);
        return s;
    }
    pkv_device_info *devs = calloc(n, sizeof *devs);
    if (!devs) {
        free(pds);
        return PKV_ERR_OUT_OF_HOST_MEMORY;
    }
    for (uint32_t i = 0; i < n; i++) describe(&vk->f, pds[i], i, &devs[i], NULL);
    int pick = pkv_select_device(p, devs, n, why, why_len);
    if (pick >= 0) {
        vk->phys = pds[pick];
        describe(&vk->f, vk->phys, (uint32_t)pick, info, vk);
    }
    free(devs);
    free(pds);
    if (pick < 0) return PKV_ERR_BACKEND_UNAVAILABLE;

    int fam = compute_family(&vk->f, vk->phys);
    if (fam < 0) {
        snprintf(why, why_len, "%s has no compute queue", info->name);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    vk->queue_family = (uint32_t)fam;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    /* PKV_VULKAN_PIPELINE_STATS=1: the driver's statistics of every pipeline (registers, ...) go to the
     * log, where it offers them (a tuning aid) */
    const char *stats = getenv("PKV_VULKAN_PIPELINE_STATS");
    const char *stats_ext = "VK_KHR_pipeline_executable_properties";
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pef = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR, .pipelineExecutableInfo = VK_TRUE};
    const char *exts[2];
    uint32_t n_ext = 0;
    if (stats && *stats && *stats != '0' && has_device_ext(&vk->f, vk->phys, stats_ext)) {
        exts[n_ext++] = stats_ext;
        pef.pNext = (void *)dci.pNext, dci.pNext = &pef;
        vk->pipeline_stats = 1;
    }
    /* Cooperative matrices (attention's tensor-core step, attn_step_cm.glsl): the NV extension (glslang
     * of the distributions we build on compiles GL_NV_cooperative_matrix, not yet the KHR one) with
     * fp16 arithmetic. */
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    const char *cm_ext = "VK_NV_cooperative_matrix";
    if (vk->props.apiVersion >= VK_API_VERSION_1_2 && has_device_ext(&vk->f, vk->phys, cm_ext)) {
        f16.pNext = &cm;
        VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16};
        vk->f.vkGetPhysicalDeviceFeatures2(vk->phys, &feats);
        if (cm.cooperativeMatrix && f16.shaderFloat16) {
            cm.cooperativeMatrixRobustBufferAccess = VK_FALSE;
            f16.shaderInt8 = VK_FALSE;
            cm.pNext = (void *)dci.pNext, dci.pNext = &f16;
            exts[n_ext++] = cm_ext;
            vk->coopmat = 1;
        }
    }
    dci.enabledExtensionCount = n_ext;
    dci.ppEnabledExtensionNames = n_ext ? exts : NULL;
    VkResult r = vk->f.vkCreateDevice(vk->phys, &dci, NULL, &vk->device);
    if (r != VK_SUCCESS) {
        snprintf(why, why_len, "vkCreateDevice on %s failed (VkResult %d)", info->name, (int)r);
        return PKV_ERR_BACKEND_UNAVAILABLE;
    }
    vk->owns_device = 1;
    if (pkv_vk_load_device(&vk->f, vk->device, why, why_len) != 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    vk->f.vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);
    return PKV_OK;
}

void pkv_vk_close(pkv_vk *vk)
{
    if (vk->owns_device && vk->device) vk->f.vkDestroyDevice(vk->device, NULL);
    if (vk->owns_instance && vk->instance) vk->f.vkDestroyInstance(vk->instance, NULL);
    vk->device = VK_NULL_HANDLE;
    vk->instance = VK_NULL_HANDLE;
    pkv_vk_unload(&vk->f);
}
