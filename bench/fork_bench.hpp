// `forkvm-bench fork`: what forking a snapshot costs.
//   - fork latency: Template::fork() until the child's vCPUs are ready to run, phase by phase,
//     without a pool and with one (whose forks should show the prepare phases at ~0);
//   - next to it, in the same rounds, the minimal KVM call sequence of a fork in the naive
//     order (raw_fork_reference.hpp), and the forkvm/naive ratio;
//   - fork -> first answered exec(["true"]);
//   - teardown of a child (off the fork path);
//   - memory per live child (--live K) and, as a separate mode, how many children can be alive
//     at once (--max-live N; fork_memory.hpp), with host file descriptors per child;
//   - with a second --snapshot (e.g. more RAM): no-pool fork latency of each in the same rounds
//     and the ratio of the p50s (fork_size.hpp).
// Sandbox::fork() of a running sandbox is `forkvm-bench fork-running` (fork_running.hpp).
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the fork benchmark with argv after "fork"; returns the exit code (2 usage, 1 failure).
int fork_bench(std::span<char* const> args);

}  // namespace forkvm::bench
