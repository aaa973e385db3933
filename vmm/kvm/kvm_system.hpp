// KvmSystem: the /dev/kvm handle. System ioctls only (API version, capabilities, supported
// CPUID and MSRs, VM creation). Part of the RAII layer: the only folder with KVM ioctls.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.hpp"

namespace forkvm {

class VmFd;

/// An open /dev/kvm.
class KvmSystem {
 public:
  /// Opens `path` (default /dev/kvm) and checks KVM_GET_API_VERSION == 12. Throws KvmError with
  /// a message that says whether the device is missing or not permitted.
  static KvmSystem open(const std::string& path = "/dev/kvm");

  /// KVM_CHECK_EXTENSION on the system fd; 0 when unsupported.
  int check_extension(int cap) const;
  /// KVM_GET_VCPU_MMAP_SIZE: bytes to mmap for each vCPU's kvm_run.
  size_t vcpu_mmap_size() const;
  /// KVM_GET_SUPPORTED_CPUID: every leaf KVM can offer the guest.
  std::vector<kvm_cpuid_entry2> supported_cpuid() const;
  /// KVM_GET_MSR_INDEX_LIST: the MSRs KVM can save and restore.
  std::vector<uint32_t> msr_index_list() const;
  /// KVM_CREATE_VM (machine type 0).
  VmFd create_vm() const;

  /// The raw descriptor (for tests and diagnostics only).
  int fd() const noexcept { return fd_.get(); }

 private:
  explicit KvmSystem(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

/// Throws KvmError unless every capability in `caps` is present; `names` parallel `caps`.
void require_capabilities(const KvmSystem& kvm, const std::vector<std::pair<int, const char*>>& caps);

}  // namespace forkvm
