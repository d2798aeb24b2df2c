# OpenCL backend tests (included by tests/CMakeLists.txt). They run on whatever OpenCL device the
# ICD loader offers (PoCL in CI). With CI=true a missing device makes them fail, never skip.
# Nothing links libOpenCL: the tests reach OpenCL through the library's own run-time loader.
set(PKV_OCL_TEST_CACHE ${CMAKE_CURRENT_BINARY_DIR}/opencl_cache)

# Parity against the CPU backend, odd shapes, fork, budget, OOM, program cache, engine integration.
pkv_add_test(test_opencl SOURCES test_opencl.c)
target_include_directories(test_opencl PRIVATE ${PROJECT_SOURCE_DIR}/src ${PKV_OPENCL_INCLUDE_DIR})
add_test(NAME test_opencl COMMAND test_opencl)
set_tests_properties(test_opencl PROPERTIES
  ENVIRONMENT "PKV_TEST_CACHE_DIR=${PKV_OCL_TEST_CACHE};PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}" TIMEOUT 1200 LABELS opencl)

# A machine without libOpenCL: the backend says why, AUTO picks another.
pkv_add_test(test_opencl_missing SOURCES test_opencl_missing.c)
add_test(NAME test_opencl_missing COMMAND test_opencl_missing)
set_tests_properties(test_opencl_missing PROPERTIES
  ENVIRONMENT "PKV_OPENCL_LIBRARY=/nonexistent/libOpenCL.so.1;PKV_BACKEND=" TIMEOUT 300 LABELS opencl)

# The lead's API suite again, on OpenCL.
foreach(t IN LISTS PKV_API_SUITE)
  if(TARGET ${t})
    add_test(NAME ${t}_opencl COMMAND ${t})
    set_tests_properties(${t}_opencl PROPERTIES
      ENVIRONMENT "PKV_TEST_BACKEND=opencl;PKV_CACHE_DIR=${PKV_OCL_TEST_CACHE}" TIMEOUT 1200 LABELS opencl)
  endif()
endforeach()
