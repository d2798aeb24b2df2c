#include "vk_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pkv_vk_load_global(pkv_vk_funcs *f, PFN_vkGetInstanceProcAddr gipa, char *why, size_t why_len)
{
    memset(f, 0, sizeof *f);
    if (!gipa) {
        const char *env = getenv("PKV_VULKAN_LIBRARY"); /* tests point this at a missing file */
        const char *names[] = {env, "libvulkan.so.1", "libvulkan.so"};
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !f->lib; i++) {
            if (!names[i] || !names[i][0]) continue;
            f->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            if (env && env[0]) break; /* an explicit library is the only one tried */
        }
        if (!f->lib) {
            snprintf(why, why_len, "libvulkan.so.1 not found (%s)", env && env[0] ? env : "no Vulkan loader installed");
            return -1;
        }
        /* POSIX allows converting a dlsym result to a function pointer. */
        void *sym = dlsym(f->lib, "vkGetInstanceProcAddr");
        memcpy(&gipa, &sym, sizeof gipa);
        if (!gipa) {
            snprintf(why, why_len, "libvulkan.so.1 has no vkGetInstanceProcAddr");
            dlclose(f->lib);
            f->lib = NULL;
            return -1;
        }
    }
    f->vkGetInstanceProcAddr = gipa;
#define LOAD_GLOBAL(name) f->name = (PFN_##name)gipa(VK_NULL_HANDLE, #name);
    PKV_VK_GLOBAL_FUNCS(LOAD_GLOBAL)
#undef LOAD_GLOBAL
    if (!f->vkCreateInstance) {
        snprintf(why, why_len, "the Vulkan loader does not provide vkCreateInstance");
        pkv_vk_unload(f);
        return -1;
    }
    return 0;
}

int pkv_vk_load_instance(pkv_vk_funcs *f, VkInstance inst, char *why, size_t why_len)
{
#define LOAD_INSTANCE(name)                                                                     \
    f->name = (PFN_##name)f->vkGetInstanceProcAddr(inst, #name);                                \
    if (!f->name) {                                                                             \
        snprintf(why, why_len, "Vulkan instance function %s missing (Vulkan 1.1 needed)", #name); \
        return -1;                                                                              \
    }
    PKV_VK_INSTANCE_FUNCS(LOAD_INSTANCE)
#undef LOAD_INSTANCE
    return 0;
}

int pkv_vk_load_device(pkv_vk_funcs *f, VkDevice dev, char *why, size_t why_len)
{
#define LOAD_DEVICE(name)                                                          \
    f->name = (PFN_##name)f->vkGetDeviceProcAddr(dev, #name);                      \
    if (!f->name) {                                                                \
        snprintf(why, why_len, "Vulkan device function %s missing", #name);         \
        return -1;                                                                 \
    }
    PKV_VK_DEVICE_FUNCS(LOAD_DEVICE)
#undef LOAD_DEVICE
    f->vkGetPipelineExecutablePropertiesKHR =
        (PFN_vkGetPipelineExecutablePropertiesKHR)f->vkGetDeviceProcAddr(dev, "vkGetPipelineExecutablePropertiesKHR");
    f->vkGetPipelineExecutableStatisticsKHR =
        (PFN_vkGetPipelineExecutableStatisticsKHR)f->vkGetDeviceProcAddr(dev, "vkGetPipelineExecutableStatisticsKHR");
    return 0;
}

void pkv_vk_unload(pkv_vk_funcs *f)
{
    if (f->lib) dlclose(f->lib);
    memset(f, 0, sizeof *f);
}
