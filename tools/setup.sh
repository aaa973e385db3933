#!/usr/bin/env bash
# The README's first command: installs what forkvm needs, builds it, and runs one command in a
# transient sandbox on the built-in guest image (`forkvm run`: boot, agent over vsock, exec). Where the host cannot run a Linux guest on /dev/kvm (no
# VMX/SVM), the boot runs inside kvm-lab (tools/kvm-lab/README.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
"$top/tools/build.sh" "$top/build"
echo "[setup] running a command in a sandbox on the built-in guest image: forkvm run -- sh -c ..."
"$top/tools/kvm-lab/run-tier" e2e "$top/build/tools/cli/forkvm" run -- sh -c \
  'echo "hello from $(uname -sr) in a forkvm sandbox ($(nproc) vCPU)"'
