/* The Vulkan backend's device side (its parity with the CPU is test_parity, a missing loader
 * test_missing_driver): device listing and choice, the on-disk
 * pipeline cache (cold, warm, corrupt, foreign), running out of device memory, an application-owned
 * VkDevice (engine integration), and the bandwidth / timing probes. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "patternkv_vulkan.h"
#include "testutil.h"
#include "vk_bench.h"
#include "vk_loader.h"

int pkv_vk_uuid_usable(const uint8_t *uuid); /* vk_internal.h */

static pkv_context *tv_context_with(pkv_context_params *p)
{
    p->backend = PKV_BACKEND_VULKAN;
    return tu_context_or_skip(p);
}

static pkv_context *tv_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    return tv_context_with(&p);
}

static void devices_are_listed_and_chosen_by_name(void **state)
{
    (void)state;
    pkv_context *probe = tv_context(); /* fails in CI when there is no Vulkan device */
    TU_OK(pkv_context_free(probe));
    pkv_device_info devs[32] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 32, &n));
    const pkv_device_info *vkdev = NULL;
    for (size_t i = 0; i < n && i < 32; i++)
        if (devs[i].backend == PKV_BACKEND_VULKAN && !vkdev) vkdev = &devs[i];
    assert_non_null(vkdev);
    assert_true(strlen(vkdev->name) > 0);
    assert_true(strlen(vkdev->driver) > 0);
    assert_true(vkdev->subgroup_size > 0);
    assert_true(vkdev->memory_bytes > 0);
    print_message("vulkan device: %s (%s), subgroup %u, features 0x%x\n", vkdev->name, vkdev->driver, vkdev->subgroup_size,
                  vkdev->features);

    pkv_context_params p = pkv_context_params_default();
    p.device_name = vkdev->name;
    pkv_context *ctx = tv_context_with(&p);
    pkv_device_info info = {.struct_size = sizeof info};
    TU_OK(pkv_context_device(ctx, &info, NULL, 0));
    assert_string_equal(info.name, vkdev->name);
    TU_OK(pkv_context_free(ctx));

    p.device_name = "no such device, surely";
    p.backend = PKV_BACKEND_VULKAN;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_BACKEND_UNAVAILABLE);
    assert_non_null(strstr(pkv_last_error(), "no device name contains"));
    p.device_name = NULL;
    p.device_index = 99;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_BACKEND_UNAVAILABLE);
}

enum { WL_T = 80, WL_KV = WL_T * 2 * 32, WL_Q = 4 * 32 };

static void workload_data(float *k, float *v, float *q)
{
    tu_rng rng = {4242};
    tu_structured_kv(&rng, WL_T, 2, 32, 3, 0.2f, k);
    tu_random(&rng, WL_KV, 1.0f, v);
    tu_random(&rng, WL_Q, 1.0f, q);
}

/* Runs a small PATTERN cache (mine, flush, attention) on ctx; returns the attention output. */
static void small_workload(pkv_context *ctx, float *out)
{
    pkv_cache_config cfg = tu_config(1, 2, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    float k[WL_KV], v[WL_KV], q[WL_Q];
    workload_data(k, v, q);
    TU_OK(pkv_append(c, s, 0, 50, k, v, PKV_F32));
    TU_OK(pkv_append(c, s, 0, 30, k + 50 * 64, v + 50 * 64, PKV_F32));
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &ap, q, out));
    TU_OK(pkv_cache_free(c));
}

typedef struct log_capture { int warnings; char last[512]; } log_capture;
static void capture(pkv_log_level level, const char *msg, void *user)
{
    log_capture *lc = user;
    if (level == PKV_LOG_WARN) {
        lc->warnings++;
        snprintf(lc->last, sizeof lc->last, "%s", msg);
    }
}

