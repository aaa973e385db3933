#!/usr/bin/env bash
# Configures and builds forkvm, the guest agent, the built-in initramfs and (through the
# guest-kernel target, cached outside the repo) the guest kernel.
# Usage: tools/build.sh [BUILD_DIR]   (default: build)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
echo "[build] configuring $build"
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
echo "[build] compiling (the first build also compiles the guest kernel: ~8 min on 2 cores)"
cmake --build "$build" -j "$(nproc)"
echo "[build] done"
