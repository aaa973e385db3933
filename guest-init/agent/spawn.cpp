#include "guest-init/agent/spawn.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

// What failed in the child, sent with its errno over the status pipe.
enum class ChildStage : int { kSetup = 1, kChdir = 2, kExec = 3 };

struct ChildReport {
  int stage;
  int err;
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw errno_error(errno, "pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw errno_error(errno, "fcntl O_NONBLOCK");
  }
}

std::string find_path_var(const std::vector<std::string>& env) {
  for (const auto& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) return entry.substr(5);
  }
  return "/bin:/usr/bin";
}

// The files execve is tried on, computed before fork so the child does not allocate.
std::vector<std::string> candidates(const std::string& program, const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> out;
  const std::string path = find_path_var(env);
  std::size_t start = 0;
  for (;;) {
    const auto colon = path.find(':', start);
    std::string file = path.substr(start, colon == std::string::npos ? std::string::npos
                                                                     : colon - start);
    // push_back rather than assigning "." or operator+: GCC 12 warns falsely (-Wrestrict).
    if (file.empty()) file.push_back('.');
    file.push_back('/');
    file += program;
    out.push_back(std::move(file));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

[[noreturn]] void child_fail(int report_fd, ChildStage stage, int err) {
  const ChildReport report{static_cast<int>(stage), err};
  [[maybe_unused]] const ssize_t n = ::write(report_fd, &report, sizeof report);
  ::_exit(127);
}

// Puts `fd` on `target` without close-on-exec.
bool move_to(int fd, int target) {
  if (fd == target) return ::fcntl(fd, F_SETFD, 0) == 0;
  return ::dup2(fd, target) == target;
}

// Runs in the child between fork() and execve: only async-signal-safe calls.
[[noreturn]] void run_child(int stdin_fd, int stdout_fd, int stderr_fd, int report_fd,
                            const char* cwd, char* const argv[], char* const envp[],
                            const std::vector<const char*>& files) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Ignored dispositions survive execve; the agent ignores SIGPIPE, the command must not.
  ::signal(SIGPIPE, SIG_DFL);
  if (::setsid() < 0) child_fail(report_fd, ChildStage::kSetup, errno);
  // stdout/stderr first: a low-numbered pipe end could otherwise be overwritten by dup2.
  int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
  for (int& fd : fds) {
    if (fd <= 2) {
      fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) child_fail(report_fd, ChildStage::kSetup, errno);
    }
  }
  for (int target = 0; target < 3; ++target) {
    if (!move_to(fds[target], target)) child_fail(report_fd, ChildStage::kSetup, errno);
  }
  if (::chdir(cwd) != 0) child_fail(report_fd, ChildStage::kChdir, errno);
  int err = ENOENT;
  bool saw_eacces = false;
  for (const char* file : files) {
    ::execve(file, argv, envp);
    err = errno;
    if (err == EACCES) {
      saw_eacces = true;
    } else if (err != ENOENT && err != ENOTDIR) {
      break;
    }
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR)) err = EACCES;
  child_fail(report_fd, ChildStage::kExec, err);
}

// Reads the child's report: nullopt-like {0,0} when the pipe closed on a successful exec.
ChildReport read_report(int fd) {
  ChildReport report{0, 0};
  auto* bytes = reinterpret_cast<char*>(&report);
  std::size_t got = 0;
  while (got < sizeof report) {
    const ssize_t n = ::read(fd, bytes + got, sizeof report - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got != sizeof report) return {0, 0};
  return report;
}

}  // namespace

SpawnedProcess spawn_process(const SpawnRequest& request) {
  if (request.argv.empty() || request.argv[0].empty()) {
    throw OpError("invalid_argument", "empty argv");
  }
  std::vector<std::string> argv_copy = request.argv;
  std::vector<std::string> env_copy = request.env;
  std::vector<char*> argv;
  for (auto& arg : argv_copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : env_copy) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const std::vector<std::string> files = candidates(request.argv[0], request.env);
  std::vector<const char*> file_ptrs;
  for (const auto& f : files) file_ptrs.push_back(f.c_str());

  Pipe out = make_pipe();
  Pipe err = make_pipe();
  Pipe report = make_pipe();
  Pipe in;
  if (request.pipe_stdin) {
    in = make_pipe();
  } else {
    in.read.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!in.read.valid()) throw errno_error(errno, "open /dev/null");
  }
  // The agent's ends never block it; the child's ends stay blocking.
  if (request.pipe_stdin) set_nonblocking(in.write.get());
  set_nonblocking(out.read.get());
  set_nonblocking(err.read.get());

  const pid_t pid = ::fork();
  if (pid < 0) throw errno_error(errno, "fork");
  if (pid == 0) {
    run_child(in.read.get(), out.write.get(), err.write.get(), report.write.get(),
              request.cwd.c_str(), argv.data(), envp.data(), file_ptrs);
  }
  in.read.reset();
  out.write.reset();
  err.write.reset();
  report.write.reset();
  // Blocks only until the child's execve (or its failure): the pipe is close-on-exec.
  const ChildReport result = read_report(report.read.get());
  if (result.stage != 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    switch (static_cast<ChildStage>(result.stage)) {
      case ChildStage::kChdir: throw errno_error(result.err, "cwd " + request.cwd);
      case ChildStage::kExec: throw errno_error(result.err, "exec " + request.argv[0]);
      case ChildStage::kSetup: break;
    }
    throw errno_error(result.err, "set up the child process");
  }
  SpawnedProcess process;
  process.pid = pid;
  if (request.pipe_stdin) process.stdin_fd = std::move(in.write);
  process.stdout_fd = std::move(out.read);
  process.stderr_fd = std::move(err.read);
  return process;
}

}  // namespace forkvm::agent
