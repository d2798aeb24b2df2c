# Tests of the pkv command-line tool (bench/pkv), included by tests/CMakeLists.txt.
if(NOT CMOCKA_LIBRARY)
  find_library(CMOCKA_LIBRARY cmocka REQUIRED)
  find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)
endif()

foreach(t test_cli_args test_cli_loaders test_cli_bench)
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c ${CMAKE_CURRENT_LIST_DIR}/test_cli_json.c)
  target_include_directories(${t} PRIVATE ${CMOCKA_INCLUDE_DIR} ${CMAKE_CURRENT_LIST_DIR})
  target_compile_definitions(${t} PRIVATE _POSIX_C_SOURCE=200809L)
  target_link_libraries(${t} PRIVATE pkv_cli_core ${CMOCKA_LIBRARY} m)
endforeach()

add_test(NAME test_cli_args COMMAND test_cli_args)
add_test(NAME test_cli_loaders COMMAND test_cli_loaders)
add_test(NAME test_cli_bench COMMAND test_cli_bench)
set_tests_properties(test_cli_args test_cli_loaders PROPERTIES TIMEOUT 120)
set_tests_properties(test_cli_bench PROPERTIES ENVIRONMENT "PKV_BACKEND=cpu" TIMEOUT 600)

# The pkv binary itself: exit status of the commands a user runs first.
add_test(NAME test_cli_version COMMAND pkv version)
add_test(NAME test_cli_devices COMMAND pkv devices --verbose)
add_test(NAME test_cli_bad_command COMMAND pkv no-such-command)
set_tests_properties(test_cli_bad_command PROPERTIES WILL_FAIL TRUE)

# A short bench run on each GPU backend: PKV_BACKEND selects it, and the run fails (never skips)
# when that backend does not start.
if(PKV_WITH_VULKAN)
  add_test(NAME test_cli_bench_vulkan COMMAND test_cli_bench)
  set_tests_properties(test_cli_bench_vulkan PROPERTIES ENVIRONMENT "PKV_BACKEND=vulkan" TIMEOUT 600)
endif()
if(PKV_WITH_OPENCL)
  add_test(NAME test_cli_bench_opencl COMMAND test_cli_bench)
  set_tests_properties(test_cli_bench_opencl PROPERTIES ENVIRONMENT "PKV_BACKEND=opencl;PKV_OPENCL_BUILD_OPTIONS=-cl-opt-disable"
                       TIMEOUT 600)
endif()
