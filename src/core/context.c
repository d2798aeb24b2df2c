/* Contexts: choosing a backend and a device, and listing devices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_plan.h"
#include "internal.h"
#include "profile.h"

static const pkv_backend_entry *const entries[] = {
#ifdef PKV_WITH_VULKAN
    &pkv_vulkan_backend_entry,
#endif
#ifdef PKV_WITH_OPENCL
    &pkv_opencl_backend_entry,
#endif
    &pkv_cpu_backend_entry,
};
#define N_ENTRIES (sizeof entries / sizeof entries[0])

static const char *const backend_names[PKV_BACKEND_COUNT] = {"auto", "cpu", "vulkan", "opencl"};

const char *pkv_backend_name(pkv_backend_kind kind)
{
    return (unsigned)kind < PKV_BACKEND_COUNT ? backend_names[kind] : "unknown";
}

pkv_status pkv_backend_from_name(const char *name, pkv_backend_kind *out)
{
    if (!name || !out) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_backend_from_name: null argument");
    for (int k = 0; k < PKV_BACKEND_COUNT; k++)
        if (strcmp(name, backend_names[k]) == 0) {
            *out = (pkv_backend_kind)k;
            return PKV_OK;
        }
    return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "unknown backend \"%s\" (auto, cpu, vulkan, opencl)", name);
}

const char *pkv_mode_name(pkv_mode mode)
{
    switch (mode) {
    case PKV_MODE_PATTERN: return "pattern";
    case PKV_MODE_DIRECT: return "direct";
    case PKV_MODE_FP16: return "fp16";
    }
    return "unknown";
}

static pkv_context_params params_defaults(void)
{
    pkv_context_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.backend = PKV_BACKEND_AUTO;
    p.device_index = -1;
    p.log_level = PKV_LOG_WARN;
    return p;
}

pkv_status pkv_context_params_init(pkv_context_params *p, size_t struct_size)
{
    const pkv_context_params d = params_defaults();
    return pkv_abi_init(&pkv_abi_context_params, &d, p, struct_size);
}

/* The application's params (NULL: defaults) as the library's whole struct. */
static pkv_status read_params(const pkv_context_params *app, pkv_context_params *p)
{
    const pkv_context_params d = params_defaults();
    if (!app) {
        *p = d;
        return PKV_OK;
    }
    return pkv_abi_read(NULL, &pkv_abi_context_params, app, &d, p);
}

static const pkv_backend_entry *find_entry(pkv_backend_kind kind)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (entries[i]->kind == kind) return entries[i];
    return NULL;
}

static pkv_status context_create(const pkv_context_params *params, pkv_context **out)
{
    if (!out) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_context_create: out is NULL");
    *out = NULL;
    pkv_context_params p;
    pkv_status st = read_params(params, &p);
    if (st != PKV_OK) return st;
    if (p.vulkan_external && p.opencl_external)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_context_create: vulkan_external and opencl_external are both set");
    /* An application's own device handles name their backend. */
    const pkv_backend_kind external = p.vulkan_external ? PKV_BACKEND_VULKAN
                                      : p.opencl_external ? PKV_BACKEND_OPENCL : PKV_BACKEND_AUTO;
    if (external != PKV_BACKEND_AUTO && p.backend != PKV_BACKEND_AUTO && p.backend != external)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_context_create: %s_external given with backend %s",
                        pkv_backend_name(external), pkv_backend_name(p.backend));
    if ((p.host_malloc || p.host_realloc || p.host_free) && !(p.host_malloc && p.host_realloc && p.host_free))
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT,
                        "pkv_context_create: host_malloc, host_realloc and host_free must be given together");
    const pkv_allocator alloc = {p.host_malloc, p.host_realloc, p.host_free, p.host_alloc_user};
    PKV_ALLOC_SCOPE(&alloc);
    pkv_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_context_create: out of host memory");
    ctx->params = p;
    ctx->alloc = alloc;
    pkv_alloc_enter(&ctx->alloc); /* the scope's previous allocator is restored on return */
    ctx->last_op_ms = -1.0;
    pkv_backend_kind want = external != PKV_BACKEND_AUTO ? external : ctx->params.backend;
    const char *env = getenv("PKV_BACKEND");
    if (want == PKV_BACKEND_AUTO && env && *env && pkv_backend_from_name(env, &want) != PKV_OK) {
        free(ctx);
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "PKV_BACKEND=\"%s\" is not auto, cpu, vulkan or opencl", env);
    }
    /* The application's handles are never discarded silently: an environment naming another backend
     * is an error. */
    pkv_backend_kind env_kind = PKV_BACKEND_AUTO;
    if (external != PKV_BACKEND_AUTO && env && *env && pkv_backend_from_name(env, &env_kind) == PKV_OK &&
        env_kind != PKV_BACKEND_AUTO && env_kind != external) {
        free(ctx);
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT,
                        "pkv_context_create: PKV_BACKEND=%s in the environment conflicts with the application's %s_external "
                        "handles (unset PKV_BACKEND or leave out the handles)", env, pkv_backend_name(external));
    }
    if ((unsigned)want >= PKV_BACKEND_COUNT) {
        free(ctx);
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_context_create: backend %d out of range", (int)want);
    }

    /* AUTO takes a GPU: Vulkan or OpenCL on a CPU device (lavapipe, PoCL) is much slower than the CPU
     * backend, so it is passed over unless a device was asked for by index or name. */
    const char *dev_env = getenv("PKV_DEVICE");
    int device_asked = ctx->params.device_index >= 0 || ctx->params.device_name || (dev_env && *dev_env);

    char reasons[512] = "";
    size_t used = 0;
    st = PKV_ERR_BACKEND_UNAVAILABLE;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const pkv_backend_entry *e = entries[i];
        if (want != PKV_BACKEND_AUTO && e->kind != want) continue;
        char why[256] = "";
        st = e->create(&ctx->params, &ctx->be, why, sizeof why);
        if (st == PKV_OK && want == PKV_BACKEND_AUTO && !device_asked && e->kind != PKV_BACKEND_CPU &&
            ctx->be->info.type == PKV_DEVICE_CPU) {
            snprintf(why, sizeof why, "only a CPU device (%s), slower than the cpu backend", ctx->be->info.name);
            ctx->be->iface->destroy(ctx->be);
            ctx->be = NULL;
            st = PKV_ERR_BACKEND_UNAVAILABLE;
        }
        if (st == PKV_OK) break;
        used += (size_t)snprintf(reasons + used, used < sizeof reasons ? sizeof reasons - used : 0, "%s%s: %s",
                                 used ? "; " : "", pkv_backend_name(e->kind), why[0] ? why : pkv_status_string(st));
        if (used >= sizeof reasons) used = sizeof reasons - 1;
    }
    if (want != PKV_BACKEND_AUTO && !find_entry(want)) {
        free(ctx);
        return pkv_fail(NULL, PKV_ERR_BACKEND_UNAVAILABLE, "backend %s was not built into this library",
                        pkv_backend_name(want));
    }
    if (!ctx->be) {
        free(ctx);
        return pkv_fail(NULL, st == PKV_OK ? PKV_ERR_BACKEND_UNAVAILABLE : st, "no backend could start: %s", reasons);
    }
    if (want == PKV_BACKEND_AUTO)
        snprintf(ctx->why, sizeof ctx->why, "auto: chose %s (%s)%s%s", pkv_backend_name(ctx->be->info.backend),
                 ctx->be->info.name, reasons[0] ? "; skipped " : "", reasons);
    else
        snprintf(ctx->why, sizeof ctx->why, "%s requested (%s)", pkv_backend_name(want), ctx->be->info.name);
    pkv_log(ctx, PKV_LOG_INFO, "%s", ctx->why);
    pkv_attn_env_read(&ctx->be->attn_env); /* once per context, not per attention call */
    *out = ctx;
    return PKV_OK;
}

