# cmake --install: headers, the static and shared libraries, pkv, a pkg-config file (patternkv.pc)
# and a CMake package (find_package(patternkv CONFIG) -> patternkv::patternkv and
# patternkv::patternkv_static). Everything is relocatable: `cmake --install build --prefix DIR` works
# for any DIR.
include(CMakePackageConfigHelpers)

set(PKV_HEADERS include/patternkv.h)
if(PKV_WITH_VULKAN)
  list(APPEND PKV_HEADERS include/patternkv_vulkan.h) # needs the Vulkan headers to be used
endif()
if(PKV_WITH_OPENCL)
  list(APPEND PKV_HEADERS include/patternkv_opencl.h) # needs the OpenCL headers to be used
endif()
install(FILES ${PKV_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(TARGETS patternkv patternkv_static EXPORT patternkvTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET pkv AND PKV_BUILD_CLI)
  install(TARGETS pkv RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# pkg-config: prefix found from the .pc file's own place, so the install can move.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(PKV_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(PKV_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH pkv_up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  set(PKV_PC_PREFIX "\${pcfiledir}/${pkv_up}")
  set(PKV_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(PKV_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(PKV_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/patternkv.pc.in ${PROJECT_BINARY_DIR}/patternkv.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/patternkv.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package
set(PKV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/patternkv)
install(EXPORT patternkvTargets NAMESPACE patternkv:: DESTINATION ${PKV_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/patternkvConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/patternkvConfig.cmake INSTALL_DESTINATION ${PKV_CMAKE_DIR})
# 0.x: a new minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/patternkvConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/patternkvConfig.cmake ${PROJECT_BINARY_DIR}/patternkvConfigVersion.cmake
        DESTINATION ${PKV_CMAKE_DIR})
