#include "guest-init/agent/spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
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

// What the child needs, set up by the agent before the clone: the child only reads it.
struct ChildArgs {
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  int report_fd;
  const char* cwd;
  char* const* argv;
  char* const* envp;
  const std::vector<const char*>* files;
};

// Runs in the child between the clone and execve, on its own stack but in the agent's memory
// (CLONE_VM): only async-signal-safe calls, no allocation, nothing written but its own stack
// and errno (the calling agent thread's, which waits until the execve and does not read it).
[[noreturn]] void run_child(const ChildArgs& a) {
  // The agent's signal handlers would run on the agent's memory: every caught signal goes back
  // to its default before any is unblocked (all are blocked across the clone). Ignored ones
  // stay ignored, as across execve, except SIGPIPE below.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0) continue;  // not a valid signal
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) ::signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int stdin_fd = a.stdin_fd, stdout_fd = a.stdout_fd, stderr_fd = a.stderr_fd;
  const int report_fd = a.report_fd;
  const char* const cwd = a.cwd;
  char* const* const argv = a.argv;
  char* const* const envp = a.envp;
  const std::vector<const char*>& files = *a.files;
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

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORKVM_HAS_TSAN 1
#endif
#endif
#ifndef FORKVM_HAS_TSAN
#define FORKVM_HAS_TSAN 0
#endif

// The child's stack: run_child and execve need little; the kernel copies argv and envp.
constexpr std::size_t kChildStack = 256 * 1024;

int child_entry(void* arg) { run_child(*static_cast<const ChildArgs*>(arg)); }

// Starts the child as vfork would, sharing the agent's memory until its execve (CLONE_VM |
// CLONE_VFORK: this thread waits until then), so no page table is copied and no page of the
// agent is made copy-on-write, in the guest or, after a VM fork, on the host. Its own stack
// keeps it off this thread's. Every signal is blocked across the clone; the child restores
// them (run_child), the agent its own mask.
pid_t clone_child(const ChildArgs& args) {
#if defined(__SANITIZE_THREAD__) || FORKVM_HAS_TSAN
  // ThreadSanitizer's runtime cannot follow a child that shares its memory (its CHECK fails in
  // the child): the TSan build of the agent (unit tests only) forks.
  const pid_t forked = ::fork();
  if (forked < 0) throw errno_error(errno, "fork");
  if (forked == 0) run_child(args);
  return forked;
#else
  void* stack = ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) throw errno_error(errno, "mmap the child's stack");
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::clone(child_entry, static_cast<char*>(stack) + kChildStack,
                            CLONE_VM | CLONE_VFORK | SIGCHLD, const_cast<ChildArgs*>(&args));
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, kChildStack);  // the child has exec'd or exited: CLONE_VFORK waited for it
  if (pid < 0) throw errno_error(clone_errno, "clone");
  return pid;
#endif
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

  const ChildArgs args{in.read.get(), out.write.get(), err.write.get(), report.write.get(),
                       request.cwd.c_str(), argv.data(), envp.data(), &file_ptrs};
  const pid_t pid = clone_child(args);
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
