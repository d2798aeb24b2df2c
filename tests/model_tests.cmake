# Tests on the trained tiny model and its KV fixture (data/tinyllm), included by tests/CMakeLists.txt.
if(NOT CMOCKA_LIBRARY)
  find_library(CMOCKA_LIBRARY cmocka REQUIRED)
  find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)
endif()

set(PKV_TINYLLM_DIR ${PROJECT_SOURCE_DIR}/data/tinyllm)

# Fidelity on real KV through the library: PATTERN vs DIRECT at 2 bits, against fp64 references.
add_executable(test_model_kv ${CMAKE_CURRENT_LIST_DIR}/test_model_kv.c ${CMAKE_CURRENT_LIST_DIR}/test_model_fixture.c)
target_link_libraries(test_model_kv PRIVATE pkv_testutil pkv_cli_support)
target_compile_definitions(test_model_kv PRIVATE PKV_FIXTURE_PATH="${PKV_TINYLLM_DIR}/kv_fixture.safetensors")
add_test(NAME test_model_kv COMMAND test_model_kv)
set_tests_properties(test_model_kv PROPERTIES ENVIRONMENT "PKV_TEST_BACKEND=cpu" TIMEOUT 600 LABELS "cpu;model")

# The C forward pass of the llama2.c checkpoint against PyTorch's q, k, v in the fixture.
add_executable(test_model_forward ${CMAKE_CURRENT_LIST_DIR}/test_model_forward.c
               ${CMAKE_CURRENT_LIST_DIR}/test_model_fixture.c)
target_link_libraries(test_model_forward PRIVATE pkv_model pkv_testutil)
target_compile_definitions(test_model_forward PRIVATE _POSIX_C_SOURCE=200809L
  PKV_FIXTURE_PATH="${PKV_TINYLLM_DIR}/kv_fixture.safetensors"
  PKV_MODEL_PATH="${PKV_TINYLLM_DIR}/model.bin" PKV_TEXT_PATH="${PKV_TINYLLM_DIR}/heldout.txt")
add_test(NAME test_model_forward COMMAND test_model_forward)
set_tests_properties(test_model_forward PROPERTIES TIMEOUT 300 LABELS "cpu;model")

# pkv eval-model in process: JSON report, argument errors, 4-bit PATTERN within 0.5% of FP16.
add_executable(test_model_eval ${CMAKE_CURRENT_LIST_DIR}/test_model_eval.c ${CMAKE_CURRENT_LIST_DIR}/test_cli_json.c)
target_include_directories(test_model_eval PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(test_model_eval PRIVATE pkv_cli_core pkv_testutil)
target_compile_definitions(test_model_eval PRIVATE _POSIX_C_SOURCE=200809L
  PKV_MODEL_PATH="${PKV_TINYLLM_DIR}/model.bin" PKV_TEXT_PATH="${PKV_TINYLLM_DIR}/heldout.txt")
add_test(NAME test_model_eval COMMAND test_model_eval)
set_tests_properties(test_model_eval PROPERTIES ENVIRONMENT "PKV_TEST_BACKEND=cpu" TIMEOUT 900 LABELS "cpu;model")

# Vocabularies beyond 256 bytes: tokenizer.bin, BPE, a separate classifier, texts longer than seq_len.
add_executable(test_model_tokenizer ${CMAKE_CURRENT_LIST_DIR}/test_model_tokenizer.c
               ${CMAKE_CURRENT_LIST_DIR}/test_cli_json.c)
target_include_directories(test_model_tokenizer PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(test_model_tokenizer PRIVATE pkv_model pkv_testutil)
target_compile_definitions(test_model_tokenizer PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
add_test(NAME test_model_tokenizer COMMAND test_model_tokenizer)
set_tests_properties(test_model_tokenizer PROPERTIES TIMEOUT 300 LABELS "cpu;model")

# The fixture fidelity test again on each GPU backend (fails, never skips, when the backend does not start).
if(PKV_WITH_VULKAN)
  add_test(NAME test_model_kv_vulkan COMMAND test_model_kv)
  set_tests_properties(test_model_kv_vulkan PROPERTIES ENVIRONMENT "PKV_TEST_BACKEND=vulkan" TIMEOUT 600
                       LABELS "vulkan;model")
endif()
if(PKV_WITH_OPENCL)
  add_test(NAME test_model_kv_opencl COMMAND test_model_kv)
  set_tests_properties(test_model_kv_opencl PROPERTIES ENVIRONMENT "PKV_TEST_BACKEND=opencl" TIMEOUT 600
                       LABELS "opencl;model")
endif()

# llama2.c version-2 (Q8_0) checkpoints: the reader against an fp64 dequantization, broken files, and
# the committed second model (data/tinyllm2/model.bin).
add_executable(test_model_q8 ${CMAKE_CURRENT_LIST_DIR}/test_model_q8.c)
target_link_libraries(test_model_q8 PRIVATE pkv_model pkv_testutil)
target_compile_definitions(test_model_q8 PRIVATE _POSIX_C_SOURCE=200809L
  PKV_MODEL2_PATH="${PROJECT_SOURCE_DIR}/data/tinyllm2/model.bin")
add_test(NAME test_model_q8 COMMAND test_model_q8)
set_tests_properties(test_model_q8 PROPERTIES TIMEOUT 300 LABELS "cpu;model")
