# Vulkan backend tests (run on Mesa lavapipe in CI; label "vulkan"). In CI (CI=true) a missing
# Vulkan device fails them; elsewhere they skip saying why.
set(PKV_VK_TEST_ENV "PKV_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/pkv_cache_vk")

foreach(t test_vulkan_parity test_vulkan_device)
  pkv_add_test(${t} SOURCES ${t}.c)
  target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
  add_test(NAME ${t} COMMAND ${t})
  set_tests_properties(${t} PROPERTIES TIMEOUT 900 ENVIRONMENT "${PKV_VK_TEST_ENV}" LABELS vulkan)
endforeach()

# Parity again with the shared-memory reductions instead of subgroup arithmetic.
add_test(NAME test_vulkan_parity_nosubgroups COMMAND test_vulkan_parity)
set_tests_properties(test_vulkan_parity_nosubgroups PROPERTIES TIMEOUT 900 LABELS vulkan
  ENVIRONMENT "PKV_VULKAN_NO_SUBGROUPS=1;${PKV_VK_TEST_ENV}")

# The API suite again on the Vulkan backend.
foreach(t ${PKV_API_SUITE})
  add_test(NAME ${t}_vulkan COMMAND ${t})
  set_tests_properties(${t}_vulkan PROPERTIES TIMEOUT 900 LABELS vulkan
    ENVIRONMENT "PKV_TEST_BACKEND=vulkan;${PKV_VK_TEST_ENV}")
endforeach()
