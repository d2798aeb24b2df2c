#define _POSIX_C_SOURCE 200809L
/* Compute pipelines: the embedded SPIR-V modules, one pipeline per (kernel, specialization) created
 * once per context and kept, and the VkPipelineCache persisted per device on disk.
 *
 * Cache file: <dir>/vulkan-<device uuid>-<driver version>-<library version>.bin where dir is
 * params->cache_dir, else $PKV_CACHE_DIR, else ~/.cache/patternkv. It starts with our header
 * (magic, sizes, vendor/device ids, driver version, uuid, library version, checksum of the data);
 * a file that does not match is ignored with a warning. Written to a temp file then renamed. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "parallel.h"
#include "profile.h"
#include "pkv_vk_shaders.h"
#include "vk_internal.h"

static const struct { const uint32_t *code; const size_t *size; } spirv[PKV_K_COUNT] = {
    [PKV_K_KMEANS_INIT] = {pkv_spv_kmeans_init, &pkv_spv_kmeans_init_size},
    [PKV_K_KMEANS_ASSIGN] = {pkv_spv_kmeans_assign, &pkv_spv_kmeans_assign_size},
    [PKV_K_KMEANS_PARTIAL] = {pkv_spv_kmeans_partial, &pkv_spv_kmeans_partial_size},
    [PKV_K_KMEANS_REDUCE] = {pkv_spv_kmeans_reduce, &pkv_spv_kmeans_reduce_size},
    [PKV_K_KMEANS_FINISH] = {pkv_spv_kmeans_finish, &pkv_spv_kmeans_finish_size},
    [PKV_K_KMEANS_STORE] = {pkv_spv_kmeans_store, &pkv_spv_kmeans_store_size},
    [PKV_K_ASSIGN] = {pkv_spv_assign, &pkv_spv_assign_size},
    [PKV_K_QUANT_SEARCH] = {pkv_spv_quant_search, &pkv_spv_quant_search_size},
    [PKV_K_QUANT_BLOCK] = {pkv_spv_quant_block, &pkv_spv_quant_block_size},
    [PKV_K_FLUSH_CENTRE] = {pkv_spv_flush_centre, &pkv_spv_flush_centre_size},
    [PKV_K_ATTN_QC] = {pkv_spv_attn_qc, &pkv_spv_attn_qc_size},
    [PKV_K_ATTN_DECODE] = {pkv_spv_attn_decode, &pkv_spv_attn_decode_size},
    [PKV_K_ATTN_DECODE_SG] = {pkv_spv_attn_decode_sg, &pkv_spv_attn_decode_sg_size},
    [PKV_K_ATTN_DECODE_CM] = {pkv_spv_attn_decode_cm, &pkv_spv_attn_decode_cm_size},
    [PKV_K_ATTN_MERGE] = {pkv_spv_attn_merge, &pkv_spv_attn_merge_size},
    [PKV_K_ATTN_WARP] = {pkv_spv_attn_warp, &pkv_spv_attn_warp_size},
    [PKV_K_ATTN_WARP_SG] = {pkv_spv_attn_warp_sg, &pkv_spv_attn_warp_sg_size},
    [PKV_K_ATTN_LOGITS] = {pkv_spv_attn_logits, &pkv_spv_attn_logits_size},
    [PKV_K_ATTN_LOGITS_SG] = {pkv_spv_attn_logits_sg, &pkv_spv_attn_logits_sg_size},
    [PKV_K_ATTN_LOGITS_CM] = {pkv_spv_attn_logits_cm, &pkv_spv_attn_logits_cm_size},
    [PKV_K_ATTN_LOGITS_CME] = {pkv_spv_attn_logits_cme, &pkv_spv_attn_logits_cme_size},
    [PKV_K_ATTN_VALUES] = {pkv_spv_attn_values, &pkv_spv_attn_values_size},
    [PKV_K_ATTN_VALUES_SG] = {pkv_spv_attn_values_sg, &pkv_spv_attn_values_sg_size},
    [PKV_K_ATTN_VALUES_CM] = {pkv_spv_attn_values_cm, &pkv_spv_attn_values_cm_size},
    [PKV_K_ATTN_VALUES_CME] = {pkv_spv_attn_values_cme, &pkv_spv_attn_values_cme_size},
    [PKV_K_READ_BW] = {pkv_spv_read_bw, &pkv_spv_read_bw_size},
    [PKV_K_STAGE_INPUT] = {pkv_spv_stage_input, &pkv_spv_stage_input_size},
    [PKV_K_WINDOW_WRITE] = {pkv_spv_window_write, &pkv_spv_window_write_size},
};

#define CACHE_MAGIC 0x43504b50u /* "PKPC" */
#define CACHE_FORMAT 1u

