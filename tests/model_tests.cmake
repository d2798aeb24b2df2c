# Tests on the trained tiny model and its KV fixture (data/tinyllm), included by tests/CMakeLists.txt.
if(NOT CMOCKA_LIBRARY)
  find_library(CMOCKA_LIBRARY cmocka REQUIRED)
  find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)
endif()

set(PKV_TINYLLM_DIR ${PROJECT_SOURCE_DIR}/data/tinyllm)

# Fidelity on real KV through the library: PATTERN vs DIRECT at 2 bits, against fp64 references.
add_executable(test_model_kv ${CMAKE_CURRENT_LIST_DIR}/test_model_kv.c ${CMAKE_CURRENT_LIST_DIR}/test_model_fixture.c)
target_link_libraries(test_model_kv PRIVATE pkv_testutil)
target_compile_definitions(test_model_kv PRIVATE PKV_FIXTURE_PATH="${PKV_TINYLLM_DIR}/kv_fixture.safetensors")
add_test(NAME test_model_kv COMMAND test_model_kv)
set_tests_properties(test_model_kv PROPERTIES ENVIRONMENT "PKV_TEST_BACKEND=cpu" TIMEOUT 600 LABELS "cpu;model")
