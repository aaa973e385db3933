#include "guest-init/children.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

#include "guest-init/agent_error.hpp"
#include "guest-init/console.hpp"
#include "guest-init/power.hpp"

namespace forkvm {
namespace {

constexpr int kExecFailed = 127;  // the shell's "command not found" status

sigset_t agent_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : {SIGCHLD, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&set, signo);
  return set;
}

// Runs in the child between fork() and exec: only async-signal-safe calls from here on.
[[noreturn]] void exec_shell(char* const argv[], const char* stdin_path, const char* tty) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  if (tty != nullptr) {
    // First open of a tty by a session leader without one makes it the controlling terminal.
    const int fd = ::open(tty, O_RDWR);
    if (fd >= 0) {
      ::dup2(fd, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (fd > 2) ::close(fd);
    }
  } else if (stdin_path != nullptr) {
    const int fd = ::open(stdin_path, O_RDONLY);
    if (fd >= 0) {
      ::dup2(fd, 0);
      if (fd > 0) ::close(fd);
    }
  }
  ::execv("/bin/sh", argv);
  static constexpr char kMsg[] = "forkvm-agent: exec /bin/sh failed\n";
  [[maybe_unused]] const ssize_t n = ::write(2, kMsg, sizeof kMsg - 1);
  ::_exit(kExecFailed);
}

pid_t spawn(char* const argv[], const char* stdin_path, const char* tty) {
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(FatalReason::kSpawn, "fork");
  if (pid == 0) exec_shell(argv, stdin_path, tty);
  return pid;
}

[[noreturn]] void power_off_requested(int signo) {
  const char* name = signo == SIGUSR2 ? "SIGUSR2 (poweroff)"
                     : signo == SIGTERM ? "SIGTERM (reboot)"
                                        : "SIGUSR1 (halt)";
  say(std::string("power-off requested by ") + name);
  power_off(0);
}

// Waits for the next agent signal and reaps on SIGCHLD. Returns the wait status of `target`
// when this round reaped it (target 0 matches no child).
std::optional<int> wait_once(pid_t target) {
  const sigset_t set = agent_signals();
  siginfo_t info;
  const int signo = ::sigwaitinfo(&set, &info);
  if (signo < 0) {
    if (errno == EINTR) return std::nullopt;
    throw_errno(FatalReason::kWait, "sigwaitinfo");
  }
  if (signo != SIGCHLD) power_off_requested(signo);
  // Signals coalesce: one SIGCHLD may stand for many exits, so reap until none is left.
  std::optional<int> target_status;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;  // 0: children left but none exited; -1/ECHILD: no children
    if (target > 0 && pid == target) target_status = status;
  }
  return target_status;
}

}  // namespace

void block_agent_signals() {
  const sigset_t set = agent_signals();
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
    throw_errno(FatalReason::kSignals, "sigprocmask");
  }
}

pid_t spawn_command(const std::string& command) {
  std::string arg0 = "sh";
  std::string arg1 = "-c";
  std::string arg2 = command;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  return spawn(argv, "/dev/null", nullptr);
}

pid_t spawn_shell(const std::string& tty) {
  std::string arg0 = "sh";
  char* argv[] = {arg0.data(), nullptr};
  return spawn(argv, nullptr, tty.c_str());
}

int wait_for_child(pid_t pid) {
  for (;;) {
    if (const auto status = wait_once(pid)) return *status;
  }
}

void idle_forever() {
  for (;;) wait_once(0);
}

}  // namespace forkvm
