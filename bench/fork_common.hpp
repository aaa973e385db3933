// Helpers shared by the parts of `forkvm-bench fork` (fork_bench.cpp, fork_memory.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {

using Clock = std::chrono::steady_clock;

inline double to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}
inline double ms_since(Clock::time_point t0) { return to_ms(Clock::now() - t0); }

/// Waits until `t` holds `want` pooled VMs, so that a measurement never overlaps the pool's
/// background refill. Returns false when `limit` passed first.
bool wait_pool_full(const Template& t, size_t want, std::chrono::milliseconds limit);

/// One child made by Template::fork() and its first exec(["true"]).
struct ForkedChild {
  std::unique_ptr<Sandbox> sandbox;
  double fork_call_ms = 0;  ///< fork() call -> returned (agent answered, identity set)
  double exec_ms = 0;       ///< the first exec(["true"]) alone
  double to_exec_ms = 0;    ///< fork() call -> that exec answered
};

/// Forks a child from `t` and runs exec(["true"]) in it. Throws what fork() throws, and
/// forkvm::Error when the exec does not exit 0.
ForkedChild fork_and_exec(Template& t);

/// Sandbox::shutdown() and the destructor; returns milliseconds.
double destroy_timed(std::unique_ptr<Sandbox> box);

/// Raises RLIMIT_NOFILE to its hard limit (each child holds a dozen descriptors); returns the
/// soft limit now in force.
unsigned long raise_fd_limit();

}  // namespace forkvm::bench
