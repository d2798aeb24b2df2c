/* Prints the size of every public struct, the offset of each of its fields as this C compiler lays
 * them out, and the value of every enumerator, one "name value" a line, so that the Python test can
 * check its ctypes mirrors against them. */
#include <stddef.h>
#include <stdio.h>

#include "patternkv.h"

#define SIZE(s) printf(#s " %zu\n", sizeof(s))
#define FIELD(s, f) printf(#s "." #f " %zu\n", offsetof(s, f))
#define VALUE(e) printf(#e " %ld\n", (long)(e))

int main(void)
{
    SIZE(pkv_context_params);
    FIELD(pkv_context_params, struct_size), FIELD(pkv_context_params, backend);
    FIELD(pkv_context_params, device_index), FIELD(pkv_context_params, device_name);
    FIELD(pkv_context_params, cache_dir), FIELD(pkv_context_params, log), FIELD(pkv_context_params, log_user);
    FIELD(pkv_context_params, log_level), FIELD(pkv_context_params, n_threads);
    FIELD(pkv_context_params, vulkan_external), FIELD(pkv_context_params, opencl_external);
    FIELD(pkv_context_params, device_page_bytes), FIELD(pkv_context_params, staging_bytes);
    FIELD(pkv_context_params, host_malloc), FIELD(pkv_context_params, host_realloc);
    FIELD(pkv_context_params, host_free), FIELD(pkv_context_params, host_alloc_user);

    SIZE(pkv_device_info);
    FIELD(pkv_device_info, struct_size), FIELD(pkv_device_info, backend), FIELD(pkv_device_info, index);
    FIELD(pkv_device_info, type), FIELD(pkv_device_info, name), FIELD(pkv_device_info, driver);
    FIELD(pkv_device_info, subgroup_size), FIELD(pkv_device_info, features), FIELD(pkv_device_info, memory_bytes);

    SIZE(pkv_cache_config);
    FIELD(pkv_cache_config, struct_size), FIELD(pkv_cache_config, n_layers), FIELD(pkv_cache_config, n_kv_heads);
    FIELD(pkv_cache_config, head_dim), FIELD(pkv_cache_config, k_bits), FIELD(pkv_cache_config, v_bits);
    FIELD(pkv_cache_config, group_size), FIELD(pkv_cache_config, window), FIELD(pkv_cache_config, n_patterns);
    FIELD(pkv_cache_config, bank_capacity), FIELD(pkv_cache_config, mode), FIELD(pkv_cache_config, memory_budget);
    FIELD(pkv_cache_config, kmeans_iters), FIELD(pkv_cache_config, kmeans_tol), FIELD(pkv_cache_config, seed);
    FIELD(pkv_cache_config, k_assign), FIELD(pkv_cache_config, mining);
    FIELD(pkv_cache_config, quantizer);
    FIELD(pkv_cache_config, kmeans_sample);

    SIZE(pkv_attention_params);
    FIELD(pkv_attention_params, struct_size), FIELD(pkv_attention_params, seqs), FIELD(pkv_attention_params, n_seqs);
    FIELD(pkv_attention_params, layer), FIELD(pkv_attention_params, q_len), FIELD(pkv_attention_params, n_q_heads);
    FIELD(pkv_attention_params, scale), FIELD(pkv_attention_params, q_dtype);
    FIELD(pkv_attention_params, k_new), FIELD(pkv_attention_params, v_new), FIELD(pkv_attention_params, kv_new_dtype);

    SIZE(pkv_append_params);
    FIELD(pkv_append_params, struct_size), FIELD(pkv_append_params, seq), FIELD(pkv_append_params, first_layer);
    FIELD(pkv_append_params, n_layers), FIELD(pkv_append_params, n_tokens), FIELD(pkv_append_params, dtype);

    SIZE(pkv_cache_stats);
    FIELD(pkv_cache_stats, struct_size), FIELD(pkv_cache_stats, bytes_codes), FIELD(pkv_cache_stats, bytes_scales);
    FIELD(pkv_cache_stats, bytes_indices), FIELD(pkv_cache_stats, bytes_masks), FIELD(pkv_cache_stats, bytes_padding);
    FIELD(pkv_cache_stats, bytes_patterns), FIELD(pkv_cache_stats, bytes_window);
    FIELD(pkv_cache_stats, bytes_reserved), FIELD(pkv_cache_stats, bytes_budget), FIELD(pkv_cache_stats, bytes_free);
    FIELD(pkv_cache_stats, blocks_used), FIELD(pkv_cache_stats, blocks_shared);
    FIELD(pkv_cache_stats, tokens_stored), FIELD(pkv_cache_stats, tokens_compressed);
    FIELD(pkv_cache_stats, bits_per_element), FIELD(pkv_cache_stats, n_seqs);

    VALUE(PKV_OK), VALUE(PKV_ERR_INVALID_ARGUMENT), VALUE(PKV_ERR_INVALID_CONFIG), VALUE(PKV_ERR_NONFINITE);
    VALUE(PKV_ERR_SHAPE), VALUE(PKV_ERR_UNKNOWN_SEQUENCE), VALUE(PKV_ERR_LAYER_RANGE), VALUE(PKV_ERR_OUT_OF_BUDGET);
    VALUE(PKV_ERR_OUT_OF_DEVICE_MEMORY), VALUE(PKV_ERR_OUT_OF_HOST_MEMORY), VALUE(PKV_ERR_BACKEND_UNAVAILABLE);
    VALUE(PKV_ERR_DEVICE), VALUE(PKV_ERR_IO), VALUE(PKV_ERR_CORRUPT_FILE), VALUE(PKV_ERR_UNSUPPORTED);
    VALUE(PKV_STATUS_COUNT);
    VALUE(PKV_LOG_ERROR), VALUE(PKV_LOG_WARN), VALUE(PKV_LOG_INFO), VALUE(PKV_LOG_DEBUG);
    VALUE(PKV_BACKEND_AUTO), VALUE(PKV_BACKEND_CPU), VALUE(PKV_BACKEND_VULKAN), VALUE(PKV_BACKEND_OPENCL);
    VALUE(PKV_BACKEND_COUNT);
    VALUE(PKV_DEVICE_OTHER), VALUE(PKV_DEVICE_DISCRETE_GPU), VALUE(PKV_DEVICE_INTEGRATED_GPU);
    VALUE(PKV_DEVICE_VIRTUAL_GPU), VALUE(PKV_DEVICE_CPU);
    VALUE(PKV_FEATURE_FP16_MATH), VALUE(PKV_FEATURE_STORAGE_8BIT), VALUE(PKV_FEATURE_STORAGE_16BIT);
    VALUE(PKV_FEATURE_INT_DOT), VALUE(PKV_FEATURE_COOPERATIVE_MATRIX), VALUE(PKV_FEATURE_SUBGROUPS);
    VALUE(PKV_MODE_PATTERN), VALUE(PKV_MODE_DIRECT), VALUE(PKV_MODE_FP16);
    VALUE(PKV_F32), VALUE(PKV_F16);
    return 0;
}
