#!/usr/bin/env bash
# Installs what the test command needs beyond Node and a compiler, from Debian's packages:
# chromium (the web page's browser test drives it with puppeteer-core, which downloads no
# browser), haproxy (the cluster test) and systemd-analyze (the unit file's test). Does nothing
# when they are already there.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
timeout 600 apt-get update -qq
DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}"
