// The same-run reference for boot benchmarks: QEMU's `-M microvm` with KVM booting the same
// kernel and initramfs, timed from process start to the agent's ready line on its console.
#pragma once

#include <optional>
#include <string>

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

/// True when QEMU is installed and /dev/kvm can be opened (the reference needs both).
bool qemu_reference_available(const QemuBoot& boot, std::string* why);

/// Starts QEMU, waits for "forkvm-agent: ready" on its serial console, and returns the time
/// from fork to that line in ms (nullopt on timeout or early exit; `why` says which). QEMU is
/// always reaped before returning.
std::optional<double> time_qemu_boot(const QemuBoot& boot, std::string* why);

}  // namespace forkvm::bench
