#include "bench/qemu_reference.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> qemu_argv(const QemuBoot& b) {
  return qemu_microvm_argv(b, "console=ttyS0 reboot=t panic=1 forkvm.after_ready=poweroff");
}

}  // namespace

QemuBoot qemu_boot_of(const GuestBenchOptions& o) {
  QemuBoot q;
  q.kernel = o.image_dir + "/bzImage";
  q.initramfs = o.image_dir + "/initramfs.cpio.gz";
  q.vcpus = o.vcpus;
  q.memory_mib = o.memory_mib;
  q.timeout_s = o.timeout_s;
  return q;
}

std::vector<std::string> qemu_microvm_argv(const QemuBoot& b, const std::string& append) {
  // microvm has no i8042, so reboot=t (triple fault) ends it; -no-reboot makes QEMU exit then.
  return {b.qemu, "-M", "microvm,rtc=off", "-accel", "kvm", "-cpu", "host",
          "-smp", std::to_string(b.vcpus), "-m", std::to_string(b.memory_mib),
          "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
          "-kernel", b.kernel, "-initrd", b.initramfs, "-no-reboot", "-append", append};
}

bool qemu_reference_available(const QemuBoot& boot, std::string* why) {
  const int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *why = "no usable /dev/kvm";
    return false;
  }
  close(fd);
  const std::string check = "command -v " + boot.qemu + " >/dev/null 2>&1";
  if (std::system(check.c_str()) != 0) {
    *why = boot.qemu + " is not installed";
    return false;
  }
  return true;
}

std::optional<double> time_qemu_boot(const QemuBoot& boot, std::string* why) {
  QemuRun r = run_qemu(qemu_argv(boot), [](const std::string& console) {
    return console.find("forkvm-agent: ready") != std::string::npos;
  }, boot.timeout_s, why);
  return r.done_ms;
}

QemuRun run_qemu(const std::vector<std::string>& args,
                 const std::function<bool(const std::string& console)>& done, double timeout_s,
                 std::string* why) {
  QemuRun run;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return run;
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDERR_FILENO);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string& seen = run.console;
  const auto deadline = t0 + std::chrono::duration<double>(timeout_s);
  while (!run.done_ms && Clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) {
      *why = "QEMU exited first; console tail: " + seen.substr(seen.size() > 400 ? seen.size() - 400 : 0);
      break;
    }
    seen.append(buf, static_cast<size_t>(n));
    if (done(seen)) run.done_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (seen.size() > (1u << 20)) seen.erase(0, seen.size() - 4096);
  }
  if (!run.done_ms && why->empty()) {
    *why = "timed out under QEMU; console tail: " + seen.substr(seen.size() > 600 ? seen.size() - 600 : 0);
  }
  // The guest powers off by itself after what was awaited; give QEMU a moment, then make sure.
  bool reaped = false;
  for (int i = 0; i < 50 && !reaped; ++i) {
    reaped = waitpid(pid, nullptr, WNOHANG) == pid;
    if (!reaped) usleep(100000);
  }
  if (!reaped) {
    kill(pid, SIGKILL);
    // A process stuck in the kernel (a wedged nested vCPU) may not die at once; never block
    // the benchmark on it.
    for (int i = 0; i < 100 && !reaped; ++i) {
      reaped = waitpid(pid, nullptr, WNOHANG) == pid;
      if (!reaped) usleep(100000);
    }
    if (!reaped && run.done_ms) {
      *why = "QEMU did not exit after SIGKILL";
      run.done_ms.reset();
    }
  }
  close(out[0]);
  return run;
}

}  // namespace forkvm::bench
