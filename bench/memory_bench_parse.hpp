// Parsing for `forkvm-bench memory`: its options, and the one line the guest workload
// (bench/guest-tools/memwalk.cpp) prints, which comes from the guest and is checked here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "bench/guest_bench_options.hpp"

namespace forkvm::bench {

struct MemoryBenchOptions : GuestBenchOptions {
  unsigned working_set_mib = 128;  ///< --working-set: the guest workload's buffer
  uint64_t accesses = 1000000;     ///< --accesses: timed pointer-chase loads per run
  bool fork = true;                ///< false with --no-fork
  bool json = false;               ///< --json: one JSON object instead of the text report
  std::string memwalk;             ///< --memwalk: the static guest tool to upload
};

/// The usage text.
extern const char* const kMemoryBenchUsage;

/// Parses the arguments after "memory"; `image_dir` and `memwalk` are the defaults of
/// --image-dir and --memwalk. -k is another name for -n (runs per backing; default 5). Throws
/// std::exception (std::runtime_error, or std::invalid_argument from a malformed number) for an
/// unknown option, a missing or malformed value, -n/-k 0, --vcpus 0, a --memory outside
/// 128..4096, a --working-set that leaves the guest less than 96 MiB, --accesses outside
/// 1..10^10, or a --timeout <= 0.
MemoryBenchOptions parse_memory_options(std::span<char* const> args, const std::string& image_dir,
                                        const std::string& memwalk);

/// One run of the guest workload.
struct MemwalkSample {
  double chase_ns = 0;         ///< ns per dependent load, one line per page, random page order
  double seq_ns_per_page = 0;  ///< ns to read one 4 KiB page sequentially
  std::string guest_thp;       ///< the guest kernel's THP policy, "none" without THP
};

/// Parses the workload's output line ("memwalk ... chase_ns=X seq_ns_per_page=Y guest_thp=T
/// ..."). nullopt unless both numbers are present, finite and in (0, 10^9) and guest_thp is
/// 1-31 printable characters: the guest wrote it.
std::optional<MemwalkSample> parse_memwalk_line(std::string_view out);

}  // namespace forkvm::bench