typedef struct cache_header {
    uint32_t magic, format, header_bytes, lib_version;
    uint32_t vendor_id, device_id, driver_version, reserved;
    uint8_t uuid[VK_UUID_SIZE];
    uint64_t data_bytes, checksum;
} cache_header;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void make_dirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

static void cache_file_path(pkv_vk *vk, const pkv_context_params *p)
{
    const char *dir = p && p->cache_dir ? p->cache_dir : getenv("PKV_CACHE_DIR");
    char buf[900];
    if (!dir || !*dir) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            vk->cache_path[0] = 0; /* nowhere to keep it: pipelines are still created, just not saved */
            return;
        }
        snprintf(buf, sizeof buf, "%s/.cache/patternkv", home);
        dir = buf;
    }
    /* An all-zero device UUID (a driver that does not fill it) cannot tell devices apart: a cache keyed
     * by it could hand one device's pipelines to another. No cache file then. */
    if (!pkv_vk_uuid_usable(vk->device_uuid)) {
        vk->cache_path[0] = 0;
        return;
    }
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", vk->device_uuid[i]);
    snprintf(vk->cache_path, sizeof vk->cache_path, "%s/vulkan-%s-%08x-%s.bin", dir, uuid, vk->props.driverVersion,
             PKV_VERSION_STRING);
}

int pkv_vk_uuid_usable(const uint8_t *uuid)
{
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        if (uuid[i]) return 1;
    return 0;
}

static void fill_header(const pkv_vk *vk, cache_header *h, const uint8_t *data, size_t n)
{
    memset(h, 0, sizeof *h);
    h->magic = CACHE_MAGIC;
    h->format = CACHE_FORMAT;
    h->header_bytes = sizeof *h;
    h->lib_version = PKV_VERSION_NUMBER;
    h->vendor_id = vk->props.vendorID;
    h->device_id = vk->props.deviceID;
    h->driver_version = vk->props.driverVersion;
    memcpy(h->uuid, vk->device_uuid, VK_UUID_SIZE);
    h->data_bytes = n;
    h->checksum = fnv1a(data, n);
}

/* Reads and checks the file; returns malloc'd Vulkan cache data or NULL (with a warning if bad). */
static uint8_t *load_cache_file(pkv_vk *vk, const pkv_context_params *p, size_t *n)
{
    *n = 0;
    if (!vk->cache_path[0]) return NULL;
    FILE *f = fopen(vk->cache_path, "rb");
    if (!f) return NULL; /* first run: cold */
    cache_header h, want;
    uint8_t *data = NULL;
    const char *bad = NULL;
    if (fread(&h, sizeof h, 1, f) != 1) bad = "truncated header";
    else {
        fill_header(vk, &want, NULL, 0);
        if (h.magic != want.magic || h.format != want.format || h.header_bytes != want.header_bytes) bad = "not a PatternKV pipeline cache";
        else if (h.lib_version != want.lib_version || h.vendor_id != want.vendor_id || h.device_id != want.device_id ||
                 h.driver_version != want.driver_version || memcmp(h.uuid, want.uuid, VK_UUID_SIZE) != 0)
            bad = "made for another device, driver or library version";
        else if (h.data_bytes > (64u << 20)) bad = "implausible size";
    }
    if (!bad) {
        data = malloc(h.data_bytes ? h.data_bytes : 1);
        if (!data || fread(data, 1, h.data_bytes, f) != h.data_bytes) bad = "truncated data";
        else if (fnv1a(data, h.data_bytes) != h.checksum) bad = "checksum mismatch";
        else if (h.data_bytes >= 32) { /* Vulkan's own header: VkPipelineCacheHeaderVersionOne */
            uint32_t len, ver, vendor, device;
            memcpy(&len, data, 4), memcpy(&ver, data + 4, 4), memcpy(&vendor, data + 8, 4), memcpy(&device, data + 12, 4);
            if (len < 32 || ver != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vendor != vk->props.vendorID ||
                device != vk->props.deviceID || memcmp(data + 16, vk->props.pipelineCacheUUID, VK_UUID_SIZE) != 0)
                bad = "Vulkan cache header does not match this device";
        } else
            bad = "no Vulkan cache header";
    }
    fclose(f);
    if (bad) {
        pkv_context tmp = {.params = p ? *p : pkv_context_params_default()};
        pkv_log(&tmp, PKV_LOG_WARN, "vulkan: ignoring pipeline cache %s: %s", vk->cache_path, bad);
        free(data);
        return NULL;
    }
    *n = h.data_bytes;
    return data;
}

