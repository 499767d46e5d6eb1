#!/usr/bin/env bash
# Proves the linux-arm64 prebuilds on this x86-64 machine, under qemu user-mode emulation with
# Debian's own arm64 Node.js (bookworm: Node 18):
#   1. the addon loads from prebuilds/linux-arm64/, the emulated runtime of each ABI opens, and a
#      streamed "count to 20" answers exactly "1, 2, ..., 20" (scripts/runtime-check.js);
#   2. `bin/rkllm-serve --runtime sim` starts and answers one request over TCP
#      (scripts/server-tcp-check.js, from the build machine's node).
# Installs qemu-user-static with apt-get; Debian's arm64 nodejs and its libraries are downloaded
# with apt-get download and unpacked with dpkg -x into a cached folder (nothing is installed for
# arm64). Does not rely on binfmt_misc: every arm64 program is started through qemu-aarch64-static.
# Needs: npm run build:ts (dist/) and npm run prebuilds (prebuilds/linux-arm64/).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."
project_root=$PWD

arm64_root="${RKLLM_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/rkllm-serve-arm64/root}"
apt_options=(-o DPkg::Lock::Timeout=120 -o Acquire::http::Timeout=60)
step_started=$SECONDS

note() { echo "arm64-qemu-check: $*"; }
fail() { echo "arm64-qemu-check: FAILED: $*" >&2; exit 1; }

for needed in dist/lib/index.js dist/lib/cli/main.js prebuilds/linux-arm64/rkllm_serve.node \
              prebuilds/linux-arm64/librkllmrt-emulated-1.2.so prebuilds/linux-arm64/librkllmrt-emulated-1.3.so \
              prebuilds/linux-arm64/librkllmrt-emulated-1.3.1.so; do
  [ -e "$needed" ] || fail "$needed is missing: run npm run build:ts and npm run prebuilds first"
done

# ---- qemu and the arm64 package lists ----
apt_updated=no
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  timeout 600 apt-get update -qq && apt_updated=yes
  timeout 900 apt-get install -y -qq --no-install-recommends "${apt_options[@]}" qemu-user-static >/dev/null
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  # Lets apt see arm64 packages (to download them); nothing arm64 is installed on this machine.
  dpkg --add-architecture arm64
  apt_updated=no
fi

# ---- Debian's arm64 nodejs and its libraries, unpacked into $arm64_root (cached) ----
if [ "$apt_updated" = no ] && ! apt-cache policy nodejs:arm64 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  timeout 600 apt-get update -qq
fi
node_version=$(apt-cache policy nodejs:arm64 | awk '/Candidate:/ { print $2 }')
[ -n "$node_version" ] && [ "$node_version" != "(none)" ] || fail "apt knows no nodejs:arm64"
stamp="$arm64_root/.rkllm-serve-nodejs-version"
if [ "$(cat "$stamp" 2>/dev/null)" != "$node_version" ]; then
  note "unpacking Debian's nodejs:arm64 $node_version and its libraries into $arm64_root"
  rm -rf "$arm64_root"
  mkdir -p "$arm64_root"
  download_dir=$(mktemp -d)
  trap 'rm -rf "$download_dir"' EXIT
  # Every arm64 package nodejs needs at run time, found recursively (Depends and Pre-Depends
  # only), plus the architecture-independent node-* packages: Debian's node reads some of its
  # own built-in modules (cjs-module-lexer, undici, acorn) from /usr/share/nodejs at start-up.
  mapfile -t packages < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances nodejs:arm64 | grep -E '^([a-z0-9][^ ]*:arm64|node-[^ :]+)$' | sort -u)
  [ ${#packages[@]} -gt 0 ] || fail "could not list the dependencies of nodejs:arm64"
  # apt's download sandbox user cannot write into a root-only temporary folder: download as root.
  (cd "$download_dir" && timeout 900 apt-get download -qq "${apt_options[@]}" -o APT::Sandbox::User=root "${packages[@]}")
  for deb in "$download_dir"/*.deb; do
    dpkg -x "$deb" "$arm64_root"
  done
  echo "$node_version" > "$stamp"
  rm -rf "$download_dir"
  trap - EXIT
fi
[ -x "$arm64_root/usr/bin/node" ] || fail "no usr/bin/node in $arm64_root"
note "setup took $((SECONDS - step_started)) s"

# qemu's -L points the guest's dynamic loader and its file lookups at the unpacked root; the
# library path covers both the /lib and /usr/lib halves of a root that is not usr-merged.
guest_library_path="$arm64_root/lib/aarch64-linux-gnu:$arm64_root/usr/lib/aarch64-linux-gnu"
arm64_node=(env "LD_LIBRARY_PATH=$guest_library_path" qemu-aarch64-static -L "$arm64_root" "$arm64_root/usr/bin/node")

guest_version=$(timeout 120 "${arm64_node[@]}" -p 'process.version + " " + process.arch')
note "Debian's arm64 node under qemu: $guest_version (the package asks for Node >= 20; the addon needs only N-API 8)"

# ---- 1. the addon and the emulated runtime of each ABI ----
step_started=$SECONDS
timeout 600 "${arm64_node[@]}" scripts/runtime-check.js "$project_root/prebuilds/linux-arm64" \
  || fail "the arm64 addon or emulated runtime did not work under qemu"
note "runtime check took $((SECONDS - step_started)) s"

# ---- 2. the server, answering over TCP ----
step_started=$SECONDS
server_log=$(mktemp)
# Without binfmt_misc the server cannot start its model hosts' arm64 Node itself: it is told how.
RKLLM_SERVE_HOST_NODE=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' "${arm64_node[@]}")
export RKLLM_SERVE_HOST_NODE
timeout 300 "${arm64_node[@]}" bin/rkllm-serve --runtime sim --model sim:rk3588-qwen2.5-1.5b --host 127.0.0.1 --tcp-port 0 \
  --disable-stdio --disable-udp --disable-http --disable-ws </dev/null 2>"$server_log" >/dev/null &
server_pid=$!
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -f "$server_log"
}
trap stop_server EXIT
if ! node scripts/server-tcp-check.js "$server_log" 180000; then
  cat "$server_log" >&2
  fail "bin/rkllm-serve under qemu did not answer over TCP"
fi
note "server check took $((SECONDS - step_started)) s"
note "passed"
