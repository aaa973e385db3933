// Command-line options of `forkvm-bench soak` and their parser (no KVM, unit-tested).
#pragma once

#include <span>
#include <string>

namespace forkvm::bench {

/// What `forkvm-bench soak` runs (issue 16 §5).
struct SoakOptions {
  unsigned cycles = 1000;        ///< -n/--cycles: template children forked, used, torn down
  unsigned parent_every = 10;    ///< --parent-every: the long-lived parent is forked every K cycles
  unsigned report_every = 100;   ///< --report-every: counters and latencies every R cycles
  unsigned stop_after = 50;      ///< --stop-after: failures after which the run stops early
  std::string snapshot;          ///< --snapshot DIR; empty: boot a sandbox and make_template() it
  unsigned vcpus = 1;            ///< --vcpus (boot only)
  unsigned memory_mib = 256;     ///< --memory (boot only)
  std::string image_dir;         ///< --image-dir (boot only); empty: the built-in image
  bool json = false;             ///< --json: one JSON object after the table
};

extern const char* const kSoakUsage;

/// Parses the arguments after "soak". Throws UsageError (fork_options.hpp) for an unknown
/// option, a missing or malformed value, zero cycles, intervals or stop-after, and --vcpus,
/// --memory or --image-dir together with --snapshot (the snapshot fixes the machine).
SoakOptions parse_soak_options(std::span<const std::string> args);

}  // namespace forkvm::bench
