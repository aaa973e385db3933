// Command-line options of `forkvm-bench fork` and their parser (no KVM, unit-tested).
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace forkvm::bench {

/// What `forkvm-bench fork` measures and how often.
struct ForkBenchOptions {
  std::string snapshot;   ///< --snapshot DIR (required): made by `forkvm snapshot create`
  /// Further --snapshot DIRs (e.g. the same image with more RAM): their no-pool fork latency
  /// is measured in the same rounds as the first's and compared with it (restore cost vs size).
  std::vector<std::string> more_snapshots;
  unsigned n = 20;        ///< -n: rounds of the latency part (each: raw, no-pool, pooled fork)
  unsigned pool = 2;      ///< --pool: pool size of the pooled template; 0 skips the pooled rows
  unsigned live = 10;     ///< --live: children kept alive for the memory part; 0 skips it
  unsigned max_live = 0;  ///< --max-live: > 0 runs only the "how many at once" mode
  /// --paths N: rounds of the fork-path part (every path, shell pool warm vs off); 0 skips it
  unsigned paths = 10;
  unsigned sustained = 10;  ///< --sustained K: children forked back to back per setting; 0 skips
  /// --premap 0|1: the pooled template maps the hot pages into its VMs' NPT/EPT tables ahead
  /// (TemplateOptions::premap; default 1). 0 and 1 in one kvm-lab run compare the two.
  bool premap = true;
  /// --prefault 0|1: the pooled template copies and maps the hot pages into its VMs before
  /// their vCPUs run (TemplateOptions::prefault; default 1). 0 shows what that costs in memory
  /// per child (--max-live) and saves in the first exec.
  bool prefault = true;
  bool json = false;      ///< --json: one JSON object instead of the text table
  /// --first-exec "ARGV...": the command each child runs first (split at spaces), e.g.
  /// "python3 -c pass" on a template booted on the Debian root filesystem.
  std::vector<std::string> first_exec = {"true"};
};

/// What `forkvm-bench fork-running` measures: Sandbox::fork() of a booted sandbox.
struct ForkRunningOptions {
  unsigned n = 20;           ///< -n: forks of the booted sandbox (each: exec, then teardown)
  unsigned depth = 5;        ///< --depth: levels of the fork-of-a-fork chain; 0 skips it
  unsigned write_mib = 2;    ///< --write-mib: MiB each chain level writes before it is forked
  unsigned vcpus = 1;        ///< --vcpus
  unsigned memory_mib = 256; ///< --memory: guest RAM of the booted sandbox
  std::string image_dir;     ///< --image-dir: holds bzImage and initramfs.cpio.gz; empty: built-in
  bool json = false;         ///< --json
};

/// The usage texts (one line per option).
extern const char* const kForkBenchUsage;
extern const char* const kForkRunningUsage;

/// A bad command line; what() says what is wrong.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The decimal whole number `text` given to `option`, in [min, max]. Throws UsageError naming
/// the option and the range otherwise (signs, spaces and other characters included).
unsigned parse_count(const std::string& option, const std::string& text, unsigned min,
                     unsigned max = 100000);

/// Parses the arguments after "fork". Throws UsageError for an unknown option, a missing or
/// malformed value, a missing --snapshot, or -n 0.
/// --snapshot may repeat: the first is `snapshot`, the rest go to `more_snapshots`.
ForkBenchOptions parse_fork_options(std::span<const std::string> args);

/// Parses the arguments after "fork-running". Throws UsageError for an unknown option, a
/// missing or malformed value, -n 0, --vcpus 0 or --memory below 64.
ForkRunningOptions parse_fork_running_options(std::span<const std::string> args);

}  // namespace forkvm::bench
