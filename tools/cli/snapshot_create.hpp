// `forkvm snapshot create`: boots a template (the built-in image by default) with vsock and
// the agent serving, waits until the agent is ready, snapshots it into DIR, and stops it.
#pragma once

#include <span>

namespace forkvm::cli {

/// Runs `snapshot create ARGS` (argv after "create"); returns the exit code.
int snapshot_create(std::span<char* const> args);

}  // namespace forkvm::cli
