/* Our own small Vulkan loader: dlopen(libvulkan.so.1), then vkGetInstanceProcAddr for the global,
 * instance and device functions we use (the way volk does it, without volk). Nothing links
 * libvulkan, so a machine without it still runs the rest of the library. */
#ifndef PKV_VK_LOADER_H
#define PKV_VK_LOADER_H

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan_core.h>

#include <stddef.h>

#define PKV_VK_GLOBAL_FUNCS(X) \
    X(vkCreateInstance) \
    X(vkEnumerateInstanceVersion) \
    X(vkEnumerateInstanceExtensionProperties)

#define PKV_VK_INSTANCE_FUNCS(X) \
    X(vkDestroyInstance) \
    X(vkEnumeratePhysicalDevices) \
    X(vkGetPhysicalDeviceProperties) \
    X(vkGetPhysicalDeviceProperties2) \
    X(vkGetPhysicalDeviceFeatures2) \
    X(vkGetPhysicalDeviceMemoryProperties) \
    X(vkGetPhysicalDeviceQueueFamilyProperties) \
    X(vkEnumerateDeviceExtensionProperties) \
    X(vkCreateDevice) \
    X(vkGetDeviceProcAddr)

#define PKV_VK_DEVICE_FUNCS(X) \
    X(vkDestroyDevice) \
    X(vkGetDeviceQueue) \
    X(vkDeviceWaitIdle) \
    X(vkAllocateMemory) \
    X(vkFreeMemory) \
    X(vkMapMemory) \
    X(vkUnmapMemory) \
    X(vkCreateBuffer) \
    X(vkDestroyBuffer) \
    X(vkGetBufferMemoryRequirements) \
    X(vkBindBufferMemory) \
    X(vkCreateCommandPool) \
    X(vkDestroyCommandPool) \
    X(vkAllocateCommandBuffers) \
    X(vkFreeCommandBuffers) \
    X(vkBeginCommandBuffer) \
    X(vkEndCommandBuffer) \
    X(vkResetCommandBuffer) \
    X(vkQueueSubmit) \
    X(vkCreateFence) \
    X(vkDestroyFence) \
    X(vkWaitForFences) \
    X(vkResetFences) \
    X(vkCmdCopyBuffer) \
    X(vkCmdFillBuffer) \
    X(vkCmdUpdateBuffer) \
    X(vkCmdPipelineBarrier) \
    X(vkCmdBindPipeline) \
    X(vkCmdBindDescriptorSets) \
    X(vkCmdPushConstants) \
    X(vkCmdDispatch) \
    X(vkCmdResetQueryPool) \
    X(vkCmdWriteTimestamp) \
    X(vkCreateQueryPool) \
    X(vkDestroyQueryPool) \
    X(vkGetQueryPoolResults) \
    X(vkCreateShaderModule) \
    X(vkDestroyShaderModule) \
    X(vkCreatePipelineCache) \
    X(vkDestroyPipelineCache) \
    X(vkGetPipelineCacheData) \
    X(vkCreateComputePipelines) \
    X(vkDestroyPipeline) \
    X(vkCreatePipelineLayout) \
    X(vkDestroyPipelineLayout) \
    X(vkCreateDescriptorSetLayout) \
    X(vkDestroyDescriptorSetLayout) \
    X(vkCreateDescriptorPool) \
    X(vkDestroyDescriptorPool) \
    X(vkResetDescriptorPool) \
    X(vkAllocateDescriptorSets) \
    X(vkUpdateDescriptorSets)

#define PKV_VK_DECLARE(name) PFN_##name name;
typedef struct pkv_vk_funcs {
    void *lib;                                  /* dlopen handle; NULL when the app gave gipa */
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PKV_VK_GLOBAL_FUNCS(PKV_VK_DECLARE)
    PKV_VK_INSTANCE_FUNCS(PKV_VK_DECLARE)
    PKV_VK_DEVICE_FUNCS(PKV_VK_DECLARE)
    /* optional (NULL where the extension is not enabled): pipeline statistics for tuning */
    PFN_vkGetPipelineExecutablePropertiesKHR vkGetPipelineExecutablePropertiesKHR;
    PFN_vkGetPipelineExecutableStatisticsKHR vkGetPipelineExecutableStatisticsKHR;
} pkv_vk_funcs;
#undef PKV_VK_DECLARE

/* Opens libvulkan (or uses `gipa` when not NULL) and loads the global functions.
 * Returns 0, or -1 with a sentence in `why`. */
int pkv_vk_load_global(pkv_vk_funcs *f, PFN_vkGetInstanceProcAddr gipa, char *why, size_t why_len);
/* Loads the instance-level functions; -1 with `why` when one is missing. */
int pkv_vk_load_instance(pkv_vk_funcs *f, VkInstance inst, char *why, size_t why_len);
/* Loads the device-level functions through vkGetDeviceProcAddr. */
int pkv_vk_load_device(pkv_vk_funcs *f, VkDevice dev, char *why, size_t why_len);
void pkv_vk_unload(pkv_vk_funcs *f);

#endif
