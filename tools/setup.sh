#!/usr/bin/env bash
# The README's first command: installs what forkvm needs, builds it, and boots the built-in
# guest image once (`forkvm boot`). Where the host cannot run a Linux guest on /dev/kvm (no
# VMX/SVM), the boot runs inside kvm-lab (tools/kvm-lab/README.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
"$top/tools/build.sh" "$top/build"
echo "[setup] booting the built-in guest image: forkvm boot"
"$top/tools/kvm-lab/run-tier" e2e "$top/build/tools/cli/forkvm" boot
