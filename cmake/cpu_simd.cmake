# The CPU backend's vectorised kernels (src/cpu/cpu_simd.h): one source per instruction-set level,
# each compiled with its own target flags and chosen at run time by CPU feature detection.
# Attention sources (cpu_attn_*.c) may contract a*b+c into FMA (-ffp-contract=fast: attention is
# judged against fp64 within a tolerance); encoding sources (cpu_enc_*.c) keep the library's
# -ffp-contract=off, being bit-exact with the scalar reference and the GPU backends.
set(PKV_CPU_SIMD_DEFS "")
if(NOT PKV_CPU_SIMD)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  set(avx2_flags -mavx2 -mfma -mf16c -mbmi2)
  set(avx512_flags -mavx512f -mavx512bw -mavx512vl -mavx512dq ${avx2_flags})
  list(APPEND PKV_CORE_SOURCES src/cpu/cpu_attn_avx2.c src/cpu/cpu_attn_avx512.c src/cpu/cpu_attn_avx512vnni.c
       src/cpu/cpu_enc_avx2.c src/cpu/cpu_enc_avx512.c)
  set_source_files_properties(src/cpu/cpu_attn_avx2.c PROPERTIES COMPILE_OPTIONS "${avx2_flags};-ffp-contract=fast")
  set_source_files_properties(src/cpu/cpu_attn_avx512.c PROPERTIES COMPILE_OPTIONS "${avx512_flags};-ffp-contract=fast")
  set_source_files_properties(src/cpu/cpu_attn_avx512vnni.c PROPERTIES COMPILE_OPTIONS
                              "${avx512_flags};-mavx512vnni;-mavx512vbmi;-ffp-contract=fast")
  set_source_files_properties(src/cpu/cpu_enc_avx2.c PROPERTIES COMPILE_OPTIONS "${avx2_flags}")
  set_source_files_properties(src/cpu/cpu_enc_avx512.c PROPERTIES COMPILE_OPTIONS "${avx512_flags}")
  set(PKV_CPU_SIMD_DEFS PKV_CPU_X86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  list(APPEND PKV_CORE_SOURCES src/cpu/cpu_attn_neon.c src/cpu/cpu_enc_neon.c)
  set_source_files_properties(src/cpu/cpu_attn_neon.c PROPERTIES COMPILE_OPTIONS "-ffp-contract=fast")
  set(PKV_CPU_SIMD_DEFS PKV_CPU_NEON)
endif()
