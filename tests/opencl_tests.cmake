# OpenCL backend tests (included by tests/CMakeLists.txt). They run on whatever OpenCL device the
# ICD loader offers (PoCL in CI). With CI=true a missing device makes them fail, never skip.
# Nothing links libOpenCL: the tests reach OpenCL through the library's own run-time loader.
set(PKV_OCL_TEST_CACHE ${CMAKE_CURRENT_BINARY_DIR}/opencl_cache)

# Budget, OOM, program cache, engine integration, device listing and timing.
pkv_add_test(test_opencl_device SOURCES test_opencl_device.c)
target_include_directories(test_opencl_device PRIVATE ${PROJECT_SOURCE_DIR}/src ${PKV_OPENCL_INCLUDE_DIR})
add_test(NAME test_opencl_device COMMAND test_opencl_device)
set_tests_properties(test_opencl_device PROPERTIES
  ENVIRONMENT "PKV_TEST_CACHE_DIR=${PKV_OCL_TEST_CACHE};PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}" TIMEOUT 1200 LABELS opencl)

# The API suite, parity (test_parity_opencl) and no libOpenCL (test_missing_driver_opencl).
pkv_add_gpu_suite(opencl "PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}")
# Attention is built once per cache shape, and PoCL spends about ten seconds optimising each: the
# parity suite's thirty shapes build without optimisation (the API suite keeps it).
# (and with FP16 mode's K rows read from memory, not staged as by default, so that path stays tested)
set_property(TEST test_parity_opencl APPEND PROPERTY ENVIRONMENT "PKV_OPENCL_BUILD_OPTIONS=-cl-opt-disable;PKV_ATTN_STAGE_K=0")
set_property(TEST test_attention_opencl_shapes APPEND PROPERTY ENVIRONMENT "PKV_OPENCL_BUILD_OPTIONS=-cl-opt-disable")

# Enqueued calls on the application's queue (engine mode) against the synchronous ones.
pkv_add_test(test_opencl_record SOURCES test_opencl_record.c)
target_include_directories(test_opencl_record PRIVATE ${PROJECT_SOURCE_DIR}/src ${PKV_OPENCL_INCLUDE_DIR})
add_test(NAME test_opencl_record COMMAND test_opencl_record)
set_tests_properties(test_opencl_record PROPERTIES ENVIRONMENT "PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}" TIMEOUT 600 LABELS opencl)

# Split attention (ocl_attn_logits, ocl_attn_values) is the compressed modes' default where it serves
# and the op has many chunks for the device, so the suites above take both kernels; each forced on
# every shape of the suite, with many partial results (two chunks per item): split (PKV_ATTN_SPLIT=1)
# and the one-pass kernel (ocl_attn; PKV_ATTN_SPLIT=0).
add_test(NAME test_attention_opencl_split COMMAND test_attention)
set_tests_properties(test_attention_opencl_split PROPERTIES TIMEOUT 900 LABELS opencl
  ENVIRONMENT "PKV_TEST_BACKEND=opencl;PKV_ATTN_SPLIT=1;PKV_ATTN_CHUNKS_PER_ITEM=2;PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}")
add_test(NAME test_attention_opencl_onepass COMMAND test_attention)
set_tests_properties(test_attention_opencl_onepass PROPERTIES TIMEOUT 900 LABELS opencl
  ENVIRONMENT "PKV_TEST_BACKEND=opencl;PKV_ATTN_SPLIT=0;PKV_ATTN_CHUNKS_PER_ITEM=2;PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}")
