// Refusing a snapshot on a host whose KVM cannot offer the CPU features the snapshot's guest
// was given: a guest that already probed AVX-512 (or XSAVE components, or PV features) would
// fault or corrupt state when run where they are missing.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace forkvm::state {

/// One feature bit the snapshot's CPUID has and the host's KVM does not support.
struct MissingFeature {
  uint32_t leaf;
  uint32_t subleaf;
  char reg;          ///< 'a', 'b', 'c' or 'd' (EAX..EDX)
  unsigned bit;
  std::string name;  ///< "avx2", "avx512f", ...; "leaf 0x7.0 ebx bit 30" style when unnamed
};

/// The feature bits set in `snapshot` (a vCPU's KVM_GET_CPUID2) but not in `host`
/// (KVM_GET_SUPPORTED_CPUID). Checked: leaves 0x1 (ECX, EDX), 0x7.0 (EBX, ECX, EDX), 0x7.1
/// (EAX), 0xD.0 (EAX, EDX: XSAVE components), 0xD.1 (EAX), 0x80000001 (ECX, EDX), 0x80000008
/// (EBX) and 0x40000001 (EAX: KVM paravirtual features).
/// Bits KVM leaves to userspace or the guest (OSXSAVE, OSPKE, HYPERVISOR, TSC_DEADLINE) are
/// not compared.
std::vector<MissingFeature> missing_cpu_features(std::span<const kvm_cpuid_entry2> snapshot,
                                                 std::span<const kvm_cpuid_entry2> host);

/// Throws SnapshotError naming every missing feature, e.g.
/// "this host's CPU lacks features the snapshot uses: avx512f (leaf 0x7.0 ebx bit 16), ...".
void require_cpu_features(std::span<const kvm_cpuid_entry2> snapshot,
                          std::span<const kvm_cpuid_entry2> host);

}  // namespace forkvm::state
