#!/usr/bin/env bash
# The RAII layer in vmm/kvm/ is the only place allowed to issue ioctl(2) on KVM descriptors.
# Fails, naming the lines, if an ioctl call appears in any other C or C++ source of the repo. The
# exceptions: guest code that is not about KVM (the agent's kernel-RNG reseed, identity.cpp, and
# bringing the guest's loopback interface up, loopback_up.cpp, and giving a forked guest's NIC its new
# MAC, interface_mac.cpp), the host's virtio-net TAP open (devices/virtio/net/tap.cpp: TUNSETIFF,
# a TAP has no other interface), and
# kvm-lab's lab-pin.c, test infrastructure that runs inside the lab's L1, not part of forkvm.
set -euo pipefail
src=$1
hits=$(grep -rnE '\bioctl\s*\(' --include='*.cpp' --include='*.hpp' --include='*.c' --include='*.h' "$src" \
  | grep -v "^$src/vmm/kvm/" | grep -v "^$src/build" \
  | grep -v "^$src/guest-init/agent/identity.cpp:" \
  | grep -v "^$src/guest-init/loopback_up.cpp:" \
  | grep -v "^$src/devices/virtio/net/tap.cpp:" \
  | grep -v "^$src/guest-init/agent/interface_mac.cpp:" \
  | grep -v "^$src/tools/kvm-lab/lab-pin.c:" || true)
if [ -n "$hits" ]; then
  echo "ioctl( outside vmm/kvm/:"; echo "$hits"; exit 1
fi
echo "ioctl( appears only in vmm/kvm/"
