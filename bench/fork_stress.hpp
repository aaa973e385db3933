// `forkvm-bench fork-stress`: are forks sound every time? Many children per way of forking (as
// the e2e tests fork), each checked to answer with its parent's state; failures are counted,
// never retried, and kept with what is needed to diagnose them (issue 11).
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the stress run with argv after "fork-stress"; 0 when no fork failed, 1 otherwise,
/// 2 on a usage error.
int fork_stress(std::span<char* const> args);

}  // namespace forkvm::bench