static void save_cache_file(pkv_vk *vk)
{
    if (!vk->cache_path[0] || !vk->pipe_cache || !vk->cache_dirty) return;
    size_t n = 0;
    if (vk->f.vkGetPipelineCacheData(vk->device, vk->pipe_cache, &n, NULL) != VK_SUCCESS || !n) return;
    uint8_t *data = malloc(n);
    if (!data) return;
    if (vk->f.vkGetPipelineCacheData(vk->device, vk->pipe_cache, &n, data) == VK_SUCCESS) {
        char dir[1024], tmp[1100];
        snprintf(dir, sizeof dir, "%s", vk->cache_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0, make_dirs(dir);
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", vk->cache_path, (long)getpid());
        cache_header h;
        fill_header(vk, &h, data, n);
        FILE *f = fopen(tmp, "wb");
        int ok = f && fwrite(&h, sizeof h, 1, f) == 1 && fwrite(data, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        if (ok && rename(tmp, vk->cache_path) == 0)
            vk->cache_dirty = 0;
        else {
            remove(tmp);
            pkv_log(NULL, PKV_LOG_WARN, "vulkan: could not write pipeline cache %s: %s", vk->cache_path, strerror(errno));
        }
    }
    free(data);
}

pkv_status pkv_vk_pipelines_init(pkv_vk *vk, const pkv_context_params *p)
{
    VkDescriptorSetLayoutBinding b[PKV_VK_BINDINGS];
    for (uint32_t i = 0; i < PKV_VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dl = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = PKV_VK_BINDINGS,
                                          .pBindings = b};
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = PKV_VK_PUSH_BYTES};
    if (vk->f.vkCreateDescriptorSetLayout(vk->device, &dl, NULL, &vk->set_layout) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreateDescriptorSetLayout failed");
    VkPipelineLayoutCreateInfo pl = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                     .pSetLayouts = &vk->set_layout, .pushConstantRangeCount = 1,
                                     .pPushConstantRanges = &pr};
    if (vk->f.vkCreatePipelineLayout(vk->device, &pl, NULL, &vk->pipe_layout) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreatePipelineLayout failed");
    for (int k = 0; k < PKV_K_COUNT; k++) {
        if ((k == PKV_K_ATTN_DECODE_SG || k == PKV_K_ATTN_WARP_SG || k == PKV_K_ATTN_LOGITS_SG || k == PKV_K_ATTN_VALUES_SG ||
             k == PKV_K_ATTN_LOGITS_CME || k == PKV_K_ATTN_VALUES_CME) &&
            !vk->subgroup_arith) continue; /* its SPIR-V needs subgroup arithmetic */
        if ((k == PKV_K_ATTN_DECODE_CM || k == PKV_K_ATTN_LOGITS_CM || k == PKV_K_ATTN_VALUES_CM) &&
            !(vk->coopmat && vk->subgroup_arith)) continue; /* and cooperative matrices */
        VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = *spirv[k].size,
                                       .pCode = spirv[k].code};
        if (vk->f.vkCreateShaderModule(vk->device, &mi, NULL, &vk->modules[k]) != VK_SUCCESS)
            return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreateShaderModule failed for kernel %d", k);
    }
    cache_file_path(vk, p);
    size_t n = 0;
    uint8_t *data = load_cache_file(vk, p, &n);
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = n,
                                    .pInitialData = data};
    VkResult r = vk->f.vkCreatePipelineCache(vk->device, &ci, NULL, &vk->pipe_cache);
    if (r != VK_SUCCESS && data) { /* the driver refused the data: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vk->f.vkCreatePipelineCache(vk->device, &ci, NULL, &vk->pipe_cache);
        free(data);
        data = NULL;
    }
    vk->cache_loaded = data != NULL;
    free(data);
    if (r != VK_SUCCESS) vk->pipe_cache = VK_NULL_HANDLE; /* works without one */
    return PKV_OK;
}

void pkv_vk_pipelines_destroy(pkv_vk *vk)
{
    for (uint32_t i = 0; i < vk->n_bg; i++) pthread_join(vk->bg_threads[i], NULL); /* compiles cannot be stopped */
    free(vk->bg_threads);
    vk->bg_threads = NULL;
    vk->n_bg = vk->cap_bg = 0;
    if (!vk->device) return;
    save_cache_file(vk);
    for (uint32_t i = 0; i < vk->n_variants; i++) vk->f.vkDestroyPipeline(vk->device, vk->variants[i].pipe, NULL);
    vk->n_variants = 0;
    free(vk->variants);
    vk->variants = NULL;
    for (int k = 0; k < PKV_K_COUNT; k++)
        if (vk->modules[k]) vk->f.vkDestroyShaderModule(vk->device, vk->modules[k], NULL);
    if (vk->pipe_cache) vk->f.vkDestroyPipelineCache(vk->device, vk->pipe_cache, NULL);
    if (vk->pipe_layout) vk->f.vkDestroyPipelineLayout(vk->device, vk->pipe_layout, NULL);
    if (vk->set_layout) vk->f.vkDestroyDescriptorSetLayout(vk->device, vk->set_layout, NULL);
}

/* The driver's statistics of a new pipeline (register count, spills, ...), to the log (a tuning aid). */
static void log_statistics(pkv_vk *vk, VkPipeline pipe, int kernel, const uint32_t *spec)
{
    if (!vk->f.vkGetPipelineExecutableStatisticsKHR) return;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipe};
    VkPipelineExecutableStatisticKHR st[32];
    uint32_t n = 32;
    for (uint32_t i = 0; i < n; i++) st[i] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
    if (vk->f.vkGetPipelineExecutableStatisticsKHR(vk->device, &ei, &n, st) < 0) return;
    char line[1024];
    int len = snprintf(line, sizeof line, "vulkan: pipeline of kernel %d (spec", kernel);
    for (int i = 0; i < PKV_VK_SPEC_MAX && len < (int)sizeof line; i++) len += snprintf(line + len, sizeof line - len, " %u", spec[i]);
    len += snprintf(line + len, sizeof line - len, "):");
    for (uint32_t i = 0; i < n && len < (int)sizeof line; i++) {
        const VkPipelineExecutableStatisticKHR *x = &st[i];
        if (x->format == VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR)
            len += snprintf(line + len, sizeof line - len, " %s=%llu;", x->name, (unsigned long long)x->value.u64);
        else if (x->format == VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR)
            len += snprintf(line + len, sizeof line - len, " %s=%lld;", x->name, (long long)x->value.i64);
        else if (x->format == VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR)
            len += snprintf(line + len, sizeof line - len, " %s=%g;", x->name, x->value.f64);
    }
    pkv_log(NULL, PKV_LOG_WARN, "%s", line);
}