pkv_status pkv_context_create(const pkv_context_params *params, pkv_context **out)
{
    const double t0 = pkv_prof_begin();
    pkv_status st = context_create(params, out);
    pkv_prof_end("pkv_context_create", t0, 0, 0);
    return st;
}

pkv_status pkv_context_free(pkv_context *ctx)
{
    PKV_ALLOC_SCOPE(PKV_CTX_ALLOC(ctx));
    if (!ctx) return PKV_OK;
    if (ctx->be) ctx->be->iface->destroy(ctx->be);
    free(ctx);
    return PKV_OK;
}

pkv_status pkv_context_device(const pkv_context *ctx, pkv_device_info *info, char *why, size_t why_capacity)
{
    if (!ctx || !info) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_context_device: null argument");
    pkv_status st = pkv_abi_write(ctx, &pkv_abi_device_info, &ctx->be->info, info);
    if (st == PKV_OK && why && why_capacity) snprintf(why, why_capacity, "%s", ctx->why);
    return st;
}

pkv_status pkv_list_devices(const pkv_context_params *params, pkv_device_info *out, size_t capacity, size_t *count)
{
    if (!count || (!out && capacity)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_list_devices: null argument");
    pkv_context_params p;
    pkv_status st = read_params(params, &p);
    if (st != PKV_OK) return st;
    const pkv_allocator alloc = {p.host_malloc, p.host_realloc, p.host_free, p.host_alloc_user};
    PKV_ALLOC_SCOPE(p.host_malloc && p.host_realloc && p.host_free ? &alloc : NULL);
    /* out is an array of the application's pkv_device_info: its element size is out[0].struct_size. */
    const uint32_t stride = capacity ? pkv_abi_size_of(out) : 0;
    char why_size[256];
    if (capacity && pkv_abi_size_known(&pkv_abi_device_info, stride, why_size, sizeof why_size))
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_list_devices: out[0]: %s", why_size);
    size_t total = 0;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        pkv_device_info devs[32];
        size_t n = 0;
        char why[256] = "";
        if (entries[i]->list(&p, devs, 32, &n, why, sizeof why) != PKV_OK) {
            pkv_context tmp = {.params = p};
            pkv_log(&tmp, PKV_LOG_INFO, "%s: %s", pkv_backend_name(entries[i]->kind), why);
            continue;
        }
        for (size_t j = 0; j < n && j < 32; j++, total++)
            if (total < capacity) {
                pkv_device_info *dst = (pkv_device_info *)((char *)out + total * stride);
                memcpy(dst, &stride, sizeof stride);
                pkv_abi_write(NULL, &pkv_abi_device_info, &devs[j], dst);
            }
    }
    *count = total;
    return PKV_OK;
}