/* One context on `dir`: returns whether the on-disk cache was used, and the cache file path. */
static int cache_run(const char *dir, float *out, log_capture *lc, char *path, size_t path_len)
{
    pkv_context_params p = pkv_context_params_default();
    p.cache_dir = dir;
    p.log = capture;
    p.log_user = lc;
    pkv_context *ctx = tv_context_with(&p);
    small_workload(ctx, out);
    double ms;
    unsigned count;
    int warm;
    pkv_vulkan_pipeline_stats(ctx->be, &ms, &count, &warm);
    assert_true(count >= 3);
    print_message("pipelines: %u created in %.1f ms (%s)\n", count, ms, warm ? "warm" : "cold");
    snprintf(path, path_len, "%s", pkv_vulkan_pipeline_cache_path(ctx->be));
    TU_OK(pkv_context_free(ctx)); /* writes the cache file */
    return warm;
}

static void corrupt(const char *path, long at, int truncate_to)
{
    size_t n = 0;
    uint8_t *b = tu_slurp(path, &n);
    assert_true(n >= 64 + 32); /* our header, then at least Vulkan's */
    if (at >= 0) b[at] ^= 0x5a;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(b, 1, truncate_to >= 0 ? (size_t)truncate_to : n, f);
    fclose(f);
    free(b);
}

static void pipeline_cache_is_cold_then_warm_and_survives_corruption(void **state)
{
    (void)state;
    char dir[] = "/tmp/pkv_vk_cacheXXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[128], path[1024];
    snprintf(sub, sizeof sub, "%s/nested/dir", dir); /* created on demand */
    float ref[4 * 32], out[4 * 32];
    log_capture lc = {0};
    assert_int_equal(cache_run(sub, ref, &lc, path, sizeof path), 0); /* cold: no file yet */
    assert_int_equal(access(path, R_OK), 0);
    assert_non_null(strstr(path, sub));
    assert_int_equal(cache_run(sub, out, &lc, path, sizeof path), 1); /* warm */
    assert_memory_equal(out, ref, sizeof ref);
    assert_int_equal(lc.warnings, 0);

    struct { long at; int trunc; const char *why; } damage[] = {
        {84, -1, "checksum mismatch"},           /* a flipped byte in the driver's data */
        {-1, 20, "truncated header"},             /* cut inside our header */
        {-1, 90, "truncated data"},               /* cut inside the data */
        {40, -1, "another device"},               /* the device uuid in our header */
        {0, -1, "not a PatternKV pipeline cache"}, /* the magic */
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        corrupt(path, damage[i].at, damage[i].trunc);
        lc.warnings = 0;
        assert_int_equal(cache_run(sub, out, &lc, path, sizeof path), 0); /* ignored: cold */
        assert_int_equal(lc.warnings, 1);
        if (!strstr(lc.last, damage[i].why)) fail_msg("expected a warning about '%s', got '%s'", damage[i].why, lc.last);
        assert_memory_equal(out, ref, sizeof ref); /* results unaffected */
        lc.warnings = 0;
        assert_int_equal(cache_run(sub, out, &lc, path, sizeof path), 1); /* rewritten valid, atomically */
        assert_int_equal(lc.warnings, 0);
    }
    /* no temp files left behind */
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    assert_int_not_equal(access(tmpname, F_OK), 0);
    remove(path);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/nested", dir);
    rmdir(sub);
    rmdir(dir);
}

/* PKV_VULKAN_EAGER_PIPELINES=1 (off by default): creating a cache starts attention's pipelines
 * of every rows-per-workgroup on background threads. An attention right away waits for its own;
 * once all are made, a cache of the same geometry and its attention create nothing more; the
 * results equal those of pipelines created on first use; a context freed while some are still
 * being created waits for them. */
