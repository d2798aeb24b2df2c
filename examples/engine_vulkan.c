/* PatternKV in an engine's own Vulkan timeline (engine mode, include/patternkv_vulkan.h).
 *
 * The program is the engine: it creates its own VkInstance, VkDevice, queue, command pool and
 * buffers, hands them to PatternKV, and then runs decode steps of a 32-layer model. Each step is ONE
 * command buffer and ONE vkQueueSubmit: per layer, the library records the append of the token's K/V
 * and the attention over the compressed cache, and the engine records a stand-in for the rest of the
 * layer (a copy of the layer's attention output into the next layer's query). The host waits once
 * per step, on the engine's own fence.
 *
 * The same steps run through the synchronous calls on a second cache, and the outputs must agree:
 * the program exits non-zero otherwise. CI runs it on lavapipe with small shapes (ctest
 * example_engine_vulkan). Usage: engine_vulkan [steps]. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <patternkv_vulkan.h>

enum { LAYERS = 32, KV_HEADS = 2, HEAD_DIM = 64, Q_HEADS = 8, PROMPT = 64, GROUP = 32 };
#define TOKEN_FLOATS ((size_t)KV_HEADS * HEAD_DIM) /* one token's K (or V) of one layer */
#define Q_FLOATS ((size_t)Q_HEADS * HEAD_DIM)      /* one query (and one output) of one layer */

/* Byte offsets in the engine's one host-visible buffer. Per layer: the prompt's K and V, the step's
 * K and V, then q and out of both runs (recorded, synchronous). */
#define OFF_PROMPT_K(l) ((VkDeviceSize)(l) * 2 * PROMPT * TOKEN_FLOATS * 4)
#define OFF_PROMPT_V(l) (OFF_PROMPT_K(l) + PROMPT * TOKEN_FLOATS * 4)
#define STEP_BASE OFF_PROMPT_K(LAYERS)
#define LAYER_STEP_BYTES ((2 * TOKEN_FLOATS + 4 * Q_FLOATS) * 4)
#define OFF_K(l) (STEP_BASE + (VkDeviceSize)(l) * LAYER_STEP_BYTES)
#define OFF_V(l) (OFF_K(l) + TOKEN_FLOATS * 4)
#define OFF_Q(l, run) (OFF_V(l) + TOKEN_FLOATS * 4 + (VkDeviceSize)(run) * 2 * Q_FLOATS * 4)
#define OFF_OUT(l, run) (OFF_Q(l, run) + Q_FLOATS * 4)
#define BUFFER_BYTES OFF_K(LAYERS)

static const char *skip_or_fail(void)
{
    const char *ci = getenv("CI");
    return ci && (!strcmp(ci, "true") || !strcmp(ci, "1")) ? NULL : "skipped";
}

