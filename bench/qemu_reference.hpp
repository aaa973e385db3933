// The same-run reference for boot benchmarks: QEMU's `-M microvm` with KVM booting the same
// kernel and initramfs, timed from process start to the agent's ready line on its console.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/guest_bench_options.hpp"

namespace forkvm::bench {

/// What to boot under QEMU.
struct QemuBoot {
  std::string qemu = "qemu-system-x86_64";
  std::string kernel;
  std::string initramfs;
  unsigned vcpus = 1;
  unsigned memory_mib = 256;
  double timeout_s = 300;
};

/// The QEMU side of a guest benchmark's options: the kernel and initramfs of o.image_dir, its
/// vCPUs, RAM and timeout.
QemuBoot qemu_boot_of(const GuestBenchOptions& o);

/// QEMU's command line for `boot` (-M microvm with KVM, -cpu host, the serial console on
/// stdio, no other devices) with `append` as the kernel command line.
std::vector<std::string> qemu_microvm_argv(const QemuBoot& boot, const std::string& append);

/// True when QEMU is installed and /dev/kvm can be opened (the reference needs both).
bool qemu_reference_available(const QemuBoot& boot, std::string* why);

/// Starts QEMU, waits for "forkvm-agent: ready" on its serial console, and returns the time
/// from fork to that line in ms (nullopt on timeout or early exit; `why` says which). QEMU is
/// always reaped before returning.
std::optional<double> time_qemu_boot(const QemuBoot& boot, std::string* why);

/// What run_qemu() saw.
struct QemuRun {
  std::string console;           ///< the serial console (stdout), at most its last MiB
  std::optional<double> done_ms; ///< fork to `done` first returning true; nullopt if never
};

/// Runs QEMU with `argv` (argv[0] the binary; the console on stdout), feeding its console to
/// `done` as it arrives, until `done` returns true, QEMU exits, or `timeout_s` passes. QEMU is
/// given a few seconds to exit by itself after `done`, then killed; it is always reaped (a
/// process stuck in the kernel is waited for 10 s at most). `why` says what went wrong when
/// done_ms is nullopt.
QemuRun run_qemu(const std::vector<std::string>& argv,
                 const std::function<bool(const std::string& console)>& done, double timeout_s,
                 std::string* why);

}  // namespace forkvm::bench
