#!/usr/bin/env bash
# Install the Debian packages ruvector needs to build, test and run its demo,
# only those that are missing. Run as root or with sudo available.
#   scripts/setup.sh          build, test, demo
#   scripts/setup.sh bench    also the peers the benchmark compares with
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libcjson-dev libxxhash-dev zlib1g-dev libmicrohttpd-dev curl wrk
      postgresql-15 postgresql-server-dev-15
      dataset-fashion-mnist nodejs npm ca-certificates)
if [ "${1:-}" = bench ]; then
  pkgs+=(python3-hnswlib python3-numpy valgrind binutils)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere on PATH; do not fight it.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# The Node.js binding compiles against node_api.h: Debian's nodejs keeps
# it in libnode-dev (other node builds ship it beside node).
node_inc=$(dirname "$(command -v node 2>/dev/null || echo /usr/bin/node)")/../include/node
if [ ! -f "$node_inc/node_api.h" ] && [ ! -f /usr/include/node/node_api.h ]; then
  missing+=(libnode-dev)
fi
list=()
for p in "${missing[@]}"; do [ -n "$p" ] && list+=("$p"); done
if [ ${#list[@]} -gt 0 ]; then
  echo "setup: installing ${list[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${list[@]}"
fi
