// `forkvm-bench soak`: many fork -> exec -> file round trip -> teardown cycles on one template,
// with a long-lived parent forked every K cycles, sampling this process's fds, threads, RSS and
// runtime-dir entries as it goes: flat after warm-up and no failure, or the exit status says
// which (issue 16 §5).
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the soak with argv after "soak"; 0 when it passed (soak_verdict), 1 otherwise, 2 on a
/// usage error.
int soak_bench(std::span<char* const> args);

}  // namespace forkvm::bench