static void eager_attention_pipelines_match_lazy(void **state)
{
    (void)state;
    float lazy[WL_Q], out[WL_Q];
    double ms;
    unsigned lazy_made, made, made_after;
    int warm;
    setenv("PKV_VULKAN_EAGER_PIPELINES", "0", 1);
    pkv_context *ctx = tv_context();
    small_workload(ctx, lazy);
    pkv_vulkan_pipeline_stats(ctx->be, &ms, &lazy_made, &warm);
    assert_int_equal(pkv_vulkan_pipelines_pending(ctx->be), 0);
    TU_OK(pkv_context_free(ctx));

    setenv("PKV_VULKAN_EAGER_PIPELINES", "1", 1);
    ctx = tv_context();
    small_workload(ctx, out); /* attention waits for what the cache's creation started */
    assert_memory_equal(out, lazy, sizeof lazy);
    for (struct timespec ms1 = {0, 1000000}; pkv_vulkan_pipelines_pending(ctx->be);) nanosleep(&ms1, NULL);
    pkv_vulkan_pipeline_stats(ctx->be, &ms, &made, &warm);
    assert_true(made > lazy_made); /* the variants of other GQA groups and query lengths too */
    small_workload(ctx, out);
    pkv_vulkan_pipeline_stats(ctx->be, &ms, &made_after, &warm);
    assert_int_equal(made_after, made);
    assert_memory_equal(out, lazy, sizeof lazy);
    print_message("pipelines: %u on first use, %u with attention's made when the cache is created\n", lazy_made, made);

    pkv_cache_config cfg = tu_config(1, 2, 64, 4, 32, PKV_MODE_PATTERN); /* new pipelines, freed at once */
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
    unsetenv("PKV_VULKAN_EAGER_PIPELINES");
}

static void out_of_device_memory_keeps_what_was_stored(void **state)
{
    (void)state;
    setenv("PKV_VULKAN_MEMORY_LIMIT", "3000000", 1);
    pkv_context *ctx = tv_context();
    unsetenv("PKV_VULKAN_MEMORY_LIMIT");
    pkv_cache_config cfg = tu_config(1, 2, 64, 2, 32, PKV_MODE_PATTERN);
    cfg.memory_budget = 1ull << 30; /* the device runs out first */
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    tu_rng rng = {99};
    const uint32_t step = 256, row = 2 * 64, max_tokens = 64 * 256;
    float *k = malloc(step * row * sizeof(float)), *v = malloc(step * row * sizeof(float));
    float *kb = malloc((size_t)max_tokens * row * sizeof(float)), *vb = malloc((size_t)max_tokens * row * sizeof(float));
    float *ka = malloc((size_t)max_tokens * row * sizeof(float)), *va = malloc((size_t)max_tokens * row * sizeof(float));
    float q[4 * 64], after[4 * 64];
    tu_random(&rng, 4 * 64, 1.0f, q);
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .q_dtype = PKV_F32};
    pkv_status st = PKV_OK;
    uint32_t stored = 0;
    while (st == PKV_OK && stored + step <= max_tokens) {
        tu_structured_kv(&rng, step, 2, 64, 4, 0.3f, k);
        tu_random(&rng, step * row, 1.0f, v);
        st = pkv_append(c, s, 0, step, k, v, PKV_F32);
        if (st == PKV_OK) {
            stored += step;
            TU_OK(pkv_read_kv(c, s, 0, kb, vb)); /* host copy of everything stored so far */
        }
    }
    assert_int_equal(st, PKV_ERR_OUT_OF_DEVICE_MEMORY);
    assert_true(stored >= step);
    print_message("device memory ran out after %u tokens: %s\n", stored, pkv_last_error());
    uint32_t n;
    TU_OK(pkv_seq_length(c, s, 0, &n));
    assert_int_equal(n, stored);
    TU_OK(pkv_read_kv(c, s, 0, ka, va));
    assert_memory_equal(ka, kb, (size_t)stored * row * sizeof(float));
    assert_memory_equal(va, vb, (size_t)stored * row * sizeof(float));
    free(ka), free(va), free(kb), free(vb);
    /* still usable: a fresh short sequence works */
    pkv_seq s2;
    TU_OK(pkv_seq_free(c, s));
    TU_OK(pkv_seq_create(c, &s2));
    TU_OK(pkv_append(c, s2, 0, 40, k, v, PKV_F32));
    ap.seqs = &s2;
    TU_OK(pkv_attention(c, &ap, q, after));
    free(k), free(v);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