/* The variant of (kernel, spec), or NULL. Each kernel's last hit is tried first (an op records the
 * same few pipelines call after call: one comparison instead of a scan of every variant). pipe_lock held. */
static pkv_vk_variant *find_variant(pkv_vk *vk, int kernel, const uint32_t *spec)
{
    const int memo = kernel >= 0 && kernel < PKV_K_COUNT;
    if (memo) {
        const uint32_t h = vk->hot_variant[kernel];
        if (h < vk->n_variants && vk->variants[h].kernel == kernel &&
            memcmp(vk->variants[h].spec, spec, sizeof vk->variants[h].spec) == 0)
            return &vk->variants[h];
    }
    for (uint32_t i = 0; i < vk->n_variants; i++)
        if (vk->variants[i].kernel == kernel && memcmp(vk->variants[i].spec, spec, sizeof vk->variants[i].spec) == 0) {
            if (memo) vk->hot_variant[kernel] = i;
            return &vk->variants[i];
        }
    return NULL;
}

/* One pipeline, created on the calling thread (vkCreateComputePipelines and the pipeline cache are
 * safe to use from several threads at once). */
typedef struct create_job {
    pkv_vk *vk;
    int kernel;
    uint32_t spec[PKV_VK_SPEC_MAX];
    VkPipeline pipe;
    VkResult r;
    double ms;
} create_job;

