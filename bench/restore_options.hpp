// The options of `forkvm-bench restore`: the shared guest-benchmark ones (-n, --vcpus,
// --memory, --image-dir, --timeout, --no-qemu) plus --json.
#pragma once

#include <span>
#include <string>

#include "bench/guest_bench_options.hpp"

namespace forkvm::bench {

struct RestoreBenchOptions : GuestBenchOptions {
  bool json = false;           ///< --json: one JSON object instead of the text report
};

/// The usage text.
extern const char* const kRestoreBenchUsage;

/// Parses the arguments after "restore"; `image_dir` is the default --image-dir. Defaults: 10
/// rounds, 1 vCPU, 256 MiB, 300 s per step. Throws std::exception (std::runtime_error, or
/// std::invalid_argument from a malformed number) for an unknown option, a missing or
/// malformed value, -n 0, --vcpus 0, a --memory outside 64..4096 or a --timeout <= 0.
RestoreBenchOptions parse_restore_options(std::span<char* const> args, const std::string& image_dir);

}  // namespace forkvm::bench
