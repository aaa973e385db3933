// Child processes of PID 1: starting them, waiting for one while reaping every other zombie
// (orphans are re-parented to PID 1, so it must reap them all), and idling.
//
// The signals PID 1 cares about are blocked and taken synchronously with sigwaitinfo(), so no
// work happens in signal handlers. SIGCHLD means "reap". SIGUSR2, SIGTERM and SIGUSR1 are what
// busybox's poweroff, reboot and halt send to PID 1; all three power the VM off (status 0).
#pragma once

#include <sys/types.h>

#include <string>

namespace forkvm {

/// Blocks SIGCHLD, SIGTERM, SIGUSR1 and SIGUSR2 for the agent. Children get an empty mask back.
/// Throws AgentError(kSignals).
void block_agent_signals();

/// Starts `/bin/sh -c <command>` in a new session, stdin from /dev/null, stdout and stderr
/// on the console. Throws AgentError(kSpawn).
pid_t spawn_command(const std::string& command);

/// Starts an interactive /bin/sh in a new session with `tty` (console_tty_path()) as its
/// controlling terminal and stdin/stdout/stderr. Throws AgentError(kSpawn).
pid_t spawn_shell(const std::string& tty);

/// Waits until `pid` exits, reaping any other child meanwhile, and returns its wait status.
/// A power-off request signal powers off from here. Throws AgentError(kWait).
int wait_for_child(pid_t pid);

/// Reaps children forever; returns only through a power-off request.
[[noreturn]] void idle_forever();

}  // namespace forkvm
