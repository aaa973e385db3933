#!/usr/bin/env bash
# The README's second command: installs and builds as tools/setup.sh does, then runs the whole
# test suite: the CTest labels unit, kvm and e2e in the ordinary tree, then the fuzz targets
# and the unit tier under ASan+UBSan, and the threaded unit tests under TSan, in two sanitizer
# trees (tools/test-sanitizers.sh). Those compile in the background, at the lowest CPU
# priority, while the kvm and e2e tiers run; their tests run after.
# FORKVM_TEST_SANITIZERS=0 leaves the sanitizer stages out (a quick local run).
# kvm and e2e tests run through kvm-lab where the host cannot run them directly; under CI=true
# a test that cannot run fails instead of skipping.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
sanitizers=${FORKVM_TEST_SANITIZERS:-1}
# The sanitizer stages CI runs: the fuzz targets and the unit tier under ASan+UBSan (one
# tree), and the unit tests that run threads of their own under TSan (a second tree).
san_stages="fuzz asan tsan"
"$top/tools/install-deps.sh"
"$top/tools/build.sh" "$build"
san_pid=''
san_log=$build/sanitizer-trees.log
if [ "$sanitizers" = 1 ]; then
  echo "[test] compiling the sanitizer trees for $san_stages in the background (nice 19; log: $san_log)"
  # Its own process group (job control on for the launch), so that the trap below stops cmake
  # and ninja with it; the same session, though: with autogroup scheduling (Debian's default)
  # a new session (setsid) would get a CPU share equal to the tests' and nice would not hold.
  set -m
  nice -n 19 "$top/tools/test-sanitizers.sh" build $san_stages >"$san_log" 2>&1 &
  san_pid=$!
  set +m
  # Never leave it compiling after this script ends, however it ends.
  trap '[ -n "$san_pid" ] && kill -- "-$san_pid" 2>/dev/null; true' EXIT
fi
cd "$build"
echo "[test] running every tier: unit in parallel, then kvm and e2e one at a time (each in kvm-lab"
echo "[test] here unless the host has VMX/SVM; expect ~10-30 s per kvm/e2e test)"
status=0
ctest -j "$(nproc)" --output-on-failure || status=$?
# Show how each kvm/e2e test ran (directly or through kvm-lab) and what it ran, so a log
# makes it plain that the real-guest tiers executed rather than skipped.
echo "[test] how the kvm and e2e tiers ran:"
grep -hE '^\[run-tier\]|^\[kvm-lab\] L1 ready|^\[==========\] [0-9]+ tests? from .* ran' \
  Testing/Temporary/LastTest.log 2>/dev/null | sed 's/^/[test]   /' || true
# A test that passed on a retry in a fresh L1 prints nothing under --output-on-failure, yet its
# failed attempt is the only clue to a rare hang (a rare failure is a bug until shown otherwise):
# print what kvm-lab said during every such test (its warnings, L1's console tail, backtraces)
# and the test's own last lines, bounded.
awk '/^[0-9]+\/[0-9]+ Testing: /{name=$3; n=0; retried=0}
     {buf[n++]=$0}
     /retrying in a fresh L1/{retried=1}
     /^Test (Passed|Failed)/ && retried {
       print "[test] " name " was retried; its output (kvm-lab lines and the last 60 others):"
       k=0; for (i=0;i<n;i++) if (buf[i] !~ /^\[kvm-lab\]/) last[k++]=i
       for (i=0;i<n;i++) if (buf[i] ~ /^\[kvm-lab\]/ || i>=last[(k>60?k-60:0)]) print "[test]   | " buf[i]
       retried=0}' Testing/Temporary/LastTest.log 2>/dev/null | head -n 800 || true
if [ "$sanitizers" != 1 ]; then
  echo "[test] sanitizer stages not run (FORKVM_TEST_SANITIZERS=0)"
  exit "$status"
fi
# The fuzz targets (a few seconds each over their seed corpus), the unit tier under ASan+UBSan
# and the threaded unit tests under TSan (issue 16 §4). Run even when a tier above failed, so
# one CI run reports everything.
t0=$SECONDS
# Progress every 30 s while it compiles, so the wait is never silent.
while kill -0 "$san_pid" 2>/dev/null; do
  echo "[test] waiting for the sanitizer trees to compile; now at: $(tail -1 "$san_log" 2>/dev/null | cut -c1-100)"
  for _ in $(seq 30); do if kill -0 "$san_pid" 2>/dev/null; then sleep 1; fi; done
done
if ! wait "$san_pid"; then
  san_pid=''
  echo "[test] compiling the sanitizer trees failed; the end of $san_log:"
  tail -40 "$san_log" | sed 's/^/[test]   /'
  exit 1
fi
san_pid=''
grep '^\[sanitize\]' "$san_log" | sed 's/^/[test]   /'
echo "[test] sanitizer trees ready after a further $((SECONDS - t0)) s; running their stages"
"$top/tools/test-sanitizers.sh" $san_stages || status=$?
exit "$status"
