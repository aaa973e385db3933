// `forkvm snapshot`: work with snapshot directories (snapshot/snapshot.hpp). `inspect` checks
// and describes one; `create` needs a VM that can capture its state and is not available yet.
#pragma once

#include <span>

namespace forkvm::cli {

/// Runs `forkvm snapshot SUBCOMMAND ARGS...` (argv without "forkvm snapshot"). Exit codes:
/// 0 the snapshot is valid and every digest checked matches; 1 it is invalid (a missing or
/// malformed file, a digest mismatch, sizes that disagree); 2 usage (kExitUsage).
int snapshot_command(std::span<char* const> args);

/// `forkvm snapshot inspect` found the snapshot invalid.
inline constexpr int kExitSnapshotInvalid = 1;

}  // namespace forkvm::cli
