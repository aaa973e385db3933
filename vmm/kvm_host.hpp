// KvmHost: one KVM device as the whole process sees it, opened once. Opening /dev/kvm,
// checking its capabilities and reading its supported CPUID and MSR list are the same for
// every VM, so every VM (boot, restore, fork) on the same device shares one KvmHost instead of
// paying for them again (a fork-latency lever, issue 4 §5).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/kvm/kvm_system.hpp"

namespace forkvm {

struct KvmHost {
  KvmSystem system;
  /// KVM_GET_SUPPORTED_CPUID, read once.
  std::vector<kvm_cpuid_entry2> supported_cpuid;
  /// The MSRs a snapshot saves (state::msrs_to_save of KVM_GET_MSR_INDEX_LIST).
  std::vector<uint32_t> msrs;
  /// KVM_CAP_TSC_DEADLINE_TIMER.
  bool tsc_deadline = false;

  /// The shared KvmHost of `device`, opened (with every capability a VM needs checked) on the
  /// first call for that path. Thread-safe. A failure is not remembered: the next call tries
  /// again. Throws KvmError.
  static std::shared_ptr<const KvmHost> get(const std::string& device);
};

}  // namespace forkvm
