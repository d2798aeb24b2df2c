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

# Recorded calls in an application's command buffer (engine mode) against the synchronous ones.
pkv_add_test(test_vulkan_record SOURCES test_vulkan_record.c)
target_include_directories(test_vulkan_record PRIVATE ${PROJECT_SOURCE_DIR}/src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
add_test(NAME test_vulkan_record COMMAND test_vulkan_record)
set_tests_properties(test_vulkan_record PROPERTIES TIMEOUT 300 ENVIRONMENT "${PKV_VK_TEST_ENV}" LABELS vulkan)
