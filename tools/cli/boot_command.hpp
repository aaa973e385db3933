// `forkvm boot`: boots a guest, streams its console, and exits when it powers off.
#pragma once

#include <span>

namespace forkvm::cli {

/// Runs `forkvm boot ARGS...` (argv without "forkvm boot"); returns the process exit code.
int boot_command(std::span<char* const> args);

/// Exit codes of the CLI (besides the guest's own status after a clean power-off).
enum ExitCode : int {
  kExitUsage = 2,         ///< bad command line
  kExitSetup = 3,         ///< bad config, image or KVM: nothing was started
  kExitGuestFailed = 4,   ///< the guest panicked, reset, or a vCPU failed
  kExitTimeout = 5,       ///< the guest did not finish within --timeout
  kExitInterrupted = 130, ///< Ctrl-C / SIGTERM
};

}  // namespace forkvm::cli
