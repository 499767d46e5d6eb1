# CMake toolchain file: cross-compiles for 64-bit Arm Linux (Rockchip RK3588/RK3576 boards) with
# Debian's cross toolchain (package g++-aarch64-linux-gnu; scripts/install-cross-deps.sh).
# Used by scripts/prebuild.sh through cmake-js: --CDCMAKE_TOOLCHAIN_FILE=<this file>.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CROSS_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${CROSS_TRIPLET}-g++)

# Debian's multiarch cross packages put the target's headers and libraries under /usr/<triplet>;
# search there for libraries and headers only, never for programs (those run on the build host).
set(CMAKE_FIND_ROOT_PATH /usr/${CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
