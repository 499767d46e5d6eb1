#!/usr/bin/env bash
# Installs the aarch64 cross toolchain that `npm run prebuilds` uses for linux-arm64 (Debian's
# g++-aarch64-linux-gnu), plus cmake and the native compiler for linux-x64. Idempotent: does
# nothing when everything is already there. Non-interactive, so CI can run it unattended.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
# binutils-aarch64-linux-gnu comes with the compiler; readelf (for the glibc-floor check) is the
# host's binutils, which reads any architecture's ELF files.
command -v readelf >/dev/null 2>&1 || missing+=(binutils)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-cross-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
# apt's own lock wait and network timeouts keep this bounded on a slow mirror.
timeout 600 apt-get update -qq
timeout 1200 apt-get install -y -qq --no-install-recommends \
  -o DPkg::Lock::Timeout=120 -o Acquire::http::Timeout=60 "${missing[@]}" >/dev/null
