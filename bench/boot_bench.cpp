#include "bench/boot_bench.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/guest_bench_options.hpp"
#include "bench/qemu_reference.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

using Options = GuestBenchOptions;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// One forkvm boot. `launch_to_line` uses the same clock as the QEMU reference: from the call
/// that creates the VM to the ready line arriving on the host console.
struct ForkvmSample {
  double launch_to_line;
  double create;
  double start_to_signal;
};

std::optional<ForkvmSample> boot_forkvm_here(const Options& o, std::string* why) {
  VmConfig c;
  c.kernel = o.image_dir + "/bzImage";
  c.initramfs = o.image_dir + "/initramfs.cpio.gz";
  c.vcpus = o.vcpus;
  c.memory_mib = o.memory_mib;
  c.extra_cmdline = "forkvm.after_ready=poweroff";
  std::optional<double> line_at;
  std::string console;
  const auto t0 = Clock::now();
  c.console = [&](std::string_view s) {
    if (line_at) return;
    console.append(s);
    if (console.find("forkvm-agent: ready") != std::string::npos) line_at = ms_since(t0);
  };
  try {
    auto vm = Vm::create(c);
    vm->start();
    if (!vm->wait_ready(std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000)))) {
      *why = "timed out waiting for the agent";
      return std::nullopt;
    }
    auto end = vm->wait(std::chrono::seconds(60));
    if (!end || end->reason != StopReason::kPowerOff) {
      *why = "the guest did not power off cleanly";
      return std::nullopt;
    }
    if (!line_at) {
      *why = "ready line missing from the console";
      return std::nullopt;
    }
    const double create = std::chrono::duration<double, std::milli>(vm->build_time()).count();
    const double signal = std::chrono::duration<double, std::milli>(*vm->start_to_ready()).count();
    return ForkvmSample{*line_at, create, signal};
  } catch (const Error& e) {
    *why = e.what();
    return std::nullopt;
  }
}

/// Runs one forkvm boot in a child process and reads its result back through a pipe. Every
/// sample then starts from a fresh process, the way a user launches `forkvm boot`, and the
/// benchmark process itself never holds a KVM VM while it forks the QEMU reference (with VMs
/// created and torn down in the forking process, kvm-lab's L1 wedged on the next QEMU boot,
/// twice; it never did with each VM in its own process).
std::optional<ForkvmSample> boot_forkvm(const Options& o, std::string* why) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string err;
    const auto sample = boot_forkvm_here(o, &err);
    // One record: a flag byte, then the sample or the error text.
    std::string out(1, sample ? 'S' : 'E');
    if (sample) out.append(reinterpret_cast<const char*>(&*sample), sizeof(ForkvmSample));
    else out += err;
    const ssize_t written = write(fds[1], out.data(), out.size());
    _exit(written == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got.size() == 1 + sizeof(ForkvmSample) && got[0] == 'S') {
    ForkvmSample sample;
    std::memcpy(&sample, got.data() + 1, sizeof sample);
    return sample;
  }
  *why = got.size() > 1 ? got.substr(1) : "the benchmark child died (status " + std::to_string(status) + ")";
  return std::nullopt;
}

Options parse(std::span<char* const> args) {
  Options o;
  o.image_dir = FORKVM_BENCH_IMAGE_DIR;
  parse_guest_bench_options(args, o);
  return o;
}

}  // namespace

int boot_bench(std::span<char* const> args) {
  Options o;
  try {
    o = parse(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench boot: %s\nusage: forkvm-bench boot [-n N] [--vcpus N] "
                         "[--memory MiB] [--image-dir DIR] [--timeout S] [--no-qemu]\n", e.what());
    return 2;
  }
  const QemuBoot q = qemu_boot_of(o);
  std::string why;
  const bool with_qemu = o.qemu && qemu_reference_available(q, &why);
  if (o.qemu && !with_qemu) std::fprintf(stderr, "forkvm-bench: no QEMU reference: %s\n", why.c_str());

  std::printf("boot-to-agent-ready: %u vCPU, %u MiB, %u runs each, interleaved%s\n", o.vcpus,
              o.memory_mib, o.n, with_qemu ? " with QEMU -M microvm (KVM)" : "");
  std::fflush(stdout);
  std::vector<double> fk_line, fk_create, fk_signal, qemu_line;
  unsigned qemu_failures = 0;
  // Interleave forkvm and QEMU runs so that drift in machine load hits both alike.
  for (unsigned i = 0; i < o.n; ++i) {
    why.clear();
    std::fprintf(stderr, "  run %u:", i + 1);
    if (auto s = boot_forkvm(o, &why)) {
      fk_line.push_back(s->launch_to_line);
      fk_create.push_back(s->create);
      fk_signal.push_back(s->start_to_signal);
      std::fprintf(stderr, " forkvm %.1f ms", s->launch_to_line);
    } else {
      std::fprintf(stderr, "forkvm-bench: forkvm boot %u failed: %s\n", i + 1, why.c_str());
      return 1;
    }
    if (with_qemu) {
      why.clear();
      if (auto t = time_qemu_boot(q, &why)) {
        qemu_line.push_back(*t);
        std::fprintf(stderr, ", qemu %.1f ms", *t);
      } else {
        // The reference is someone else's VMM in a nested, emulated lab; one wedged boot there
        // is reported and counted, not allowed to void the forkvm samples.
        ++qemu_failures;
        std::fprintf(stderr, "\nforkvm-bench: qemu boot %u failed: %s\n", i + 1, why.c_str());
      }
    }
    std::fprintf(stderr, "\n");
  }
  const Summary fl = summarize(fk_line);
  std::printf("%s\n", format_row("forkvm launch -> ready line", fl).c_str());
  std::printf("%s\n", format_row("  forkvm Vm::create", summarize(fk_create)).c_str());
  std::printf("%s\n", format_row("  forkvm start -> ready signal", summarize(fk_signal)).c_str());
  if (with_qemu && qemu_failures > 0) {
    std::printf("qemu reference: %u of %u boots failed (see stderr)\n", qemu_failures, o.n);
  }
  if (with_qemu && !qemu_line.empty()) {
    const Summary ql = summarize(qemu_line);
    std::printf("%s\n", format_row("qemu microvm launch -> ready line", ql).c_str());
    std::printf("ratio forkvm/qemu: p50 %.3f  p90 %.3f  (below 1 means forkvm is faster)\n",
                fl.p50 / ql.p50, fl.p90 / ql.p90);
  }
  return 0;
}

}  // namespace forkvm::bench
