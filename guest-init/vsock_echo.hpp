// The guest half of forkvm-bench's reference measurement: `/init --vsock-echo PORT` (the
// agent binary in a second role, not as PID 1) listens on vsock PORT and echoes every byte of
// every connection back, one connection at a time. It prints "listening" once it accepts, so
// the bench starts timing only then. It is the bare transport (host socket, VMM vsock device,
// guest kernel, a userspace read/write) without the agent's framing, JSON and fork/exec.
#pragma once

#include <cstdint>

namespace forkvm {

/// Serves echo on vsock `port` until killed. Returns a process exit code on setup failure.
int run_vsock_echo(uint32_t port);

}  // namespace forkvm
