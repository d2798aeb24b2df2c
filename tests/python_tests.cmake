# The Python module (python/patternkv) over the shared library, tested with an interpreter that has
# numpy (label "python"; Debian: python3-numpy). -DPKV_PYTHON=/path/to/python3 picks the interpreter;
# otherwise the first of `python3` on PATH and /usr/bin/python3 that imports numpy. Without one the
# test fails under CI=true and skips elsewhere. Not registered in a sanitizer build (the interpreter
# would have to preload the sanitizer runtime).
if(PKV_SANITIZE)
  return()
endif()

if(NOT PKV_PYTHON)
  find_program(pkv_python_on_path NAMES python3 NO_CACHE)
  foreach(candidate ${pkv_python_on_path} /usr/bin/python3)
    if(EXISTS "${candidate}")
      execute_process(COMMAND "${candidate}" -c "import numpy" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
      if(rc EQUAL 0)
        set(PKV_PYTHON "${candidate}" CACHE FILEPATH "Python interpreter with numpy for the Python module's test")
        break()
      endif()
    endif()
  endforeach()
endif()

# Sizes, offsets and enum values as the C compiler sees them, for the ctypes mirrors to be checked against.
add_executable(pkv_abi_dump ${CMAKE_CURRENT_LIST_DIR}/python/abi_dump.c)
target_include_directories(pkv_abi_dump PRIVATE ${PROJECT_SOURCE_DIR}/include)

if(PKV_PYTHON)
  message(STATUS "PatternKV Python test: ${PKV_PYTHON}")
  add_test(NAME test_python COMMAND ${PKV_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/python/test_patternkv.py)
  set_tests_properties(test_python PROPERTIES TIMEOUT 600 LABELS python SKIP_RETURN_CODE 77 ENVIRONMENT
    "PATTERNKV_LIBRARY=$<TARGET_FILE:patternkv>;PKV_ABI_DUMP=$<TARGET_FILE:pkv_abi_dump>;PYTHONPATH=${PROJECT_SOURCE_DIR}/python;PKV_TEST_BACKEND=cpu;PYTHONDONTWRITEBYTECODE=1")
else()
  message(STATUS "PatternKV Python test: no python3 with numpy found (Debian: apt-get install python3-numpy)")
  add_test(NAME test_python COMMAND sh -c
    "echo 'no python3 with numpy was found at configure time (Debian: apt-get install python3-numpy)'; [ \"$CI\" = true ] && exit 1; exit 77")
  set_tests_properties(test_python PROPERTIES LABELS python SKIP_RETURN_CODE 77)
endif()
