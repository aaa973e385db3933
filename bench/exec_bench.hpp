// `forkvm-bench exec`: round trips through a running sandbox — exec(["true"]), ping, file
// throughput both ways — with a bare vsock echo round trip measured in the same run as the
// reference, so the agent's own cost shows as a ratio.
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the exec benchmark with argv after "exec"; returns the exit code.
int exec_bench(std::span<char* const> args);

}  // namespace forkvm::bench