static void *create_one(void *arg)
{
    create_job *j = arg;
    pkv_vk *vk = j->vk;
    VkSpecializationMapEntry map[PKV_VK_SPEC_MAX];
    for (uint32_t i = 0; i < PKV_VK_SPEC_MAX; i++) map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {.mapEntryCount = PKV_VK_SPEC_MAX, .pMapEntries = map, .dataSize = PKV_VK_SPEC_MAX * 4,
                               .pData = j->spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = vk->modules[j->kernel], .pName = "main", .pSpecializationInfo = &si},
        .layout = vk->pipe_layout};
    if (vk->pipeline_stats) ci.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    double t0 = now_ms();
    j->r = vk->f.vkCreateComputePipelines(vk->device, vk->pipe_cache, 1, &ci, NULL, &j->pipe);
    j->ms = now_ms() - t0;
    return NULL;
}

/* The jobs of one thread: first, first + step, ... < n. */
static void create_nth(void *jobs, uint32_t i) { create_one((create_job *)jobs + i); }

/* A created pipeline's statistics and the cache's dirty flag (pipe_lock held). */
static void account(pkv_vk *vk, create_job *j)
{
    if (vk->pipeline_stats) log_statistics(vk, j->pipe, j->kernel, j->spec);
    vk->pipeline_ms += j->ms;
    vk->pipelines_created++;
    vk->cache_dirty = 1;
}

/* Keeps a created pipeline in the context's list (pipe_lock held; the caller made room). */
static void keep(pkv_vk *vk, create_job *j)
{
    account(vk, j);
    pkv_vk_variant *v = &vk->variants[vk->n_variants++];
    v->kernel = j->kernel;
    memcpy(v->spec, j->spec, sizeof v->spec);
    v->pipe = j->pipe;
    v->pending = 0;
}

static pkv_status room_for(pkv_vk *vk, uint32_t more)
{
    if (vk->n_variants + more <= vk->cap_variants) return PKV_OK;
    uint32_t cap = vk->cap_variants ? 2 * vk->cap_variants : 32;
    while (cap < vk->n_variants + more) cap *= 2;
    pkv_vk_variant *nv = realloc(vk->variants, cap * sizeof *nv);
    if (!nv) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    vk->variants = nv;
    vk->cap_variants = cap;
    return PKV_OK;
}

static pkv_status creation_failed(int kernel, VkResult r)
{
    return pkv_fail(NULL, r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? PKV_ERR_OUT_OF_DEVICE_MEMORY : PKV_ERR_DEVICE,
                    "vulkan: vkCreateComputePipelines failed for kernel %d (VkResult %d)", kernel, (int)r);
}

pkv_status pkv_vk_pipeline(pkv_vk *vk, int kernel, const uint32_t *spec, VkPipeline *out)
{
    return pkv_vk_pipelines_get(vk, 1, &kernel, (const uint32_t(*)[PKV_VK_SPEC_MAX])spec, out);
}

/* A background creation: fills in its pending entry, or removes it when creation failed (the op
 * that needs it then creates it and reports the error). */
static void *bg_create(void *arg)
{
    create_job *j = arg;
    pkv_vk *vk = j->vk;
    create_one(j);
    pthread_mutex_lock(&vk->pipe_lock);
    pkv_vk_variant *v = find_variant(vk, j->kernel, j->spec);
    if (v && j->r == VK_SUCCESS) {
        account(vk, j);
        v->pipe = j->pipe;
        v->pending = 0;
    } else if (v) {
        *v = vk->variants[--vk->n_variants];
    }
    pthread_cond_broadcast(&vk->pipe_done);
    pthread_mutex_unlock(&vk->pipe_lock);
    free(j);
    return NULL;
}

