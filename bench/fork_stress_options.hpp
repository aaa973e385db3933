// Command-line options of `forkvm-bench fork-stress` and their parser (no KVM, unit-tested).
#pragma once

#include <span>
#include <string>
#include <vector>

namespace forkvm::bench {

/// The ways of forking that fork-stress exercises, as the e2e tests use them.
enum class StressPath {
  kTemplate,  ///< Sandbox::make_template() of the running root, Template::fork() without a pool
  kPool,      ///< the same with a pool of prepared VMs
  kChain,     ///< Sandbox::fork() chains (a fork of the previous child, --depth deep, then anew)
  kSnapshot,  ///< Sandbox::snapshot() to a directory, Template::open() of it, Template::fork()
  /// A freshly booted sandbox per image (its RAM still the boot's shared memfd, as the e2e
  /// tests' parents), make_template() of it, --per-image forks. Not a default: a boot each.
  kFreshTemplate,
  /// The same with Sandbox::snapshot() + Template::open(), as E2eFork does.
  kFreshSnapshot,
};

/// "template", "pool", "chain", "snapshot", "fresh-template", "fresh-snapshot".
const char* to_string(StressPath p) noexcept;

struct ForkStressOptions {
  unsigned n = 500;        ///< forks per path
  std::vector<StressPath> paths{StressPath::kTemplate, StressPath::kPool, StressPath::kChain,
                                StressPath::kSnapshot};
  unsigned live = 4;       ///< children alive at once (the oldest is shut down first)
  unsigned depth = 5;      ///< chain length before the chain starts again from the root
  unsigned pool = 2;       ///< pool size of the pool path
  unsigned per_image = 3;  ///< forks of each freshly booted sandbox's image (fresh-* paths)
  unsigned refork = 10;    ///< after a failure: forks more of the same image, to tell a bad
                           ///< image (they fail too) from a race in one child (they do not)
  unsigned stop_after = 5; ///< failures after which a path stops early
  unsigned vcpus = 1;
  unsigned memory_mib = 256;
  std::string image_dir;   ///< default: the built-in image
  std::string out_dir;     ///< failure reports; default $TMPDIR/forkvm-fork-stress-<pid>
  bool trace = false;      ///< KVM trace events (tracefs, root) kept for a failing vCPU
  bool json = false;
};

extern const char* const kForkStressUsage;

/// Parses the arguments after "fork-stress". Throws UsageError (fork_options.hpp).
ForkStressOptions parse_fork_stress_options(std::span<const std::string> args);

}  // namespace forkvm::bench
