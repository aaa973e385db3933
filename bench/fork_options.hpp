// Command-line options of `forkvm-bench fork` and their parser (no KVM, unit-tested).
#pragma once

#include <span>
#include <stdexcept>
#include <string>

namespace forkvm::bench {

/// What `forkvm-bench fork` measures and how often.
struct ForkBenchOptions {
  std::string snapshot;   ///< --snapshot DIR (required): made by `forkvm snapshot create`
  unsigned n = 20;        ///< -n: rounds of the latency part (each: raw, no-pool, pooled fork)
  unsigned pool = 2;      ///< --pool: pool size of the pooled template; 0 skips the pooled rows
  unsigned live = 10;     ///< --live: children kept alive for the memory part; 0 skips it
  unsigned max_live = 0;  ///< --max-live: > 0 runs only the "how many at once" mode
  bool json = false;      ///< --json: one JSON object instead of the text table
};

/// The usage text (one line per option).
extern const char* const kForkBenchUsage;

/// A bad command line; what() says what is wrong.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses the arguments after "fork". Throws UsageError for an unknown option, a missing or
/// malformed value, a missing --snapshot, or -n 0.
ForkBenchOptions parse_fork_options(std::span<const std::string> args);

}  // namespace forkvm::bench
