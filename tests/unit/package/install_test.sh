#!/usr/bin/env bash
# Installs the built tree into a temporary prefix, then configures, builds and runs a separate
# project that finds it with find_package(forkvm). Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/forkvm/vm.hpp"
test -f "$tmp/prefix/include/forkvm/sandbox.hpp"
test -f "$tmp/prefix/lib/libforkvm-protocol.a"
test -f "$tmp/prefix/lib/cmake/forkvm/forkvmConfig.cmake"
# The built-in guest image travels with the package (when this tree built it), as real files.
for f in bzImage initramfs.cpio.gz rootfs.ext4; do
  if [ -e "$build/guest/$f" ]; then
    test -f "$tmp/prefix/share/forkvm/guest/$f" && test ! -L "$tmp/prefix/share/forkvm/guest/$f"
    cmp -s "$build/guest/$f" "$tmp/prefix/share/forkvm/guest/$f"
  fi
done
grep -q 'FORKVM_GUEST_DIR' "$tmp/prefix/lib/cmake/forkvm/forkvmConfig.cmake"
cmake -S "$src/tests/unit/package/consumer" -B "$tmp/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
out=$("$tmp/consumer/consumer")
echo "$out"
case "$out" in *"ConfigError: vcpus must be between 1 and 64"*) ;; *) exit 1 ;; esac
case "$out" in *"AgentUnreachableError: connect to agent socket"*) ;; *) exit 1 ;; esac
