// HostVirt: what kind of KVM this host offers, read from /proc and /sys (no ioctls). Three kinds
// are seen on real machines (shared/KVM-LAB.md): hardware KVM (VT-x/AMD-V, bare metal or nested),
// PVM (`kvm_pvm`: every ioctl works, but a standard Linux guest does not boot), and none.
#pragma once

#include <string>

namespace forkvm {

/// The host's virtualization, as /proc/cpuinfo and /sys/module describe it.
struct HostVirt {
  /// "vmx" or "svm" appears in /proc/cpuinfo's flags.
  bool hardware = false;
  /// /sys/module/kvm_pvm exists.
  bool pvm_module = false;
  /// /sys/module/kvm_intel or /sys/module/kvm_amd exists.
  bool hardware_module = false;

  /// The host's /dev/kvm (if it has one) comes from PVM: kvm_pvm is there and neither
  /// kvm_intel nor kvm_amd is.
  bool is_pvm() const noexcept { return pvm_module && !hardware_module; }
};

/// Reads `root`/proc/cpuinfo and `root`/sys/module/{kvm_pvm,kvm_intel,kvm_amd}. `root` is "/"
/// on a real host; tests pass a fake tree. Missing files count as "not there"; never throws.
HostVirt probe_host_virt(const std::string& root = "/");

/// Throws KvmError when `virt` is PVM, unless `allow_pvm` (FORKVM_ALLOW_PVM=1): a PVM /dev/kvm
/// accepts every ioctl but cannot boot a standard Linux guest (it spins in the decompressor),
/// so the error names that and the ways out instead of letting a boot hang until its timeout.
void require_standard_kvm(const HostVirt& virt, const std::string& device, bool allow_pvm);

/// The root probe_host_virt reads for this process: $FORKVM_HOST_ROOT when set (tests of the
/// PVM refusal through the CLI use a fake tree), else "/".
std::string host_root_from_env();

/// True when the environment variable FORKVM_ALLOW_PVM is "1".
bool pvm_allowed_by_env() noexcept;

}  // namespace forkvm
