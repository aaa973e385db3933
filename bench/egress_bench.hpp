// `forkvm-bench egress`: the guest's HTTP through the egress proxy (agent relay, vsock, the
// host's Asio/Beast proxy, TCP to an origin on the host's loopback) against the same bytes from
// the same origin code over a bare guest-to-host vsock stream, in the same sandbox and run:
// small GETs (latency distribution) and a large download (throughput), measured by one Python
// script in the guest so both paths pay the same client costs.
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the egress benchmark with argv after "egress"; returns the exit code.
int egress_bench(std::span<char* const> args);

}  // namespace forkvm::bench