#define VK_CHECK(x)                                                                                           \
    do {                                                                                                      \
        VkResult r_ = (x);                                                                                    \
        if (r_ != VK_SUCCESS) {                                                                               \
            fprintf(stderr, "engine_vulkan: %s failed (VkResult %d)\n", #x, (int)r_);                        \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)
#define PKV_CHECK(x)                                                                                          \
    do {                                                                                                      \
        pkv_status s_ = (x);                                                                                  \
        if (s_ != PKV_OK) {                                                                                   \
            fprintf(stderr, "engine_vulkan: %s: %s (%s)\n", #x, pkv_status_string(s_), pkv_last_error());  \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)

static double now_ms(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Deterministic stand-in for the model's projections. */
static float value(uint64_t i)
{
    i = (i + 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    i ^= i >> 31;
    return (float)((double)(i >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void fill(float *dst, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) dst[i] = value(seed * 1000003ull + i);
}

/* A barrier between transfers: the source's writes before the destination's reads. */
static void transfer_barrier(VkCommandBuffer cb, VkAccessFlags dst_access, VkPipelineStageFlags dst_stage)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

int main(int argc, char **argv)
{
    const int steps = argc > 1 ? atoi(argv[1]) : 40;
    /* ---- the engine's device ---- */
    VkApplicationInfo ai = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "engine_vulkan",
                            .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &ai};
    VkInstance inst;
    uint32_t n_dev = 1;
    VkPhysicalDevice phys;
    if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS) {
        fprintf(stderr, "engine_vulkan: no Vulkan instance\n");
        return skip_or_fail() ? 77 : 1;
    }
    VkResult er = vkEnumeratePhysicalDevices(inst, &n_dev, &phys);
    if ((er != VK_SUCCESS && er != VK_INCOMPLETE) || n_dev == 0) {
        fprintf(stderr, "engine_vulkan: no Vulkan device\n");
        vkDestroyInstance(inst, NULL);
        return skip_or_fail() ? 77 : 1;
    }
    VkQueueFamilyProperties qf[16];
    uint32_t n_fam = 16, fam = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &n_fam, qf);
    while (fam < n_fam && !(qf[fam].queueFlags & VK_QUEUE_COMPUTE_BIT)) fam++;
    if (fam == n_fam) return fprintf(stderr, "engine_vulkan: no compute queue\n"), 1;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = fam,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    VkDevice dev;
    VK_CHECK(vkCreateDevice(phys, &dci, NULL, &dev));
    VkQueue queue;
    vkGetDeviceQueue(dev, fam, 0, &queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = fam};
    VkCommandPool pool;
    VK_CHECK(vkCreateCommandPool(dev, &pci, NULL, &pool));
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkCommandBuffer cmd;
    VK_CHECK(vkAllocateCommandBuffers(dev, &cai, &cmd));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    VK_CHECK(vkCreateFence(dev, &fci, NULL, &fence));
    /* One host-visible buffer: the engine writes K/V/q from the host (a stand-in for its kernels). */
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = BUFFER_BYTES,
                              .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                       VK_BUFFER_USAGE_STORAGE_BUFFER_BIT};
    VkBuffer buf;
    VK_CHECK(vkCreateBuffer(dev, &bci, NULL, &buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, buf, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(phys, &mp);
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < mp.memoryTypeCount && !((req.memoryTypeBits >> type & 1) && (mp.memoryTypes[type].propertyFlags & want) == want)) type++;
    if (type == mp.memoryTypeCount) return fprintf(stderr, "engine_vulkan: no host-visible memory\n"), 1;
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = type};
    VkDeviceMemory mem;
    VK_CHECK(vkAllocateMemory(dev, &mai, NULL, &mem));
    VK_CHECK(vkBindBufferMemory(dev, buf, mem, 0));
    float *map;
    VK_CHECK(vkMapMemory(dev, mem, 0, VK_WHOLE_SIZE, 0, (void **)&map));
#define AT(off) (map + (off) / 4)

    /* ---- PatternKV on that device ---- */
    pkv_vulkan_external ext = {.struct_size = sizeof ext, .instance = inst, .physical_device = phys, .device = dev,
                               .queue = queue, .queue_family_index = fam, .get_instance_proc_addr = vkGetInstanceProcAddr,
                               .api_version = VK_API_VERSION_1_1 /* as the instance was created */};
    pkv_context_params cp = pkv_context_params_default();
    cp.vulkan_external = &ext;
    cp.device_page_bytes = 4u << 20; /* a small cache: 4 MiB pages, a 1 MiB staging ring */
    cp.staging_bytes = 1u << 20;
    pkv_context *ctx;
    PKV_CHECK(pkv_context_create(&cp, &ctx));
    pkv_cache_config cfg = pkv_cache_config_default();
    cfg.n_layers = LAYERS, cfg.n_kv_heads = KV_HEADS, cfg.head_dim = HEAD_DIM, cfg.group_size = GROUP;
    cfg.n_patterns = 16;
    pkv_cache *rec, *sync; /* run 0: recorded; run 1: synchronous */
    pkv_seq rs, ss;
    PKV_CHECK(pkv_cache_create(ctx, &cfg, &rec));
    PKV_CHECK(pkv_cache_create(ctx, &cfg, &sync));
    PKV_CHECK(pkv_seq_create(rec, &rs));
    PKV_CHECK(pkv_seq_create(sync, &ss));
    double t0 = now_ms();
    PKV_CHECK(pkv_prewarm(rec, Q_HEADS, 1)); /* every pipeline now, none while recording */
    printf("prewarm: %.1f ms\n", now_ms() - t0);
    const VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    const VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};

    /* The prompt: every layer's prefill (mining on the device) in one command buffer. */
    for (uint32_t l = 0; l < LAYERS; l++) {
        fill(AT(OFF_PROMPT_K(l)), PROMPT * TOKEN_FLOATS, 2 * l);
        fill(AT(OFF_PROMPT_V(l)), PROMPT * TOKEN_FLOATS, 2 * l + 1);
    }
    VK_CHECK(vkBeginCommandBuffer(cmd, &begin));
    for (uint32_t l = 0; l < LAYERS; l++) {
        PKV_CHECK(pkv_vulkan_cmd_append(rec, cmd, rs, l, PROMPT, buf, OFF_PROMPT_K(l), PROMPT * TOKEN_FLOATS * 4, buf,
                                        OFF_PROMPT_V(l), PROMPT * TOKEN_FLOATS * 4, PKV_F32));
        PKV_CHECK(pkv_vulkan_append(sync, ss, l, PROMPT, buf, OFF_PROMPT_K(l), PROMPT * TOKEN_FLOATS * 4, buf,
                                    OFF_PROMPT_V(l), PROMPT * TOKEN_FLOATS * 4, PKV_F32));
    }
    VK_CHECK(vkEndCommandBuffer(cmd));
    VK_CHECK(vkQueueSubmit(queue, 1, &submit, fence));
    VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(dev, 1, &fence));

    double rec_host = 0, rec_step = 0, sync_step = 0, worst = 0;
    for (int step = 0; step < steps; step++) {
        for (uint32_t l = 0; l < LAYERS; l++) { /* the engine's "projections" of this token */
            fill(AT(OFF_K(l)), TOKEN_FLOATS, 1000 + 64ull * step + 2 * l);
            fill(AT(OFF_V(l)), TOKEN_FLOATS, 1000 + 64ull * step + 2 * l + 1);
        }
        fill(AT(OFF_Q(0, 0)), Q_FLOATS, 99 + step);
        memcpy(AT(OFF_Q(0, 1)), AT(OFF_Q(0, 0)), Q_FLOATS * 4);

        /* Synchronous reference: each call submits and waits. */
        double t = now_ms();
        for (uint32_t l = 0; l < LAYERS; l++) {
            if (l > 0) memcpy(AT(OFF_Q(l, 1)), AT(OFF_OUT(l - 1, 1)), Q_FLOATS * 4); /* the rest of the layer */
            pkv_attention_params ap = pkv_attention_params_default();
            ap.seqs = &ss, ap.n_seqs = 1, ap.layer = l, ap.n_q_heads = Q_HEADS;
            PKV_CHECK(pkv_vulkan_append(sync, ss, l, 1, buf, OFF_K(l), TOKEN_FLOATS * 4, buf, OFF_V(l), TOKEN_FLOATS * 4, PKV_F32));
            PKV_CHECK(pkv_vulkan_attention(sync, &ap, buf, OFF_Q(l, 1), Q_FLOATS * 4, buf, OFF_OUT(l, 1), Q_FLOATS * 4));
        }
        sync_step += now_ms() - t;

        /* Recorded: the whole step in one command buffer, one submit, one wait. */
        t = now_ms();
        VK_CHECK(vkBeginCommandBuffer(cmd, &begin));
        for (uint32_t l = 0; l < LAYERS; l++) {
            if (l > 0) { /* the rest of layer l - 1: out(l - 1) -> q(l), after the library's write of out */
                transfer_barrier(cmd, VK_ACCESS_TRANSFER_READ_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT);
                VkBufferCopy c = {OFF_OUT(l - 1, 0), OFF_Q(l, 0), Q_FLOATS * 4};
                vkCmdCopyBuffer(cmd, buf, buf, 1, &c);
                transfer_barrier(cmd, VK_ACCESS_TRANSFER_READ_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT); /* before the library reads q */
            }
            pkv_attention_params ap = pkv_attention_params_default();
            ap.seqs = &rs, ap.n_seqs = 1, ap.layer = l, ap.n_q_heads = Q_HEADS;
            PKV_CHECK(pkv_vulkan_cmd_append(rec, cmd, rs, l, 1, buf, OFF_K(l), TOKEN_FLOATS * 4, buf, OFF_V(l), TOKEN_FLOATS * 4, PKV_F32));
            PKV_CHECK(pkv_vulkan_cmd_attention(rec, cmd, &ap, buf, OFF_Q(l, 0), Q_FLOATS * 4, buf, OFF_OUT(l, 0), Q_FLOATS * 4));
        }
        transfer_barrier(cmd, VK_ACCESS_HOST_READ_BIT, VK_PIPELINE_STAGE_HOST_BIT); /* out -> the host */
        VK_CHECK(vkEndCommandBuffer(cmd));
        rec_host += now_ms() - t;
        VK_CHECK(vkQueueSubmit(queue, 1, &submit, fence));
        VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX));
        VK_CHECK(vkResetFences(dev, 1, &fence));
        rec_step += now_ms() - t;

        for (uint32_t l = 0; l < LAYERS; l++)
            for (size_t i = 0; i < Q_FLOATS; i++) {
                const float a = AT(OFF_OUT(l, 0))[i], b = AT(OFF_OUT(l, 1))[i];
                const double dlt = fabs((double)a - (double)b);
                if (!isfinite(a) || !(dlt <= worst)) worst = isfinite(a) ? dlt : INFINITY;
            }
    }
    uint32_t flags, first_layer;
    PKV_CHECK(pkv_vulkan_read_status(rec, &flags, &first_layer, 1));
    uint32_t len;
    PKV_CHECK(pkv_seq_length(rec, rs, LAYERS - 1, &len));
    printf("%d decode steps of %d layers (%d KV heads, %d query heads, head_dim %d), %u tokens each\n", steps, LAYERS,
           KV_HEADS, Q_HEADS, HEAD_DIM, len);
    printf("recorded:    %.3f ms per step (host recording %.1f us per layer), 1 submit per step\n", rec_step / steps,
           rec_host / steps / LAYERS * 1e3);
    printf("synchronous: %.3f ms per step, %d calls per step\n", sync_step / steps, 2 * LAYERS);
    printf("largest difference recorded - synchronous: %g; status word 0x%x\n", worst, flags);
    const int ok = worst <= 1e-6 && flags == 0;

    PKV_CHECK(pkv_cache_free(rec)); /* the command buffer completed: the caches may go */
    PKV_CHECK(pkv_cache_free(sync));
    PKV_CHECK(pkv_context_free(ctx)); /* before the device */
    vkUnmapMemory(dev, mem);
    vkDestroyBuffer(dev, buf, NULL);
    vkFreeMemory(dev, mem, NULL);
    vkDestroyFence(dev, fence, NULL);
    vkDestroyCommandPool(dev, pool, NULL);
    vkDestroyDevice(dev, NULL);
    vkDestroyInstance(inst, NULL);
    if (!ok) fprintf(stderr, "engine_vulkan: the recorded step differs from the synchronous calls\n");
    return ok ? 0 : 1;
}
