#!/usr/bin/env bash
# The sanitizer and fuzz tiers (issue 16 §4), in two extra build trees, Clang without debug
# info, each building only what it runs (the library and the unit tests or the fuzz targets: no
# CLI, benchmarks or guest image):
#   fuzz  build-asan (FORKVM_SANITIZE=address,undefined, FORKVM_FUZZ=ON, -O0): every fuzz target
#         (CTest label `fuzz`) for FORKVM_FUZZ_SECONDS (5) over its committed seed corpus
#         (tests/fuzz/corpus), under ASan+UBSan and LeakSanitizer.
#   asan  the same tree: the unit tier under ASan+UBSan.
#   tsan  build-tsan (FORKVM_SANITIZE=thread, -O1): the unit tests that run threads of their
#         own (device workers, the agent client and its reader, the egress proxy's I/O thread,
#         the port relay, the reaper) under TSan; see TSAN_TESTS for the list and why.
#   build configure and build the trees of the stages named with it (both when alone), run
#         nothing. tools/test.sh runs `build fuzz asan tsan` in the background at the lowest CPU
#         priority while the kvm and e2e tiers run (they leave most of one core idle), then the
#         stages, which find their tree built.
# The ASan tree is -O0 because that halves its compile time (Clang spends ~40% of an -O1
# ASan+UBSan compile optimising the instrumentation) and CI runs its tests and fuzz targets
# briefly; FORKVM_ASAN_OPT=-O1 gives a faster tree for long fuzz runs (tests/fuzz/README.md).
# TSan compiles as fast at -O1 as at -O0 and runs several times faster, so it stays -O1.
# Any sanitizer report fails its test: -fno-sanitize-recover=all for ASan/UBSan, and TSan
# exits with 66 after a report. Nothing is suppressed. Each step prints how long it took.
# Usage: tools/test-sanitizers.sh [fuzz|asan|tsan|build|all]...   (default all: every stage)
#        tools/test-sanitizers.sh build [fuzz|asan|tsan]...   (compile those stages' trees only)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
stages=" ${*:-all} "
asan_dir=${ASAN_BUILD_DIR:-$top/build-asan}
tsan_dir=${TSAN_BUILD_DIR:-$top/build-tsan}
jobs=$(nproc)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-second_deadlock_stack=1}

# The unit tests whose code under test runs threads; the others are single-threaded parsers
# and state machines, for which TSan has nothing to check (ASan+UBSan covers them). The vCPU
# kick and the vCPU threads need /dev/kvm: they run in the kvm and e2e tiers, not here.
# unit_memory: device workers mark the write log concurrently (written_pages_test).
TSAN_TESTS=(unit_sandbox unit_vsock unit_virtio unit_block unit_virtio_net unit_egress_proxy
            unit_egress_offline unit_port_relay unit_agent unit_devices_legacy unit_vmm_core
            unit_memory)

timed() {
  local what=$1 t0=$SECONDS
  shift
  "$@"
  echo "[sanitize] $what: $((SECONDS - t0)) s"
}

configure() {
  local dir=$1 opt=$2
  shift 2
  # FORKVM_WERROR=OFF: the warning set is tuned for GCC 12, which the ordinary build holds to
  # -Werror; Clang's extra warnings would stop a tree that exists for its sanitizers.
  # CMAKE_UNITY_BUILD: each target compiles its sources in batches of 8 per translation unit,
  # so the headers (Asio, Beast, GoogleTest, nlohmann_json) are parsed once per batch instead
  # of once per file: the ASan tree took 743 s of CPU per file and takes about half that. It
  # needs names local to a source file to be unique within its target (CMakeLists.txt).
  cmake -S "$top" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="$opt" \
    -DCMAKE_CXX_COMPILER=clang++ -DFORKVM_WERROR=OFF -DCMAKE_UNITY_BUILD=ON "$@" >/dev/null
}

want() { [[ $stages == *" $1 "* || $stages == *" all "* ]]; }

asan_opt=${FORKVM_ASAN_OPT:--O0}
tsan_opt=${FORKVM_TSAN_OPT:--O1}
tsan_regex="^($(IFS='|'; echo "${TSAN_TESTS[*]}"))\$"

# `build` builds the trees of the stages named with it (`build fuzz asan`: build-asan only), or
# both trees when it is named alone.
build_named=''; build_only=''
if [[ $stages == *" build "* ]]; then build_named=1; fi
if [ -n "$build_named" ] && ! want fuzz && ! want asan && ! want tsan; then build_only=1; fi
need_asan=''; need_tsan=''
if want fuzz || want asan || [ -n "$build_only" ]; then need_asan=1; fi
if want tsan || [ -n "$build_only" ]; then need_tsan=1; fi
if [ -n "$need_asan" ]; then
  timed "asan configure" configure "$asan_dir" "$asan_opt" -DFORKVM_SANITIZE=address,undefined -DFORKVM_FUZZ=ON
fi
if [ -n "$need_tsan" ]; then
  timed "tsan configure" configure "$tsan_dir" "$tsan_opt" -DFORKVM_SANITIZE=thread
fi
if [ -n "$build_named" ]; then
  if [ -n "$need_asan" ]; then
    echo "[sanitize] building $asan_dir (library, fuzz targets, unit tests)"
    timed "asan build (library, fuzz targets, unit tests)" cmake --build "$asan_dir" -j "$jobs" --target fuzz-targets unit-tests
  fi
  if [ -n "$need_tsan" ]; then
    echo "[sanitize] building $tsan_dir (${TSAN_TESTS[*]})"
    timed "tsan build" cmake --build "$tsan_dir" -j "$jobs" --target "${TSAN_TESTS[@]}"
  fi
  # Building was all that was asked.
  stages=" "
fi
if want fuzz; then
  echo "[sanitize] fuzz targets in $asan_dir"
  timed "asan build (library, fuzz targets)" cmake --build "$asan_dir" -j "$jobs" --target fuzz-targets
  timed "fuzz targets" ctest --test-dir "$asan_dir" -L fuzz -j "$jobs" --output-on-failure
fi
if want asan; then
  echo "[sanitize] unit tier under ASan+UBSan in $asan_dir"
  timed "asan build (library, unit tests)" cmake --build "$asan_dir" -j "$jobs" --target unit-tests
  # unit_cli runs the CLI against the built-in guest image, which a sanitizer tree does not build
  # (its checks of the image come first, so its expectations cannot hold there); the CLI's
  # parsing is fuzzed (fuzz_launch_plan) and the ordinary tree runs unit_cli.
  timed "asan+ubsan unit tier" ctest --test-dir "$asan_dir" -L unit -E '^unit_cli$' -j "$jobs" --output-on-failure
fi
if want tsan; then
  echo "[sanitize] unit tests with threads under TSan in $tsan_dir: ${TSAN_TESTS[*]}"
  timed "tsan build" cmake --build "$tsan_dir" -j "$jobs" --target "${TSAN_TESTS[@]}"
  timed "tsan unit tests" ctest --test-dir "$tsan_dir" -R "$tsan_regex" -j "$jobs" --output-on-failure
fi
