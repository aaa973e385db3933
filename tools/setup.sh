#!/usr/bin/env bash
# The README's first command: installs what forkvm needs, builds it, and runs one command in a
# transient sandbox on the built-in guest image (`forkvm run`: boot on the Debian root filesystem,
# agent over vsock, exec of python3). Where the host cannot run a Linux guest on /dev/kvm (no
# VMX/SVM), the boot runs inside kvm-lab (tools/kvm-lab/README.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
"$top/tools/build.sh" "$top/build"
echo "[setup] running python3 in a sandbox on the built-in guest image (Debian 12 root filesystem): forkvm run -- python3 -c ..."
"$top/tools/kvm-lab/run-tier" e2e "$top/build/tools/cli/forkvm" run -- python3 -c \
  'import os, platform; u = os.uname(); print(f"hello from Python {platform.python_version()} on {u.sysname} {u.release} in a forkvm sandbox ({os.cpu_count()} vCPU)")'
