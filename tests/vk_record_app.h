/* The application side of the recorded-call tests (test_vulkan_record*.c): its own Vulkan instance,
 * device, queue, command pool and one host-visible buffer with every input and output, as an engine
 * holds them, and a PatternKV context on that device. Static helpers: included by each test file. */
#ifndef PKV_TEST_VK_RECORD_APP_H
#define PKV_TEST_VK_RECORD_APP_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "patternkv_vulkan.h"
#include "testutil.h"
#include "vk_loader.h"

enum { L = 4, H = 2, D = 64, QH = 4, PROMPT = 70, STEPS = 40 };
#define TOK_FLOATS ((size_t)H * D)          /* one token of one layer, K or V */
#define Q_FLOATS ((size_t)QH * D)

typedef struct app {
    pkv_vk_funcs f;
    VkInstance inst;
    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    uint32_t fam;
    VkCommandPool pool;
    VkFence fence;
    VkBuffer buf;
    VkDeviceMemory mem;
    float *map;
    pkv_context *ctx;
} app;

/* Byte offsets in the one host-visible buffer: per layer the prompt K and V, the step K, V, q, out. */
#define OFF_PK(l) ((VkDeviceSize)(l) * 2 * PROMPT * TOK_FLOATS * 4)
#define OFF_PV(l) (OFF_PK(l) + PROMPT * TOK_FLOATS * 4)
#define STEP0 OFF_PK(L)
#define OFF_SK(l) (STEP0 + (VkDeviceSize)(l) * (2 * TOK_FLOATS + 2 * Q_FLOATS) * 4)
#define OFF_SV(l) (OFF_SK(l) + TOK_FLOATS * 4)
#define OFF_Q(l) (OFF_SV(l) + TOK_FLOATS * 4)
#define OFF_OUT(l) (OFF_Q(l) + Q_FLOATS * 4)
#define BUF_BYTES OFF_SK(L)

static inline float *at(app *a, VkDeviceSize off) { return a->map + off / 4; }

static inline int app_open(app *a)
{
    memset(a, 0, sizeof *a);
    pkv_context_params probe_p = pkv_context_params_default();
    probe_p.backend = PKV_BACKEND_VULKAN;
    pkv_context *probe = tu_context_or_skip(&probe_p);
    if (!probe) return 0;
    TU_OK(pkv_context_free(probe));
    char why[256];
    assert_int_equal(pkv_vk_load_global(&a->f, NULL, why, sizeof why), 0);
    VkApplicationInfo ai = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &ai};
    assert_int_equal(a->f.vkCreateInstance(&ici, NULL, &a->inst), VK_SUCCESS);
    assert_int_equal(pkv_vk_load_instance(&a->f, a->inst, why, sizeof why), 0);
    uint32_t n = 1;
    VkResult r = a->f.vkEnumeratePhysicalDevices(a->inst, &n, &a->pd);
    assert_true(r == VK_SUCCESS || r == VK_INCOMPLETE);
    VkQueueFamilyProperties qf[16];
    uint32_t nf = 16;
    a->f.vkGetPhysicalDeviceQueueFamilyProperties(a->pd, &nf, qf);
    while (a->fam < nf && !(qf[a->fam].queueFlags & VK_QUEUE_COMPUTE_BIT)) a->fam++;
    assert_true(a->fam < nf);
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = a->fam,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    assert_int_equal(a->f.vkCreateDevice(a->pd, &dci, NULL, &a->dev), VK_SUCCESS);
    assert_int_equal(pkv_vk_load_device(&a->f, a->dev, why, sizeof why), 0);
    a->f.vkGetDeviceQueue(a->dev, a->fam, 0, &a->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = a->fam};
    assert_int_equal(a->f.vkCreateCommandPool(a->dev, &pci, NULL, &a->pool), VK_SUCCESS);
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    assert_int_equal(a->f.vkCreateFence(a->dev, &fci, NULL, &a->fence), VK_SUCCESS);
    /* one host-visible buffer holds every input and output */
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = BUF_BYTES,
                              .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT};
    assert_int_equal(a->f.vkCreateBuffer(a->dev, &bci, NULL, &a->buf), VK_SUCCESS);
    VkMemoryRequirements req;
    a->f.vkGetBufferMemoryRequirements(a->dev, a->buf, &req);
    VkPhysicalDeviceMemoryProperties mp;
    a->f.vkGetPhysicalDeviceMemoryProperties(a->pd, &mp);
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < mp.memoryTypeCount && !((req.memoryTypeBits >> type & 1) && (mp.memoryTypes[type].propertyFlags & want) == want)) type++;
    assert_true(type < mp.memoryTypeCount);
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = type};
    assert_int_equal(a->f.vkAllocateMemory(a->dev, &mai, NULL, &a->mem), VK_SUCCESS);
    assert_int_equal(a->f.vkBindBufferMemory(a->dev, a->buf, a->mem, 0), VK_SUCCESS);
    void *m;
    assert_int_equal(a->f.vkMapMemory(a->dev, a->mem, 0, VK_WHOLE_SIZE, 0, &m), VK_SUCCESS);
    a->map = m;
    pkv_vulkan_external ext = {.struct_size = sizeof ext, .instance = a->inst, .physical_device = a->pd, .device = a->dev,
                               .queue = a->queue, .queue_family_index = a->fam, .get_instance_proc_addr = a->f.vkGetInstanceProcAddr,
                               .api_version = VK_API_VERSION_1_1};
    pkv_context_params p = pkv_context_params_default();
    p.vulkan_external = &ext;
    p.device_page_bytes = 4u << 20; /* an engine's small cache: small pages and ring */
    p.staging_bytes = 256u << 10;
    TU_OK(pkv_context_create(&p, &a->ctx));
    return 1;
}

