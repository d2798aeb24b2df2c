# The Vulkan backend: our loader and ops (src/vulkan), GLSL compute shaders (shaders/vulkan, with shaders/common) compiled to
# SPIR-V with glslc at build time and embedded as C arrays. No link against libvulkan: it is
# dlopen'ed at run time. Needs the Vulkan headers and glslc (or glslangValidator) to build.
# Without a GLSL compiler, -DPKV_SPIRV_DIR=<dir> embeds <name>.spv files compiled elsewhere (the
# build directory's pkv_shaders/ of a machine that has glslc).
set(PKV_SPIRV_DIR "" CACHE PATH "Prebuilt SPIR-V (<name>.spv) to embed instead of compiling the shaders")
find_path(PKV_VULKAN_INCLUDE_DIR vulkan/vulkan_core.h)
find_program(PKV_GLSLC glslc)
find_program(PKV_GLSLANG glslangValidator)
if(NOT PKV_VULKAN_INCLUDE_DIR)
  message(FATAL_ERROR "PKV_WITH_VULKAN: Vulkan headers not found (install libvulkan-dev or set -DPKV_WITH_VULKAN=OFF)")
endif()
if(NOT PKV_GLSLC AND NOT PKV_GLSLANG AND NOT PKV_SPIRV_DIR)
  message(FATAL_ERROR "PKV_WITH_VULKAN: glslc or glslangValidator not found (install glslc, give -DPKV_SPIRV_DIR=<prebuilt .spv dir>, or set -DPKV_WITH_VULKAN=OFF)")
endif()

set(PKV_SHADER_DIR ${PROJECT_SOURCE_DIR}/shaders/vulkan)
set(PKV_SHADER_COMMON_DIR ${PROJECT_SOURCE_DIR}/shaders/common)
set(PKV_SHADER_OUT ${CMAKE_CURRENT_BINARY_DIR}/pkv_shaders)
file(MAKE_DIRECTORY ${PKV_SHADER_OUT})
# Each entry is embedded as pkv_spv_<name>; a name ending in _sg is <name without _sg>.comp built
# with subgroup arithmetic (-DPKV_SUBGROUPS), used only where the device reports it; _cm adds
# cooperative matrices (-DPKV_COOPMAT); _cme emulates them (-DPKV_COOPMAT_EMU).
set(PKV_SHADERS kmeans_init kmeans_assign kmeans_partial kmeans_reduce kmeans_finish kmeans_store assign quant_search quant_block flush_centre
    attn_qc attn_decode attn_decode_sg attn_decode_cm attn_warp attn_warp_sg attn_logits attn_logits_sg attn_logits_cm attn_logits_cme attn_values attn_values_sg attn_values_cm attn_values_cme attn_merge read_bw stage_input window_write)
file(GLOB PKV_SHADER_INCLUDES ${PKV_SHADER_DIR}/*.glsl ${PKV_SHADER_COMMON_DIR}/*.h)

# SPIR-V -> C array, run by cmake -P at build time.
set(PKV_EMBED_SCRIPT ${PKV_SHADER_OUT}/embed_spirv.cmake)
file(WRITE ${PKV_EMBED_SCRIPT} [=[
file(READ "${SPV}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])" "0x\\4\\3\\2\\1u," words "${hex}")
file(WRITE "${OUT}" "/* generated from ${NAME}.comp */\n#include <stddef.h>\n#include <stdint.h>\nconst uint32_t pkv_spv_${NAME}[] = {${words}};\nconst size_t pkv_spv_${NAME}_size = ${bytes};\n")
]=])

set(PKV_SHADER_SOURCES)
set(PKV_SHADER_HEADER ${PKV_SHADER_OUT}/pkv_vk_shaders.h)
set(header "/* generated: embedded SPIR-V of the compute shaders */\n#include <stddef.h>\n#include <stdint.h>\n")
foreach(s ${PKV_SHADERS})
  set(spv ${PKV_SHADER_OUT}/${s}.spv)
  set(csrc ${PKV_SHADER_OUT}/${s}_spv.c)
  set(src ${s})
  set(defs)
  if(s MATCHES "_sg$")
    string(REGEX REPLACE "_sg$" "" src ${s})
    set(defs -DPKV_SUBGROUPS)
  elseif(s MATCHES "_cm$") # and cooperative matrices (VK_NV_cooperative_matrix), where the device has them
    string(REGEX REPLACE "_cm$" "" src ${s})
    set(defs -DPKV_SUBGROUPS -DPKV_COOPMAT)
  elseif(s MATCHES "_cme$") # the same with the matrices emulated in plain GLSL (tests, attn_split_cm.glsl)
    string(REGEX REPLACE "_cme$" "" src ${s})
    set(defs -DPKV_SUBGROUPS -DPKV_COOPMAT -DPKV_COOPMAT_EMU)
  endif()
  if(PKV_SPIRV_DIR)
    set(compile ${CMAKE_COMMAND} -E copy ${PKV_SPIRV_DIR}/${s}.spv ${spv})
  elseif(PKV_GLSLC)
    set(compile ${PKV_GLSLC} --target-env=vulkan1.1 -O ${defs} -I ${PKV_SHADER_DIR} -I ${PKV_SHADER_COMMON_DIR} -o ${spv} ${PKV_SHADER_DIR}/${src}.comp)
  else()
    set(compile ${PKV_GLSLANG} -V --target-env vulkan1.1 ${defs} -I${PKV_SHADER_DIR} -I${PKV_SHADER_COMMON_DIR} -o ${spv} ${PKV_SHADER_DIR}/${src}.comp)
  endif()
  add_custom_command(OUTPUT ${csrc}
    COMMAND ${compile}
    COMMAND ${CMAKE_COMMAND} -DSPV=${spv} -DOUT=${csrc} -DNAME=${s} -P ${PKV_EMBED_SCRIPT}
    DEPENDS ${PKV_SHADER_DIR}/${src}.comp ${PKV_SHADER_INCLUDES} ${PKV_EMBED_SCRIPT}
    COMMENT "SPIR-V of ${s}.comp (embedded)"
    VERBATIM)
  list(APPEND PKV_SHADER_SOURCES ${csrc})
  string(APPEND header "extern const uint32_t pkv_spv_${s}[];\nextern const size_t pkv_spv_${s}_size;\n")
endforeach()
file(WRITE ${PKV_SHADER_HEADER}.in "${header}")
configure_file(${PKV_SHADER_HEADER}.in ${PKV_SHADER_HEADER} COPYONLY)

target_sources(patternkv_obj PRIVATE
  src/vulkan/vk_loader.c
  src/vulkan/vk_device.c
  src/vulkan/vk_memory.c
  src/vulkan/vk_pipelines.c
  src/vulkan/vk_ops.c
  src/vulkan/vk_backend.c
  src/vulkan/vk_bench.c
  src/vulkan/vk_external_io.c
  src/vulkan/vk_stage.c
  src/vulkan/vk_tables.c
  src/vulkan/vk_bench_step.c
  ${PKV_SHADER_SOURCES})
target_include_directories(patternkv_obj PRIVATE ${PKV_SHADER_OUT} src/vulkan ${PKV_VULKAN_INCLUDE_DIR})
target_compile_definitions(patternkv_obj PUBLIC PKV_WITH_VULKAN)
string(APPEND PKV_BACKENDS_EXTRA " vulkan")
