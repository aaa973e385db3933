#!/usr/bin/env bash
# Boots the built-in guest image under QEMU (TCG, no KVM needed) and checks the agent's
# console protocol: the ready line, forkvm.run exit statuses, and the fatal path.
#
# Usage: guest-init/qemu-smoke.sh [BUILD_DIR]     (default: build)
# Needs qemu-system-x86_64; uses BUILD_DIR/guest/{bzImage,initramfs.cpio.gz}. The microvm
# machine has no i8042, so the guest resets with reboot=t and -no-reboot makes QEMU exit.
set -euo pipefail

build=${1:-build}
kernel=$build/guest/bzImage
initrd=$build/guest/initramfs.cpio.gz
for f in "$kernel" "$initrd"; do [ -e "$f" ] || { echo "missing $f (build first)" >&2; exit 2; }; done

failures=0
boot() {  # boot SMP EXTRA_CMDLINE -> console output on stdout
  timeout 120 qemu-system-x86_64 -M microvm,rtc=off -accel tcg -cpu max -m 256 -smp "$1" \
    -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 reboot=t panic=-1 quiet $2" </dev/null 2>&1 | tr -d '\r'
}
expect() {  # expect NAME OUTPUT GREP_PATTERN
  if grep -qE -- "$3" <<<"$2"; then echo "ok   $1"; else
    echo "FAIL $1: no line matching '$3' in:"; sed 's/^/     | /' <<<"$2"; failures=$((failures + 1)); fi
}

out=$(boot 2 "forkvm.after_ready=poweroff")
expect "ready line" "$out" '^forkvm-agent: ready cpus=2 mem_total_kib=[0-9]+$'
expect "clean power-off" "$out" '^forkvm-agent: powering off \(status 0\)$'

out=$(boot 1 "forkvm.run=echo%20hello%20from%20\$(uname%20-s);%20exit%207")
expect "run output" "$out" '^hello from Linux$'
expect "run status" "$out" '^forkvm-agent: powering off \(status 7\)$'

out=$(boot 1 'forkvm.run="cat /proc/self/status | grep -c ^Pid"')
expect "quoted run" "$out" '^forkvm-agent: forkvm.run exited with status 0$'

out=$(boot 1 "forkvm.after_ready=bogus")
expect "fatal reason" "$out" "^forkvm-agent: fatal: forkvm.after_ready: unknown value 'bogus'"

out=$(boot 1 "forkvm.run=%zz")
expect "bad run escape" "$out" '^forkvm-agent: fatal: forkvm.run: '

[ "$failures" = 0 ] && echo "all passed" || { echo "$failures failed"; exit 1; }
