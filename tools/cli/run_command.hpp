// `forkvm run`: boots a transient sandbox, runs one command, streams its output, tears down.
#pragma once

#include <span>

namespace forkvm::cli {

/// Runs `forkvm run ARGS...` (argv without "forkvm run"); returns the process exit code (see
/// kRunUsage in run_args.hpp).
int run_command(std::span<char* const> args);

/// Exit codes of `forkvm run` besides those of boot_command.hpp and the command's own.
enum RunExitCode : int {
  kExitCommandTimeout = 124,  ///< --timeout passed and the guest killed the command
  kExitCannotExecute = 126,   ///< the program exists but could not be executed
  kExitNotFound = 127,        ///< the program (or --cwd) was not found
  kExitSigterm = 143,         ///< forkvm got SIGTERM (SIGINT is kExitInterrupted, 130)
};

}  // namespace forkvm::cli