static void application_owned_device_is_used_and_left_alive(void **state)
{
    (void)state;
    pkv_context *probe = tv_context();
    TU_OK(pkv_context_free(probe));
    /* The "engine": its own instance, device and queue, through its own loader. */
    pkv_vk_funcs f;
    char why[256];
    assert_int_equal(pkv_vk_load_global(&f, NULL, why, sizeof why), 0);
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst;
    assert_int_equal(f.vkCreateInstance(&ici, NULL, &inst), VK_SUCCESS);
    assert_int_equal(pkv_vk_load_instance(&f, inst, why, sizeof why), 0);
    uint32_t n = 1;
    VkPhysicalDevice pd;
    VkResult r = f.vkEnumeratePhysicalDevices(inst, &n, &pd);
    assert_true(r == VK_SUCCESS || r == VK_INCOMPLETE);
    uint32_t nf = 0;
    f.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nf, NULL);
    VkQueueFamilyProperties qf[16];
    if (nf > 16) nf = 16;
    f.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nf, qf);
    uint32_t fam = 0;
    while (fam < nf && !(qf[fam].queueFlags & VK_QUEUE_COMPUTE_BIT)) fam++;
    assert_true(fam < nf);
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = fam,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    VkDevice dev;
    assert_int_equal(f.vkCreateDevice(pd, &dci, NULL, &dev), VK_SUCCESS);
    assert_int_equal(pkv_vk_load_device(&f, dev, why, sizeof why), 0);
    VkQueue queue;
    f.vkGetDeviceQueue(dev, fam, 0, &queue);

    pkv_vulkan_external ext = {.struct_size = sizeof ext, .instance = inst, .physical_device = pd, .device = dev,
                               .queue = queue, .queue_family_index = fam, .get_instance_proc_addr = f.vkGetInstanceProcAddr,
                               .api_version = VK_API_VERSION_1_1};
    pkv_context_params p = pkv_context_params_default();
    p.vulkan_external = &ext;
    ext.struct_size = 0; /* without its size (stable ABI): refused with a reason */
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "pkv_vulkan_external.struct_size is 0"));
    ext.struct_size = sizeof ext;
    /* an instance made for Vulkan 1.0 (the library needs 1.1): refused at the call, with the reason */
    ext.api_version = VK_API_VERSION_1_0;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "api_version"));
    ext.api_version = 0;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_INVALID_ARGUMENT);
    /* PKV_BACKEND naming another backend does not silently discard the handles */
    ext.api_version = VK_API_VERSION_1_1;
    setenv("PKV_BACKEND", "cpu", 1);
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "PKV_BACKEND=cpu"));
    unsetenv("PKV_BACKEND");
    /* 0.1.0's struct (without api_version) is still accepted */
    ext.struct_size = (uint32_t)offsetof(pkv_vulkan_external, api_version);
    ext.api_version = 0;
    ctx = tv_context_with(&p);
    TU_OK(pkv_context_free(ctx));
    ext.struct_size = sizeof ext;
    ext.api_version = VK_API_VERSION_1_1;
    /* an all-zero device UUID never keys the pipeline cache */
    const uint8_t zero[VK_UUID_SIZE] = {0};
    uint8_t one[VK_UUID_SIZE] = {0};
    one[15] = 1;
    assert_false(pkv_vk_uuid_usable(zero));
    assert_true(pkv_vk_uuid_usable(one));
    ctx = tv_context_with(&p);
    float out[WL_Q], ref[WL_Q];
    small_workload(ctx, out);
    pkv_context *cpu = tu_cpu_context(0);
    small_workload(cpu, ref);
    assert_true(ref_rel_diff(out, ref, 4 * 32) < 1e-4);
    TU_OK(pkv_context_free(cpu));

    /* The same through the application's own VkBuffers (K, V, q in; out back). */
    VkPhysicalDeviceMemoryProperties mp;
    f.vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    const VkDeviceSize off = 256, bytes = off + WL_KV * sizeof(float);
    VkBuffer bufs[4];
    VkDeviceMemory mems[4];
    float *maps[4];
    for (int i = 0; i < 4; i++) {
        VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes,
                                  .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT};
        assert_int_equal(f.vkCreateBuffer(dev, &bci, NULL, &bufs[i]), VK_SUCCESS);
        VkMemoryRequirements req;
        f.vkGetBufferMemoryRequirements(dev, bufs[i], &req);
        uint32_t type = 0;
        const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        while (type < mp.memoryTypeCount && !((req.memoryTypeBits >> type & 1) && (mp.memoryTypes[type].propertyFlags & want) == want)) type++;
        assert_true(type < mp.memoryTypeCount);
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = type};
        assert_int_equal(f.vkAllocateMemory(dev, &mai, NULL, &mems[i]), VK_SUCCESS);
        assert_int_equal(f.vkBindBufferMemory(dev, bufs[i], mems[i], 0), VK_SUCCESS);
        void *m;
        assert_int_equal(f.vkMapMemory(dev, mems[i], 0, VK_WHOLE_SIZE, 0, &m), VK_SUCCESS);
        maps[i] = (float *)((uint8_t *)m + off);
    }
    workload_data(maps[0], maps[1], maps[2]);
    pkv_cache_config cfg = tu_config(1, 2, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_vulkan_append(c, s, 0, 50, bufs[0], off, bytes - off, bufs[1], off, bytes - off, PKV_F32));
    TU_OK(pkv_vulkan_append(c, s, 0, 30, bufs[0], off + 50 * 64 * sizeof(float), 30 * 64 * sizeof(float), bufs[1], off + 50 * 64 * sizeof(float), 30 * 64 * sizeof(float), PKV_F32));
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .q_dtype = PKV_F32};
    TU_OK(pkv_vulkan_attention(c, &ap, bufs[2], off, bytes - off, bufs[3], off, bytes - off));
    assert_true(ref_rel_diff(maps[3], out, WL_Q) < 1e-6);
    assert_int_equal(pkv_vulkan_append(c, s, 0, 1, VK_NULL_HANDLE, 0, 1024, bufs[1], 0, 1024, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    /* ranges smaller than the call needs (one token of 2 heads x 32 fp32 is 256 bytes) */
    assert_int_equal(pkv_vulkan_append(c, s, 0, 1, bufs[0], off, 255, bufs[1], off, 256, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_append(c, s, 0, 1, bufs[0], off, 256, bufs[1], off, VK_WHOLE_SIZE, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_attention(c, &ap, bufs[2], off, 4 * 32 * 4 - 4, bufs[3], off, 4 * 32 * 4), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_attention(c, &ap, bufs[2], off, 4 * 32 * 4, bufs[3], off, 4 * 32 * 4 - 1), PKV_ERR_INVALID_ARGUMENT);
    uint32_t len0;
    TU_OK(pkv_seq_length(c, s, 0, &len0));
    assert_int_equal(len0, 80);

    /* The data never went through host memory, yet the cache holds exactly what the host path stores:
     * the device conversion rounds as the host does. Saved files compare byte for byte. */
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "/tmp/pkv_vkdev_a_%d.pkv", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/pkv_vkdev_b_%d.pkv", (int)getpid());
    pkv_cache *hc;
    pkv_seq hs;
    TU_OK(pkv_cache_create(ctx, &cfg, &hc));
    TU_OK(pkv_seq_create(hc, &hs));
    TU_OK(pkv_append(hc, hs, 0, 50, maps[0], maps[1], PKV_F32));
    TU_OK(pkv_append(hc, hs, 0, 30, maps[0] + 50 * 64, maps[1] + 50 * 64, PKV_F32));
    TU_OK(pkv_cache_save(c, pa));
    TU_OK(pkv_cache_save(hc, pb));
    size_t na, nb;
    uint8_t *fa = tu_slurp(pa, &na), *fb = tu_slurp(pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);
    TU_OK(pkv_cache_free(hc));

    /* fp16 input through the device path, against the host path. */
    uint16_t *h16k = (uint16_t *)maps[0], *h16v = (uint16_t *)maps[1];
    uint16_t host16[2][40 * 64];
    TU_OK(pkv_f32_to_f16_array(maps[0], host16[0], 40 * 64));
    TU_OK(pkv_f32_to_f16_array(maps[1], host16[1], 40 * 64));
    memcpy(h16k, host16[0], sizeof host16[0]);
    memcpy(h16v, host16[1], sizeof host16[1]);
    pkv_cache *d16, *h16;
    pkv_seq s16, t16;
    TU_OK(pkv_cache_create(ctx, &cfg, &d16));
    TU_OK(pkv_cache_create(ctx, &cfg, &h16));
    TU_OK(pkv_seq_create(d16, &s16));
    TU_OK(pkv_seq_create(h16, &t16));
    TU_OK(pkv_vulkan_append(d16, s16, 0, 40, bufs[0], off, bytes - off, bufs[1], off, bytes - off, PKV_F16));
    TU_OK(pkv_append(h16, t16, 0, 40, host16[0], host16[1], PKV_F16));
    TU_OK(pkv_cache_save(d16, pa));
    TU_OK(pkv_cache_save(h16, pb));
    fa = tu_slurp(pa, &na), fb = tu_slurp(pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa);
    /* NaN, Inf or beyond fp16 in the application's K, V or q: refused, nothing stored. */
    h16v[7] = 0x7C00; /* +Inf */
    assert_int_equal(pkv_vulkan_append(d16, s16, 0, 2, bufs[0], off, bytes - off, bufs[1], off, bytes - off, PKV_F16), PKV_ERR_NONFINITE);
    workload_data(maps[0], maps[1], maps[2]);
    maps[0][3] = 1e6f;
    assert_int_equal(pkv_vulkan_append(d16, s16, 0, 2, bufs[0], off, bytes - off, bufs[1], off, bytes - off, PKV_F32), PKV_ERR_NONFINITE);
    maps[0][3] = NAN;
    assert_int_equal(pkv_vulkan_append(d16, s16, 0, 2, bufs[0], off, bytes - off, bufs[1], off, bytes - off, PKV_F32), PKV_ERR_NONFINITE);
    uint32_t len;
    TU_OK(pkv_seq_length(d16, s16, 0, &len));
    assert_int_equal(len, 40);
    maps[2][1] = NAN;
    assert_int_equal(pkv_vulkan_attention(d16, &ap, bufs[2], off, bytes - off, bufs[3], off, bytes - off), PKV_ERR_NONFINITE);
    TU_OK(pkv_cache_save(d16, pa));
    fa = tu_slurp(pa, &na);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na); /* still what the host path stored */
    free(fa), free(fb);
    remove(pa), remove(pb);
    TU_OK(pkv_cache_free(d16));
    TU_OK(pkv_cache_free(h16));
    TU_OK(pkv_cache_free(c));
    for (int i = 0; i < 4; i++) {
        f.vkDestroyBuffer(dev, bufs[i], NULL);
        f.vkFreeMemory(dev, mems[i], NULL);
    }
    TU_OK(pkv_context_free(ctx));
    /* the application's device is still alive and usable */
    assert_int_equal(f.vkDeviceWaitIdle(dev), VK_SUCCESS);

    /* incomplete handles are refused with a reason */
    ext.device = VK_NULL_HANDLE;
    p.backend = PKV_BACKEND_VULKAN;
    assert_int_not_equal(pkv_context_create(&p, &ctx), PKV_OK);
    assert_non_null(strstr(pkv_last_error(), "required"));

    f.vkDestroyDevice(dev, NULL);
    f.vkDestroyInstance(inst, NULL);
    pkv_vk_unload(&f);
}

static void bandwidth_and_timing_probes_report_numbers(void **state)
{
    (void)state;
    pkv_context *ctx = tv_context();
    double gbps = 0;
    TU_OK(pkv_measure_read_bandwidth(ctx, 16u << 20, &gbps));
    print_message("read bandwidth: %.1f GB/s\n", gbps);
    assert_true(gbps > 0 && isfinite(gbps));
    float out[4 * 32];
    small_workload(ctx, out);
    double ms = -1;
    TU_OK(pkv_last_op_time(ctx, &ms));
    assert_true(ms > 0);
    assert_true(pkv_vulkan_last_attention_ms(ctx->be) > 0);
    TU_OK(pkv_context_free(ctx));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(devices_are_listed_and_chosen_by_name),
        cmocka_unit_test(pipeline_cache_is_cold_then_warm_and_survives_corruption),
        cmocka_unit_test(eager_attention_pipelines_match_lazy),
        cmocka_unit_test(out_of_device_memory_keeps_what_was_stored),
        cmocka_unit_test(application_owned_device_is_used_and_left_alive),
        cmocka_unit_test(bandwidth_and_timing_probes_report_numbers),
    };
    return tu_run_tests(tests, NULL, NULL);
}