static inline void app_close(app *a)
{
    TU_OK(pkv_context_free(a->ctx));
    a->f.vkDestroyBuffer(a->dev, a->buf, NULL);
    a->f.vkFreeMemory(a->dev, a->mem, NULL);
    a->f.vkDestroyFence(a->dev, a->fence, NULL);
    a->f.vkDestroyCommandPool(a->dev, a->pool, NULL);
    a->f.vkDestroyDevice(a->dev, NULL);
    a->f.vkDestroyInstance(a->inst, NULL);
}

static inline VkCommandBuffer cmd_begin(app *a)
{
    VkCommandBuffer cb;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = a->pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    assert_int_equal(a->f.vkAllocateCommandBuffers(a->dev, &cai, &cb), VK_SUCCESS);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    assert_int_equal(a->f.vkBeginCommandBuffer(cb, &bi), VK_SUCCESS);
    return cb;
}

/* Ends, submits once, waits; the outputs then go to the host (TRANSFER_WRITE -> HOST_READ). */
static inline void cmd_submit(app *a, VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    a->f.vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    assert_int_equal(a->f.vkEndCommandBuffer(cb), VK_SUCCESS);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    assert_int_equal(a->f.vkQueueSubmit(a->queue, 1, &si, a->fence), VK_SUCCESS);
    assert_int_equal(a->f.vkWaitForFences(a->dev, 1, &a->fence, VK_TRUE, UINT64_MAX), VK_SUCCESS);
    a->f.vkResetFences(a->dev, 1, &a->fence);
    a->f.vkFreeCommandBuffers(a->dev, a->pool, 1, &cb);
}

/* Recorded attention against the synchronous calls' output (n floats, rows of D): they run
 * differently compiled kernels (the recorded ones convert q themselves), and attention is judged
 * against the fp64 reference within tu_attention_bound (docs/NUMERICS.md), not bit for bit, so each
 * row is compared within twice that bound: ||got - want|| <= 2 bound ||want||. Lavapipe happens to
 * give the same bits; NVIDIA does not. */
static inline void expect_same_attention(app *a, const float *got, const float *want, size_t n)
{
    const double bound = 2.0 * tu_attention_bound(a->ctx);
    for (size_t r = 0; r < n / D; r++) {
        double err = 0.0, ref = 0.0;
        for (size_t i = r * D; i < (r + 1) * D; i++) {
            const double e = (double)got[i] - (double)want[i];
            err += e * e, ref += (double)want[i] * want[i];
        }
        if (!(isfinite(err) && sqrt(err) <= bound * sqrt(ref))) {
            fprintf(stderr, "attention row %zu: relative difference %.3g (bound %.3g)\n", r, sqrt(err / ref), bound);
            fail();
        }
    }
}

static inline pkv_cache *new_cache(app *a, pkv_seq *s)
{
    pkv_cache_config cfg = tu_config(L, H, D, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    TU_OK(pkv_cache_create(a->ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, s));
    return c;
}

static inline void fill_prompt(app *a, uint64_t seed)
{
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_structured_kv(&r, PROMPT, H, D, 4, 0.3f, at(a, OFF_PK(l)));
        tu_structured_kv(&r, PROMPT, H, D, 4, 0.3f, at(a, OFF_PV(l)));
    }
}

static inline void fill_step(app *a, uint64_t seed)
{
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_random(&r, TOK_FLOATS, 1.0f, at(a, OFF_SK(l)));
        tu_random(&r, TOK_FLOATS, 1.0f, at(a, OFF_SV(l)));
        tu_random(&r, Q_FLOATS, 1.0f, at(a, OFF_Q(l)));
    }
}

static inline pkv_attention_params attn(pkv_seq *s, uint32_t l)
{
    pkv_attention_params p = pkv_attention_params_default();
    p.seqs = s, p.n_seqs = 1, p.layer = l, p.n_q_heads = QH;
    return p;
}

/* The decode step of every layer recorded into one command buffer. */
static inline void record_step(app *a, pkv_cache *c, pkv_seq s, VkCommandBuffer cb)
{
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_cmd_append(c, cb, s, l, 1, a->buf, OFF_SK(l), TOK_FLOATS * 4, a->buf, OFF_SV(l), TOK_FLOATS * 4, PKV_F32));
        pkv_attention_params p = attn(&s, l);
        TU_OK(pkv_vulkan_cmd_attention(c, cb, &p, a->buf, OFF_Q(l), Q_FLOATS * 4, a->buf, OFF_OUT(l), Q_FLOATS * 4));
    }
}

#endif
