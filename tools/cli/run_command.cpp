#include "tools/cli/run_command.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>
#include <stop_token>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/boot_command.hpp"
#include "tools/cli/builtin_image.hpp"
#include "tools/cli/rootfs_option.hpp"
#include "tools/cli/disk_spec.hpp"
#include "tools/cli/launch_plan.hpp"
#include "tools/cli/egress_log.hpp"
#include "tools/cli/net_spec.hpp"
#include "tools/cli/run_args.hpp"

namespace forkvm::cli {
namespace {

using std::chrono::milliseconds;

// Turns SIGINT/SIGTERM into a stop request. The signals are blocked in every thread (the mask
// is set before the sandbox starts any) and taken here with sigtimedwait, so nothing runs in
// a signal handler.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] { run(); });
  }
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  std::stop_token token() const { return source_.get_token(); }
  /// The signal that arrived, or 0.
  int signal() const { return signo_.load(); }

 private:
  void run() {
    const timespec slice{0, 100'000'000};
    while (!done_) {
      const int s = sigtimedwait(&set_, nullptr, &slice);
      if (s > 0) {
        signo_ = s;
        source_.request_stop();
      }
    }
  }

  sigset_t set_{};
  sigset_t old_{};
  std::stop_source source_;
  std::atomic<int> signo_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int signal_exit(int signo) {
  return signo == SIGTERM ? static_cast<int>(kExitSigterm) : static_cast<int>(kExitInterrupted);
}

// Writes all of `s` to fd (the host's stdout/stderr). A closed pipe just drops the output.
void write_fd(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

SandboxConfig sandbox_config(const RunOptions& o) {
  SandboxConfig c;
  c.vm.kernel = o.kernel;
  c.vm.initramfs = o.initramfs;
  if (c.vm.kernel.empty()) {
    c.vm.kernel = builtin_kernel();
    if (c.vm.initramfs.empty()) c.vm.initramfs = builtin_initramfs();
  }
  c.vm.vcpus = o.vcpus;
  c.vm.memory_mib = o.memory_mib;
  c.vm.disks = o.disks;
  c.vm.net = o.net;
  c.root_filesystem = choose_rootfs(o.rootfs, o.kernel.empty(), true, builtin_rootfs());
  c.host_dirs = o.add_dirs;
  c.boot_timeout = o.boot_timeout;
  return c;
}

// The egress policy and, with --egress-log, its audit (`log` outlives the sandbox).
EgressConfig egress_config(const RunOptions& o, EgressLog* log) {
  EgressConfig egress;
  egress.policy = o.egress;
  if (log != nullptr) egress.audit = [log](const EgressEvent& e) { log->audit(e); };
  return egress;
}

/// A booted sandbox, or with --snapshot a fork of the snapshot (verified once, no pool: one
/// child).
std::unique_ptr<Sandbox> start_sandbox(const RunOptions& o, EgressLog* log,
                                       std::stop_token stop) {
  if (o.snapshot.empty()) {
    SandboxConfig config = sandbox_config(o);
    config.egress = egress_config(o, log);
    return Sandbox::create(config, std::move(stop));
  }
  ForkConfig fork;
  fork.boot_timeout = o.boot_timeout;
  fork.egress = egress_config(o, log);
  fork.net = o.net;
  return Template::open(o.snapshot)->fork(fork, std::move(stop));
}

void print_json(const ExecResult& r) {
  nlohmann::json j = {
      {"stdout", r.stdout_data},
      {"stderr", r.stderr_data},
      {"exit_code", r.exit_code ? nlohmann::json(*r.exit_code) : nlohmann::json(nullptr)},
      {"signal", r.signal ? nlohmann::json(*r.signal) : nlohmann::json(nullptr)},
      {"timed_out", r.timed_out},
      {"duration_ms", r.duration.count()},
      {"stdout_truncated", r.stdout_truncated},
      {"stderr_truncated", r.stderr_truncated},
  };
  // Output need not be UTF-8: invalid bytes become U+FFFD rather than failing the dump.
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_fd(STDOUT_FILENO, text);
}

int exit_status(const ExecResult& r, const RunOptions& o) {
  if (r.timed_out) {
    std::fprintf(stderr, "forkvm run: the command timed out after %lld s and was killed\n",
                 static_cast<long long>(o.timeout ? o.timeout->count() : 0));
    return kExitCommandTimeout;
  }
  if (r.signal) return 128 + *r.signal;
  return r.exit_code ? (*r.exit_code & 0xff) : kExitGuestFailed;
}

int start_failed(const OperationError& e) {
  std::fprintf(stderr, "forkvm run: %s\n", e.what());
  if (!e.from_guest()) return kExitUsage;
  if (e.kind() == ErrorKind::kNotFound) return kExitNotFound;
  if (e.kind() == ErrorKind::kPermissionDenied) return kExitCannotExecute;
  return kExitGuestFailed;
}

// Runs the command in a ready sandbox and returns forkvm's exit code.
int run_in(Sandbox& sandbox, const RunOptions& o, const SignalWatcher& signals) {
  ExecOptions opts;
  opts.env = o.env;
  opts.cwd = o.cwd;
  if (o.timeout) opts.timeout = *o.timeout;
  ExecCallbacks callbacks;
  if (!o.json) {
    callbacks.on_stdout = [](std::string_view s) { write_fd(STDOUT_FILENO, s); };
    callbacks.on_stderr = [](std::string_view s) { write_fd(STDERR_FILENO, s); };
  }
  std::unique_ptr<ExecProcess> process;
  try {
    process = sandbox.start(o.argv, opts, callbacks);
  } catch (const OperationError& e) {
    return start_failed(e);
  }
  // Short slices so Ctrl-C is noticed; the guest enforces --timeout, and a grace period past
  // it catches an agent that never reports the end.
  // No --timeout: no deadline at all (adding a "huge" duration to now() would overflow the
  // clock's nanosecond representation and put the deadline in the past).
  std::optional<std::chrono::steady_clock::time_point> hard_deadline;
  if (o.timeout) {
    hard_deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<milliseconds>(*o.timeout) + milliseconds(15000);
  }
  for (;;) {
    if (signals.signal() != 0) {
      std::fprintf(stderr, "forkvm run: interrupted; sandbox torn down\n");
      return signal_exit(signals.signal());
    }
    if (auto r = process->wait_for(milliseconds(100))) {
      if (o.json) print_json(*r);
      return exit_status(*r, o);
    }
    if (hard_deadline && std::chrono::steady_clock::now() > *hard_deadline) {
      std::fprintf(stderr, "forkvm run: the command did not end after its --timeout; sandbox torn down\n");
      return kExitCommandTimeout;
    }
  }
}

}  // namespace

int run_command(std::span<char* const> argv) {
  RunOptions o;
  try {
    o = parse_run_args(argv);
  } catch (const UsageError& e) {
    if (*e.what() != '\0') std::fprintf(stderr, "forkvm run: %s\n", e.what());
    std::fputs(kRunUsage, stderr);
    std::fputs(kDiskUsage, stderr);
    std::fputs(kNetUsage, stderr);
    return *e.what() != '\0' ? kExitUsage : 0;
  } catch (const LaunchPlanError& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    return kExitUsage;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill forkvm before it tears down
  SignalWatcher signals;
  std::unique_ptr<EgressLog> log;  // declared before the sandbox: it outlives its proxy
  std::unique_ptr<Sandbox> sandbox;
  try {
    if (!o.egress_log.empty()) log = std::make_unique<EgressLog>(o.egress_log);
    sandbox = start_sandbox(o, log.get(), signals.token());
    for (const PublishedPort& p : o.published) {
      if (!p.unix_path.empty()) {
        const ExposedPort exposed = sandbox->expose_port_unix(p.guest_port, p.unix_path);
        std::fprintf(stderr, "forkvm run: guest port %u is at %s\n", exposed.guest_port,
                     exposed.unix_path.c_str());
        continue;
      }
      const ExposedPort exposed = sandbox->expose_port(p.guest_port, p.host_port);
      std::fprintf(stderr, "forkvm run: guest port %u is at %s:%u\n", exposed.guest_port,
                   exposed.host.c_str(), exposed.port);
    }
  } catch (const CancelledError&) {
    std::fprintf(stderr, "forkvm run: interrupted while booting; sandbox torn down\n");
    return signal_exit(signals.signal());
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    return kExitSetup;
  } catch (const ImageError& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    return kExitSetup;
  } catch (const KvmError& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    return kExitSetup;
  } catch (const SnapshotError& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    return kExitSetup;
  } catch (const Error& e) {
    std::fprintf(stderr, "forkvm run: the sandbox did not come up: %s\n", e.what());
    return kExitGuestFailed;
  }
  int status = kExitGuestFailed;
  try {
    status = run_in(*sandbox, o, signals);
  } catch (const Error& e) {
    std::fprintf(stderr, "forkvm run: %s\n", e.what());
    status = kExitGuestFailed;
  }
  // Writable --add-dir directories come back once the command has ended (not after Ctrl-C).
  const bool any_rw = std::any_of(o.add_dirs.begin(), o.add_dirs.end(),
                                  [](const HostDir& d) { return d.writable; });
  if (any_rw && sandbox->state() == SandboxState::kReady && signals.signal() == 0) {
    try {
      const HostDirCopyBack r = sandbox->copy_back_host_dirs();
      for (const auto& why : r.refused) std::fprintf(stderr, "forkvm run: --add-dir: not copied back: %s\n", why.c_str());
    } catch (const Error& e) {
      std::fprintf(stderr, "forkvm run: --add-dir: copying back failed: %s\n", e.what());
      if (status == 0) status = kExitGuestFailed;
    }
  }
  sandbox->shutdown();
  return status;
}

}  // namespace forkvm::cli
