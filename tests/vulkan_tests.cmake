# Vulkan backend tests (run on Mesa lavapipe in CI; label "vulkan"). In CI (CI=true) a missing
# Vulkan device fails them; elsewhere they skip saying why.
set(PKV_VK_TEST_ENV "PKV_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/pkv_cache_vk")

# Device listing, pipeline cache, out of device memory, engine integration, probes.
pkv_add_test(test_vulkan_device SOURCES test_vulkan_device.c)
target_include_directories(test_vulkan_device PRIVATE ${PROJECT_SOURCE_DIR}/src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
add_test(NAME test_vulkan_device COMMAND test_vulkan_device)
set_tests_properties(test_vulkan_device PROPERTIES TIMEOUT 900 ENVIRONMENT "${PKV_VK_TEST_ENV}" LABELS vulkan)

# The API suite, parity (test_parity_vulkan) and the missing loader (test_missing_driver_vulkan).
pkv_add_gpu_suite(vulkan "${PKV_VK_TEST_ENV}")

# Parity again with the shared-memory reductions instead of subgroup arithmetic.
add_test(NAME test_parity_vulkan_nosubgroups COMMAND test_parity)
set_tests_properties(test_parity_vulkan_nosubgroups PROPERTIES TIMEOUT 900 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_VULKAN_NO_SUBGROUPS=1;${PKV_VK_TEST_ENV}")

# Split attention (attn_logits + attn_values; the default for 2-bit and PATTERN 4-bit ops with many
# chunks, forced here for every width it serves) with the shared-memory reductions, many partials
# merged, two tokens per invocation, three chunks per workgroup and the K loop unrolled in the logits
# pass, and the values pass reading the logit records through the read-only alias (PKV_ATTN_DEBUG=512).
add_test(NAME test_attention_vulkan_split_nosubgroups COMMAND test_attention)
set_tests_properties(test_attention_vulkan_split_nosubgroups PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=1;PKV_ATTN_CHUNKS_PER_ITEM=2;PKV_ATTN_TPT=2;PKV_ATTN_LPC=3;PKV_ATTN_KUNROLL=1;PKV_ATTN_DEBUG=512;PKV_VULKAN_NO_SUBGROUPS=1;${PKV_VK_TEST_ENV}")

# Split attention's cooperative-matrix kernels (attn_split_cm.glsl) with the matrix operations emulated
# in plain GLSL (PKV_ATTN_COOPMAT=emu), as lavapipe has no cooperative matrices; with many partials.
add_test(NAME test_attention_vulkan_coopmat_emu COMMAND test_attention)
set_tests_properties(test_attention_vulkan_coopmat_emu PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_TEST_COOPMAT_EMU=1;PKV_ATTN_CHUNKS_PER_ITEM=2;${PKV_VK_TEST_ENV}")

# The one-pass kernel (attn_decode.comp; PKV_ATTN_SPLIT=0) on every shape, with each step's loads
# issued when it starts (PKV_ATTN_PREFETCH=0: the tuning fallback). The variants below are its too.
add_test(NAME test_attention_vulkan_noprefetch COMMAND test_attention)
set_tests_properties(test_attention_vulkan_noprefetch PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=0;PKV_ATTN_PREFETCH=0;${PKV_VK_TEST_ENV}")

# PATTERN's V histogram in fixed point with integer atomics (PKV_ATTN_HIST_FIXED=1; OpenCL's default).
add_test(NAME test_attention_vulkan_histfixed COMMAND test_attention)
set_tests_properties(test_attention_vulkan_histfixed PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=0;PKV_ATTN_HIST_FIXED=1;${PKV_VK_TEST_ENV}")

# Four items per workgroup (PKV_ATTN_TEAMS=4, teams meeting at every barrier) for every shape, with many
# partials merged and the shared-memory reductions.
add_test(NAME test_attention_vulkan_teams COMMAND test_attention)
set_tests_properties(test_attention_vulkan_teams PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=0;PKV_ATTN_TEAMS=4;PKV_ATTN_CHUNKS_PER_ITEM=2;PKV_VULKAN_NO_SUBGROUPS=1;${PKV_VK_TEST_ENV}")

# The one-warp attention kernel (PKV_ATTN_WARP=1, attn_warp.comp), with many partials merged and the
# fixed-point histogram, without subgroup arithmetic (lavapipe's subgroups of 8 take the subgroup
# build's multi-subgroup path in test_attention_vulkan_warp_sg).
add_test(NAME test_attention_vulkan_warp COMMAND test_attention)
set_tests_properties(test_attention_vulkan_warp PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=0;PKV_ATTN_WARP=1;PKV_ATTN_CHUNKS_PER_ITEM=2;PKV_ATTN_HIST_FIXED=1;PKV_VULKAN_NO_SUBGROUPS=1;${PKV_VK_TEST_ENV}")
add_test(NAME test_attention_vulkan_warp_sg COMMAND test_attention)
set_tests_properties(test_attention_vulkan_warp_sg PROPERTIES TIMEOUT 600 LABELS vulkan
  ENVIRONMENT "PKV_TEST_BACKEND=vulkan;PKV_ATTN_SPLIT=0;PKV_ATTN_WARP=1;PKV_ATTN_STAGE_K=1;PKV_ATTN_PREFETCH=0;${PKV_VK_TEST_ENV}")

# Recorded calls in an application's command buffer (engine mode) against the synchronous ones.
pkv_add_test(test_vulkan_record SOURCES test_vulkan_record.c)
target_include_directories(test_vulkan_record PRIVATE ${PROJECT_SOURCE_DIR}/src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
add_test(NAME test_vulkan_record COMMAND test_vulkan_record)
set_tests_properties(test_vulkan_record PROPERTIES TIMEOUT 300 ENVIRONMENT "${PKV_VK_TEST_ENV}" LABELS vulkan)
# Attention's device-resident block tables while the cache changes between recorded steps.
pkv_add_test(test_vulkan_record_tables SOURCES test_vulkan_record_tables.c)
target_include_directories(test_vulkan_record_tables PRIVATE ${PROJECT_SOURCE_DIR}/src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
add_test(NAME test_vulkan_record_tables COMMAND test_vulkan_record_tables)
set_tests_properties(test_vulkan_record_tables PROPERTIES TIMEOUT 300 ENVIRONMENT "${PKV_VK_TEST_ENV}" LABELS vulkan)

# The same under the Khronos validation layer with synchronization validation, where the layer is
# installed (Debian: vulkan-validationlayers): any validation message fails it.
find_file(PKV_VK_VALIDATION_JSON VkLayer_khronos_validation.json PATHS /usr/share/vulkan/explicit_layer.d
          /usr/local/share/vulkan/explicit_layer.d NO_DEFAULT_PATH)
if(PKV_VK_VALIDATION_JSON)
  set(pkv_vk_val_dir ${CMAKE_CURRENT_BINARY_DIR}/vk_validation)
  file(WRITE ${pkv_vk_val_dir}/vk_layer_settings.txt
       "khronos_validation.enables = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT\n"
       "khronos_validation.report_flags = error,warn\n"
       "khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\n"
       "khronos_validation.log_filename = stdout\n")
  add_test(NAME test_vulkan_record_validation COMMAND test_vulkan_record)
  set_tests_properties(test_vulkan_record_validation PROPERTIES TIMEOUT 600 LABELS vulkan
    ENVIRONMENT "VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation;VK_LAYER_SETTINGS_PATH=${pkv_vk_val_dir};${PKV_VK_TEST_ENV}"
    FAIL_REGULAR_EXPRESSION "VUID-|SYNC-|Validation Error|Validation Warning|UNASSIGNED-")
endif()