void pkv_vk_pipelines_start(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX])
{
    pthread_mutex_lock(&vk->pipe_lock);
    for (uint32_t i = 0; i < n; i++) {
        if (find_variant(vk, kernels[i], specs[i])) continue;
        if (vk->n_bg == vk->cap_bg) {
            uint32_t cap = vk->cap_bg ? 2 * vk->cap_bg : 16;
            pthread_t *t = realloc(vk->bg_threads, cap * sizeof *t);
            if (!t) break;
            vk->bg_threads = t, vk->cap_bg = cap;
        }
        create_job *j = malloc(sizeof *j);
        if (!j || room_for(vk, 1) != PKV_OK) {
            free(j);
            pkv_clear_error();
            break; /* created on first use instead */
        }
        *j = (create_job){.vk = vk, .kernel = kernels[i]};
        memcpy(j->spec, specs[i], sizeof j->spec);
        pkv_vk_variant *v = &vk->variants[vk->n_variants++];
        *v = (pkv_vk_variant){.kernel = kernels[i], .pending = 1};
        memcpy(v->spec, specs[i], sizeof v->spec);
        if (pthread_create(&vk->bg_threads[vk->n_bg], NULL, bg_create, j) == 0) {
            vk->n_bg++;
        } else {
            vk->n_variants--;
            free(j);
        }
    }
    pthread_mutex_unlock(&vk->pipe_lock);
}

uint32_t pkv_vk_pipelines_pending(pkv_vk *vk)
{
    uint32_t n = 0;
    pthread_mutex_lock(&vk->pipe_lock);
    for (uint32_t i = 0; i < vk->n_variants; i++) n += (uint32_t)vk->variants[i].pending;
    pthread_mutex_unlock(&vk->pipe_lock);
    return n;
}

pkv_status pkv_vk_pipelines_get(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX],
                                VkPipeline *out)
{
    create_job jobs[PKV_VK_PIPELINES_MAX];
    uint32_t nj = 0, job_of[PKV_VK_PIPELINES_MAX];
    if (n > PKV_VK_PIPELINES_MAX) n = PKV_VK_PIPELINES_MAX;
    pthread_mutex_lock(&vk->pipe_lock);
    for (uint32_t i = 0; i < n; i++) { /* wait for those being created in the background */
        pkv_vk_variant *v = find_variant(vk, kernels[i], specs[i]);
        if (v && v->pending) {
            const double tp = pkv_prof_start();
            pthread_cond_wait(&vk->pipe_done, &vk->pipe_lock);
            pkv_prof_add(PKV_PROF_PIPE, tp);
            i = UINT32_MAX; /* look again from the first: the table may have moved */
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        pkv_vk_variant *v = find_variant(vk, kernels[i], specs[i]);
        job_of[i] = UINT32_MAX;
        if (v) {
            if (out) out[i] = v->pipe;
            continue;
        }
        for (uint32_t k = 0; k < nj && job_of[i] == UINT32_MAX; k++)
            if (jobs[k].kernel == kernels[i] && memcmp(jobs[k].spec, specs[i], sizeof jobs[k].spec) == 0) job_of[i] = k;
        if (job_of[i] != UINT32_MAX) continue;
        jobs[nj] = (create_job){.vk = vk, .kernel = kernels[i]};
        memcpy(jobs[nj].spec, specs[i], sizeof jobs[nj].spec);
        job_of[i] = nj++;
    }
    pkv_status s = nj ? room_for(vk, nj) : PKV_OK;
    pthread_mutex_unlock(&vk->pipe_lock);
    if (s != PKV_OK || nj == 0) return s;
    /* one thread per pipeline (up to one per core): each takes milliseconds to a second in the
     * driver's compiler, and the longest one bounds the wait */
    const double tp = pkv_prof_start(), t0 = now_ms();
    pkv_parallel_tasks(nj, create_nth, jobs);
    pkv_prof_add(PKV_PROF_PIPE, tp);
    if (pkv_prof_enabled()) { /* what start-up spends on which kernel (PKV_PROFILE) */
        uint32_t longest = 0;
        double sum = 0;
        for (uint32_t i = 0; i < nj; i++) {
            sum += jobs[i].ms;
            if (jobs[i].ms > jobs[longest].ms) longest = i;
        }
        char each[1024];
        size_t len = 0;
        each[0] = 0;
        for (uint32_t i = 0; i < nj && len < sizeof each; i++) /* which kernel bounds the batch, and by how much */
            len += (size_t)snprintf(each + len, sizeof each - len, "%s%d %.1f", i ? ", " : "", jobs[i].kernel, jobs[i].ms);
        fprintf(stderr, "pkv profile: vulkan pipelines: %u created in %.3f ms (%s cache; each: sum %.3f ms, longest kernel %d %.3f ms; kernel ms: %s)\n",
                nj, now_ms() - t0, vk->cache_loaded ? "warm" : "cold", sum, jobs[longest].kernel, jobs[longest].ms, each);
    }
    pthread_mutex_lock(&vk->pipe_lock);
    s = room_for(vk, nj); /* made above; background entries may have come since (not these: `lock`) */
    for (uint32_t i = 0; i < nj; i++) {
        if (jobs[i].r == VK_SUCCESS && s == PKV_OK) keep(vk, &jobs[i]);
        else if (jobs[i].r == VK_SUCCESS) vk->f.vkDestroyPipeline(vk->device, jobs[i].pipe, NULL);
        else if (s == PKV_OK) s = creation_failed(jobs[i].kernel, jobs[i].r);
    }
    pthread_mutex_unlock(&vk->pipe_lock);
    for (uint32_t i = 0; i < n && out && s == PKV_OK; i++)
        if (job_of[i] != UINT32_MAX) out[i] = jobs[job_of[i]].pipe;
    return s;
}

pkv_status pkv_vk_pipelines_create(pkv_vk *vk, uint32_t n, const int *kernels, const uint32_t (*specs)[PKV_VK_SPEC_MAX])
{
    return pkv_vk_pipelines_get(vk, n, kernels, specs, NULL);
}

/* The storage-buffer bindings of a kernel's descriptor set: the op's four, then the status word. */
static void write_set(pkv_vk *vk, VkDescriptorSet set, const VkDescriptorBufferInfo bi[4])
{
    VkWriteDescriptorSet w[PKV_VK_BINDINGS];
    const pkv_buf *st = vk->status ? vk->status : vk->dummy;
    const VkDescriptorBufferInfo sbi = {st->page->buf, st->off, st->size};
    for (uint32_t i = 0; i < PKV_VK_BINDINGS; i++)
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                      .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = i < 4 ? &bi[i] : &sbi};
    vk->f.vkUpdateDescriptorSets(vk->device, PKV_VK_BINDINGS, w, 0, NULL);
}

