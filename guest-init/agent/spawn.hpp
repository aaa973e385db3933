// Starting an exec's process: a vfork-style clone (no copy of the agent's memory), setsid,
// pipes, cwd, execve with a PATH search, and the child's errno carried back over a
// close-on-exec pipe so that "program not found" and "cwd missing" become error replies instead
// of a process that exits 127.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {

/// What to run.
struct SpawnRequest {
  /// argv; argv[0] without a '/' is searched in the PATH of `env`.
  std::vector<std::string> argv;
  /// The complete environment, "K=V" strings.
  std::vector<std::string> env;
  /// Directory the command starts in (absolute).
  std::string cwd = "/";
  /// Whether stdin is a pipe (else /dev/null).
  bool pipe_stdin = false;
};

/// A started process: the leader of its own session and process group (pgid == pid).
struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdin_fd;   ///< write end of the stdin pipe (non-blocking), or -1
  UniqueFd stdout_fd;  ///< read end of the stdout pipe (non-blocking)
  UniqueFd stderr_fd;  ///< read end of the stderr pipe (non-blocking)
};

/// Starts `request`. Throws OpError when the program cannot be executed (not_found,
/// permission_denied, ...) or `cwd` cannot be entered; then nothing ran and the child has
/// been reaped. The caller must have SIGPIPE ignored or blocked handling in mind: the child
/// gets default dispositions and an empty signal mask.
[[nodiscard]] SpawnedProcess spawn_process(const SpawnRequest& request);

}  // namespace forkvm::agent
