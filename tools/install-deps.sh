#!/usr/bin/env bash
# Installs everything forkvm needs from Debian 12 packages. Idempotent: when every package is
# already installed it returns at once without touching apt.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries
  libboost-dev libssl-dev zlib1g-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # the vCPU and device threads' system-call filters (base/thread_filter.hpp)
  libseccomp-dev
  # guest image: kernel sources and their build needs, busybox for the initramfs, cpio for tests
  linux-source-6.1 flex bison libelf-dev bc xz-utils busybox-static cpio kmod
  # the built-in Debian root filesystem (tools/rootfs/build.sh)
  mmdebstrap e2fsprogs
  # kvm-lab (real KVM inside QEMU-TCG) and the QEMU reference in forkvm-bench
  qemu-system-x86
  # kvm-lab: backtraces of a test that hangs inside L1
  gdb
  # tools/net/forkvm-netns: namespaces and TAPs for virtio-net (iptables for its --uplink NAT)
  iproute2 iptables
  # tools/test-sanitizers.sh: Clang with its sanitizer and libFuzzer runtimes
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[install-deps] all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "[install-deps] missing packages: ${missing[*]}; run as root (or with sudo)" >&2
  exit 1
fi
echo "[install-deps] installing ${#missing[@]} packages: ${missing[*]}"
echo "[install-deps] apt-get update ..."
apt-get update -q 2>&1 | tail -n 1
echo "[install-deps] apt-get install (this takes a few minutes on a fresh machine) ..."
# -o Dpkg::Progress-Fancy gives one line per step instead of a silent terminal.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Progress-Fancy=0 "${missing[@]}" 2>&1 | grep -E '^(Setting up|Unpacking|Get:|E:)' \
  | awk '{ n++; if (n % 20 == 1 || /^E:/) print "[install-deps]   " $0 } END { print "[install-deps] " n " steps done" }'
# grep/awk swallow apt's exit status: check the result explicitly.
for p in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || { echo "[install-deps] error: $p did not install" >&2; exit 1; }
done
echo "[install-deps] done"
