// The options of `forkvm-bench restore`: the shared guest-benchmark ones (-n, --vcpus,
// --memory, --image-dir, --timeout, --no-qemu) plus --json and --no-verify.
#pragma once

#include <span>
#include <string>

#include "bench/guest_bench_options.hpp"

namespace forkvm::bench {

struct RestoreBenchOptions : GuestBenchOptions {
  bool json = false;           ///< --json: one JSON object instead of the text report
  bool verify_memory = true;   ///< false with --no-verify: skip re-hashing the memory file
};

/// The usage text.
extern const char* const kRestoreBenchUsage;

/// Parses the arguments after "restore"; `image_dir` is the default --image-dir. Defaults: 10
/// rounds, 1 vCPU, 256 MiB, 300 s per step. Throws std::runtime_error for an unknown option, a
/// missing or malformed value, -n 0, --vcpus 0 or a --memory outside 64..4096.
RestoreBenchOptions parse_restore_options(std::span<char* const> args, const std::string& image_dir);

}  // namespace forkvm::bench