/* Recorded calls: a set of the four buffers that lives as long as the context (the application
 * submits the command buffer later), one per distinct set of buffers, from pools never reset. */
static int same_bufs(const VkDescriptorBufferInfo *a, const VkDescriptorBufferInfo *b)
{
    for (int i = 0; i < 4; i++) /* most differ in the first binding */
        if (a[i].buffer != b[i].buffer || a[i].offset != b[i].offset || a[i].range != b[i].range) return 0;
    return 1;
}

static pkv_status external_set(pkv_vk *vk, const VkDescriptorBufferInfo bi[4], VkDescriptorSet *out)
{
    /* a decode step uses a few sets over and over: the one last found with this hash is tried first */
    const uint64_t key = ((uint64_t)(uintptr_t)bi[0].buffer ^ bi[0].offset) * 0x9E3779B97F4A7C15ull ^
                         ((uint64_t)(uintptr_t)bi[1].buffer ^ bi[1].offset);
    uint32_t *hint = &vk->ext_hint[(key * 0x9E3779B97F4A7C15ull) >> 61];
    if (*hint && *hint <= vk->n_ext_sets && same_bufs(vk->ext_sets[*hint - 1].bufs, bi)) {
        *out = vk->ext_sets[*hint - 1].set;
        return PKV_OK;
    }
    for (uint32_t i = vk->n_ext_sets; i-- > 0;)
        if (same_bufs(vk->ext_sets[i].bufs, bi)) {
            *hint = i + 1;
            *out = vk->ext_sets[i].set;
            return PKV_OK;
        }
    if (vk->n_ext_sets == vk->cap_ext_sets) {
        uint32_t cap = vk->cap_ext_sets ? 2 * vk->cap_ext_sets : 32;
        struct pkv_vk_ext_set *n = realloc(vk->ext_sets, cap * sizeof *n);
        if (!n) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
        vk->ext_sets = n, vk->cap_ext_sets = cap;
    }
    if (!vk->ext_pool_left) {
        VkDescriptorPool *pools = realloc(vk->ext_pools, (vk->n_ext_pools + 1) * sizeof *pools);
        if (!pools) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
        vk->ext_pools = pools;
        VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = PKV_VK_BINDINGS * 64};
        VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 64,
                                          .poolSizeCount = 1, .pPoolSizes = &ps};
        if (vk->f.vkCreateDescriptorPool(vk->device, &dpi, NULL, &pools[vk->n_ext_pools]) != VK_SUCCESS)
            return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkCreateDescriptorPool failed");
        vk->n_ext_pools++;
        vk->ext_pool_left = 64;
    }
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = vk->ext_pools[vk->n_ext_pools - 1], .descriptorSetCount = 1,
                                      .pSetLayouts = &vk->set_layout};
    VkDescriptorSet set;
    if (vk->f.vkAllocateDescriptorSets(vk->device, &ai, &set) != VK_SUCCESS)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkAllocateDescriptorSets failed");
    vk->ext_pool_left--;
    write_set(vk, set, bi);
    memcpy(vk->ext_sets[vk->n_ext_sets].bufs, bi, 4 * sizeof *bi);
    vk->ext_sets[vk->n_ext_sets++].set = set;
    *hint = vk->n_ext_sets;
    *out = set;
    return PKV_OK;
}

