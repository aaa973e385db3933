#!/usr/bin/env bash
# The README's second command: installs and builds as tools/setup.sh does, then runs the whole
# test suite (CTest labels unit, kvm, e2e), then with FORKVM_TEST_FUZZ=1 the fuzz targets
# (tools/test-sanitizers.sh).
# kvm and e2e tests run through kvm-lab where the host cannot run them directly; under CI=true
# a test that cannot run fails instead of skipping.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/tools/install-deps.sh"
"$top/tools/build.sh" "$build"
cd "$build"
echo "[test] running every tier: unit in parallel, then kvm and e2e one at a time (each in kvm-lab"
echo "[test] here unless the host has VMX/SVM; expect ~10-30 s per kvm/e2e test)"
ctest -j "$(nproc)" --output-on-failure
# Show how each kvm/e2e test ran (directly or through kvm-lab) and what it ran, so a log
# makes it plain that the real-guest tiers executed rather than skipped.
echo "[test] how the kvm and e2e tiers ran:"
grep -hE '^\[run-tier\]|^\[kvm-lab\] L1 ready|^\[==========\] [0-9]+ tests? from .* ran' \
  Testing/Temporary/LastTest.log 2>/dev/null | sed 's/^/[test]   /' || true
# Each fuzz target for a few seconds under ASan+UBSan (issue 16 §4; tools/test-sanitizers.sh).
# Its clang tree costs ~6 min on 2 cores, which the CI time budget (45 min on a fresh machine)
# does not have room for yet: it runs when FORKVM_TEST_FUZZ=1, and says so when it does not.
if [ "${FORKVM_TEST_FUZZ:-0}" = 1 ]; then
  echo "[test] fuzz targets (tools/test-sanitizers.sh fuzz)"
  "$top/tools/test-sanitizers.sh" fuzz
else
  echo "[test] fuzz targets not run (FORKVM_TEST_FUZZ=1 runs them: tools/test-sanitizers.sh fuzz)"
fi
