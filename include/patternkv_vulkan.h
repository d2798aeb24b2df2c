/* Engine integration for the Vulkan backend: run PatternKV on the application's own VkInstance,
 * VkPhysicalDevice, VkDevice and compute-capable queue (game engines own their device).
 *
 *   pkv_vulkan_external ext = {.struct_size = sizeof ext, .instance = inst, .physical_device = phys,
 *                              .device = dev, .queue = queue, .queue_family_index = family};
 *   pkv_context_params p = pkv_context_params_default();
 *   p.vulkan_external = &ext;   (the backend is then Vulkan)
 *
 * Synchronization contract:
 * - The handles stay owned by the application and must outlive the PatternKV context; the library
 *   never destroys them. Free the PatternKV context (and its caches) before destroying the device.
 * - Every PatternKV call submits its own command buffers to `queue` and waits on its own fence
 *   before it returns: when a call returns, all its device work is complete and nothing of it is
 *   pending on the queue. PatternKV never waits on the application's work (no vkQueueWaitIdle, no
 *   vkDeviceWaitIdle during calls).
 * - vkQueueSubmit on one queue must be externally synchronized (Vulkan rule): the application must
 *   not submit to `queue` from another thread while a PatternKV call runs. Use `queue_mutex_lock` /
 *   `queue_mutex_unlock` (optional) to have the library take the engine's queue lock around its submits.
 * - The library's cache lives in its own allocations on `device`; the application never needs a
 *   barrier on them.
 * - pkv_vulkan_append / pkv_vulkan_attention read K, V, q from and write out to the application's
 *   VkBuffers (created on `device` with TRANSFER_SRC / TRANSFER_DST usage, holding the whole range).
 *   Writes the application submitted to `queue` before the call are waited for by the library (its
 *   command buffer starts with a barrier from all earlier writes to its transfer reads); writes made
 *   on another queue must be finished (fence or semaphore wait) before the call. When the call
 *   returns, `out` is written and complete, and made available to all later commands on `queue`.
 *   The data stays on the device: the library copies it into its own device memory, converts and
 *   checks it there (NaN, Inf, beyond fp16 range -> PKV_ERR_NONFINITE, nothing stored); only a 4-byte
 *   check flag is read back, so each call waits for its own work once more before it returns.
 * - The device needs no extension or feature; the queue family must support compute. */
#ifndef PATTERNKV_VULKAN_H
#define PATTERNKV_VULKAN_H

#include "patternkv.h"

#include <vulkan/vulkan_core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pkv_vulkan_external {
    uint32_t struct_size;              /* sizeof(pkv_vulkan_external) (stable ABI, patternkv.h) */
    VkInstance instance;               /* required */
    VkPhysicalDevice physical_device;  /* required: the device `device` was created from */
    VkDevice device;                   /* required */
    VkQueue queue;                     /* required: a queue of queue_family_index */
    uint32_t queue_family_index;       /* must support VK_QUEUE_COMPUTE_BIT */
    /* NULL: the library loads libvulkan.so.1 itself. Else the loader the application uses. */
    PFN_vkGetInstanceProcAddr get_instance_proc_addr;
    /* Optional: called around each of the library's vkQueueSubmit calls. */
    void (*queue_mutex_lock)(void *user);
    void (*queue_mutex_unlock)(void *user);
    void *queue_mutex_user;
} pkv_vulkan_external;

/* pkv_append with K and V in application buffers: [n_tokens][n_kv_heads][head_dim] of dtype at
 * the given byte offsets. Needs a cache on a context made from the application's device (above). */
PKV_API pkv_status pkv_vulkan_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens, VkBuffer k,
                                     VkDeviceSize k_offset, VkBuffer v, VkDeviceSize v_offset, pkv_dtype dtype);
/* pkv_attention with q and out in application buffers ([n_seqs][q_len][n_q_heads][head_dim]; q of
 * params->q_dtype, out fp32). */
PKV_API pkv_status pkv_vulkan_attention(pkv_cache *cache, const pkv_attention_params *params, VkBuffer q,
                                        VkDeviceSize q_offset, VkBuffer out, VkDeviceSize out_offset);

#ifdef __cplusplus
}
#endif
#endif /* PATTERNKV_VULKAN_H */