pkv_status pkv_vk_dispatch(pkv_vk *vk, VkPipeline pipe, pkv_buf *const bufs[4], const void *push, uint32_t push_bytes,
                           uint32_t gx, uint32_t gy, uint32_t gz)
{
    VkDescriptorBufferInfo bi[4];
    for (uint32_t i = 0; i < 4; i++) {
        pkv_buf *b = bufs[i] ? bufs[i] : vk->dummy;
        bi[i] = (VkDescriptorBufferInfo){b->page->buf, b->off, b->size};
    }
    /* the ops dispatch many times over the same four buffers: one set serves them all */
    VkDescriptorSet set = vk->last_set;
    if (vk->external) {
        pkv_status s = external_set(vk, bi, &set);
        if (s != PKV_OK) return s;
    } else if (!set || memcmp(bi, vk->last_set_bufs, sizeof bi) != 0) {
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = vk->desc_pool, .descriptorSetCount = 1,
                                          .pSetLayouts = &vk->set_layout};
        if (vk->f.vkAllocateDescriptorSets(vk->device, &ai, &set) != VK_SUCCESS) {
            /* pool exhausted: run what is recorded, then start over (sets of finished work are free) */
            pkv_status s = pkv_vk_finish(vk);
            if (s == PKV_OK) s = pkv_vk_begin(vk);
            if (s != PKV_OK) return s;
            if (vk->f.vkAllocateDescriptorSets(vk->device, &ai, &set) != VK_SUCCESS)
                return pkv_fail(NULL, PKV_ERR_DEVICE, "vulkan: vkAllocateDescriptorSets failed");
        }
        write_set(vk, set, bi);
        vk->last_set = set;
        memcpy(vk->last_set_bufs, bi, sizeof bi);
    }
    pkv_status s = pkv_vk_begin(vk);
    if (s != PKV_OK) return s;
    /* one pipeline layout for all: sets and push constants stay bound across pipeline binds */
    if (pipe != vk->bound_pipe) vk->f.vkCmdBindPipeline(vk->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    if (set != vk->bound_set)
        vk->f.vkCmdBindDescriptorSets(vk->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipe_layout, 0, 1, &set, 0, NULL);
    vk->bound_pipe = pipe, vk->bound_set = set;
    /* all PKV_VK_PUSH_BYTES are pushed, zeros after the op's own (vk->pushed keeps them so) */
    if (!vk->push_valid || push_bytes != vk->pushed_bytes || memcmp(push, vk->pushed, push_bytes) != 0) {
        memcpy(vk->pushed, push, push_bytes);
        if (vk->pushed_bytes > push_bytes) memset(vk->pushed + push_bytes, 0, vk->pushed_bytes - push_bytes);
        vk->pushed_bytes = push_bytes;
        vk->f.vkCmdPushConstants(vk->cb, vk->pipe_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, PKV_VK_PUSH_BYTES, vk->pushed);
        vk->push_valid = 1;
    }
    vk->f.vkCmdDispatch(vk->cb, gx, gy, gz);
    return PKV_OK;
}

void pkv_vk_unbind(pkv_vk *vk)
{
    vk->bound_pipe = VK_NULL_HANDLE;
    vk->bound_set = VK_NULL_HANDLE;
    vk->push_valid = 0;
}
