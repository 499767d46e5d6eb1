#!/usr/bin/env bash
# Builds the npm package's prebuilt binaries: the addon and the emulated runtime of each ABI,
# for linux-x64 (native) and linux-arm64 (cross-compiled with Debian's aarch64 toolchain through
# cmake/aarch64-linux-gnu.cmake), as portable binaries (glibc >= 2.28: docs/install.md).
# Output: prebuilds/<target>/{rkllm_serve.node,librkllmrt-emulated-{1.2,1.3,1.3.1}.so}
# Build trees: build/prebuild-<target> (one per target, so rebuilds are incremental).
#
# usage: scripts/prebuild.sh [linux-x64] [linux-arm64]   (npm run prebuilds [-- TARGET...])
#   default: both on an x86-64 build machine; linux-arm64 alone on an arm64 one (a board), since
#   only the arm64-from-x86-64 cross build is set up. Run only when asked for: by name, by
#   `npm pack`/`npm publish` (the prepack script names both targets) and by CI before the package
#   tests; never by `npm run build`. An unchanged tree rebuilds in under a second.
# Offline: cmake-js takes the Node-API headers from the node-api-headers package (package.json
# "binary.napi_versions"), never from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
project_root=$PWD

case "$(uname -m)" in
  x86_64) host_target=linux-x64 ;;
  aarch64) host_target=linux-arm64 ;;
  *) echo "prebuild: no prebuilds are made on $(uname -m) (build from source: npm run build:native)" >&2; exit 1 ;;
esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  if [ "$host_target" = linux-x64 ]; then targets=(linux-x64 linux-arm64); else targets=("$host_target"); fi
fi

artifacts=(rkllm_serve.node librkllmrt-emulated-1.2.so librkllmrt-emulated-1.3.so librkllmrt-emulated-1.3.1.so)
parallel_jobs=$(nproc)

for target in "${targets[@]}"; do
  case "$target" in
    linux-x64) node_arch=x64 ;;
    linux-arm64) node_arch=arm64 ;;
    *) echo "prebuild: unknown target '$target' (linux-x64 or linux-arm64)" >&2; exit 2 ;;
  esac
  if [ "$target" = "$host_target" ]; then
    cross_options=()
    strip_tool=strip
  elif [ "$target" = linux-arm64 ]; then
    # Without root the toolchain cannot be installed here; that script says what to install.
    bash scripts/install-cross-deps.sh || exit 1
    cross_options=("--CDCMAKE_TOOLCHAIN_FILE=$project_root/cmake/aarch64-linux-gnu.cmake")
    strip_tool=aarch64-linux-gnu-strip
  else
    echo "prebuild: cannot cross-compile $target on $host_target" >&2
    exit 2
  fi

  build_dir="build/prebuild-$target"
  output_dir="prebuilds/$target"
  mkdir -p "$build_dir"
  started=$SECONDS
  echo "prebuild: $target in $build_dir"
  # Bounded: a from-scratch build takes well under a minute per target on two cores.
  timeout 1200 node_modules/.bin/cmake-js compile \
    --out "$build_dir" --arch "$node_arch" --parallel "$parallel_jobs" \
    --CDCMAKE_BUILD_TYPE=Release --CDRKLLM_PORTABLE_BINARIES=ON \
    "${cross_options[@]}" > "$build_dir.log" 2>&1 || {
    echo "prebuild: $target failed; the last lines of $build_dir.log:" >&2
    tail -n 40 "$build_dir.log" >&2
    exit 1
  }

  # Replace the folder whole, so nothing stale from an older build survives.
  rm -rf "$output_dir"
  mkdir -p "$output_dir"
  for artifact in "${artifacts[@]}"; do
    cp "$build_dir/Release/$artifact" "$output_dir/$artifact"
    # Debug symbols stay in the build tree; the package carries only what loading needs.
    "$strip_tool" --strip-unneeded "$output_dir/$artifact"
  done
  echo "prebuild: $target done in $((SECONDS - started)) s -> $output_dir"
done
