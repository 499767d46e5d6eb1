# Portable release binaries (RKLLM_PORTABLE_BINARIES=ON, used by scripts/prebuild.sh): the addon
# and the emulated runtime load on any glibc >= RKLLM_GLIBC_FLOOR, whatever the build machine has.
#  - libstdc++ is linked statically and kept private (--exclude-libs), so no GLIBCXX_ version is
#    needed from the board. libgcc_s stays shared: the static unwinder of GCC 12 calls
#    _dl_find_object (glibc 2.35), and every glibc system has a libgcc_s old enough for us.
#  - references to glibc symbols that moved or were re-versioned after the floor are pinned to
#    their old version: a `.symver` header for the project's sources, and a copy of libstdc++.a
#    whose references were renamed the same way (objcopy --redefine-syms).
#  - the few symbols with no old version get hidden replacements (glibc-floor/compat.cc), and
#    libstdc++'s clock-wait paths are switched off (glibc-floor/compat.h).
# test/package/glibc-floor.test.ts checks the result with readelf.
set(RKLLM_GLIBC_FLOOR "2.28" CACHE STRING "Oldest glibc the portable binaries must load on")

# execute_process, stopping the configure on failure (COMMAND_ERROR_IS_FATAL needs CMake 3.19;
# Debian 11 boards have 3.18).
function(run_or_fail WHAT)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE RESULT)
  if(NOT RESULT EQUAL 0)
    message(FATAL_ERROR "portable binaries: ${WHAT} failed (${RESULT})")
  endif()
endfunction()

set(GLIBC_FLOOR_SOURCE_DIR ${CMAKE_SOURCE_DIR}/cmake/glibc-floor)
set(GLIBC_FLOOR_BINARY_DIR ${CMAKE_BINARY_DIR}/glibc-floor)
file(MAKE_DIRECTORY ${GLIBC_FLOOR_BINARY_DIR})

# The C library the linker will use (the cross toolchain's own for a cross build).
set(GLIBC_FLOOR_LIBRARIES)
foreach(LIBRARY_NAME libc.so.6 libm.so.6)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=${LIBRARY_NAME}
    OUTPUT_VARIABLE LIBRARY_PATH OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${LIBRARY_PATH}")
    message(FATAL_ERROR "portable binaries: the compiler does not know where ${LIBRARY_NAME} is")
  endif()
  list(APPEND GLIBC_FLOOR_LIBRARIES ${LIBRARY_PATH})
endforeach()

set(GLIBC_SYMVER_MAP ${GLIBC_FLOOR_BINARY_DIR}/redefine-syms.txt)
set(GLIBC_SYMVER_HEADER ${GLIBC_FLOOR_BINARY_DIR}/glibc-symver.h)
run_or_fail("listing glibc symbols to pin"
  bash ${GLIBC_FLOOR_SOURCE_DIR}/symver-map.sh ${CMAKE_NM} ${RKLLM_GLIBC_FLOOR}
  ${GLIBC_SYMVER_MAP} ${GLIBC_SYMVER_HEADER} ${GLIBC_FLOOR_LIBRARIES})

# A private copy of libstdc++.a with the same pins, found first through -L.
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.a
  OUTPUT_VARIABLE LIBSTDCXX_ARCHIVE OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${LIBSTDCXX_ARCHIVE}")
  message(FATAL_ERROR "portable binaries: no static libstdc++ for ${CMAKE_CXX_COMPILER}")
endif()
run_or_fail("pinning libstdc++.a's glibc references"
  ${CMAKE_OBJCOPY} --redefine-syms=${GLIBC_SYMVER_MAP} ${LIBSTDCXX_ARCHIVE} ${GLIBC_FLOOR_BINARY_DIR}/libstdc++.a)

add_compile_options(
  "SHELL:-include ${GLIBC_FLOOR_SOURCE_DIR}/compat.h"
  "SHELL:-include ${GLIBC_SYMVER_HEADER}")
add_link_options(-static-libstdc++ -L${GLIBC_FLOOR_BINARY_DIR} -Wl,--exclude-libs,ALL)
set(PORTABLE_COMPAT_SOURCES ${GLIBC_FLOOR_SOURCE_DIR}/compat.cc)
