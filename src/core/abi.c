/* The stable-ABI rule (abi.h): the sizes of the public structs, and copying across sizes. */
#include "abi.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* The layouts released with struct_size: 0.1.0 had one size each; pkv_attention_params,
 * pkv_context_params and pkv_cache_config have grown since. */
/* pkv_context_params as released in 0.1.0, before device_page_bytes and staging_bytes. */
struct pkv_context_params_v1 {
    uint32_t struct_size;
    pkv_backend_kind backend;
    int device_index;
    const char *device_name, *cache_dir;
    pkv_log_fn log;
    void *log_user;
    pkv_log_level log_level;
    uint32_t n_threads;
    const struct pkv_vulkan_external *vulkan_external;
    const struct pkv_opencl_external *opencl_external;
};
/* ... then up to staging_bytes (device_page_bytes and staging_bytes), before the host allocator hooks. */
const pkv_abi_struct pkv_abi_context_params = {
    "pkv_context_params", "pkv_context_params_default()", 3,
    {sizeof(struct pkv_context_params_v1), offsetof(pkv_context_params, host_malloc), sizeof(pkv_context_params)}};
/* pkv_cache_config as released in 0.1.0, before k_assign. */
struct pkv_cache_config_v1 {
    uint32_t struct_size, n_layers, n_kv_heads, head_dim, k_bits, v_bits, group_size, window, n_patterns,
        bank_capacity;
    pkv_mode mode;
    uint64_t memory_budget;
    uint32_t kmeans_iters;
    float kmeans_tol;
    uint64_t seed;
};
/* ... then up to mining (k_assign and mining), before quantizer. */
const pkv_abi_struct pkv_abi_cache_config = {
    "pkv_cache_config", "pkv_cache_config_default()", 3,
    {sizeof(struct pkv_cache_config_v1), offsetof(pkv_cache_config, quantizer), sizeof(pkv_cache_config)}};
/* pkv_attention_params as released in 0.1.0, before k_new, v_new and kv_new_dtype. */
struct pkv_attention_params_v1 {
    uint32_t struct_size;
    const pkv_seq *seqs;
    uint32_t n_seqs, layer, q_len, n_q_heads;
    float scale;
    pkv_dtype q_dtype;
};
const pkv_abi_struct pkv_abi_attention_params = {"pkv_attention_params", "pkv_attention_params_default()", 2,
                                                 {sizeof(struct pkv_attention_params_v1), sizeof(pkv_attention_params)}};
const pkv_abi_struct pkv_abi_append_params = {"pkv_append_params", "pkv_append_params_default()", 1,
                                              {sizeof(pkv_append_params)}};
const pkv_abi_struct pkv_abi_cache_stats = {"pkv_cache_stats", "s.struct_size = sizeof s", 1,
                                            {sizeof(pkv_cache_stats)}};
const pkv_abi_struct pkv_abi_device_info = {"pkv_device_info", "d.struct_size = sizeof d", 1,
                                            {sizeof(pkv_device_info)}};

uint32_t pkv_abi_size_of(const void *app_struct)
{
    uint32_t size;
    memcpy(&size, app_struct, sizeof size);
    return size;
}

int pkv_abi_size_known(const pkv_abi_struct *s, uint32_t size, char *why, size_t why_len)
{
    for (uint32_t i = 0; i < s->n_sizes; i++)
        if (size == s->sizes[i]) return 0;
    if (size == 0) {
        snprintf(why, why_len, "%s.struct_size is 0: set it with %s", s->name, s->how);
        return -1;
    }
    char known[96] = "";
    for (uint32_t i = 0, used = 0; i < s->n_sizes && used < sizeof known; i++)
        used += (uint32_t)snprintf(known + used, sizeof known - used, "%s%u", i ? ", " : "", s->sizes[i]);
    snprintf(why, why_len,
             "%s.struct_size is %u, a size this library (patternkv %s) does not know (it knows %s): was the "
             "application built against another patternkv.h?",
             s->name, size, PKV_VERSION_STRING, known);
    return -1;
}

int pkv_abi_copy_in(const pkv_abi_struct *s, const void *src, const void *defaults, void *dst, char *why,
                    size_t why_len)
{
    uint32_t size = pkv_abi_size_of(src), full = s->sizes[s->n_sizes - 1];
    if (pkv_abi_size_known(s, size, why, why_len)) return -1;
    memcpy(dst, defaults, full);
    memcpy(dst, src, size);
    memcpy(dst, &full, sizeof full);
    return 0;
}

pkv_status pkv_abi_read(const pkv_context *ctx, const pkv_abi_struct *s, const void *src, const void *defaults,
                        void *dst)
{
    char why[256];
    return pkv_abi_copy_in(s, src, defaults, dst, why, sizeof why) ? pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "%s", why)
                                                                   : PKV_OK;
}

pkv_status pkv_abi_write(const pkv_context *ctx, const pkv_abi_struct *s, const void *src, void *dst)
{
    char why[256];
    uint32_t size = pkv_abi_size_of(dst);
    if (pkv_abi_size_known(s, size, why, sizeof why)) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "%s", why);
    memcpy(dst, src, size);
    memcpy(dst, &size, sizeof size);
    return PKV_OK;
}

pkv_status pkv_abi_init(const pkv_abi_struct *s, const void *defaults, void *dst, size_t struct_size)
{
    char why[256];
    if (!dst) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s init: null pointer", s->name);
    uint32_t size = struct_size > UINT32_MAX ? 0 : (uint32_t)struct_size;
    if (size < sizeof(uint32_t) || pkv_abi_size_known(s, size, why, sizeof why)) {
        if (size >= sizeof(uint32_t)) {
            memset(dst, 0, size);
            memcpy(dst, &size, sizeof size);
        }
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s", size < sizeof(uint32_t) ? "struct_size too small" : why);
    }
    memcpy(dst, defaults, size);
    memcpy(dst, &size, sizeof size);
    return PKV_OK;
}
