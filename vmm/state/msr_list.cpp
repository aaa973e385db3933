#include "vmm/state/msr_list.hpp"

#include <algorithm>

namespace forkvm::state {
namespace {

// Intel SDM Vol. 4, "Architectural MSRs".
constexpr uint32_t kAllowed[] = {
    msr::kTsc, msr::kTscAdjust, msr::kTscDeadline,
    0x174, 0x175, 0x176,                         // IA32_SYSENTER_CS/ESP/EIP
    0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,  // STAR, LSTAR, CSTAR, SFMASK
    0xc0000102,                                  // KERNEL_GS_BASE
    0xc0000103,                                  // TSC_AUX
    0x277,                                       // IA32_PAT
    0x1a0,                                       // IA32_MISC_ENABLE
    0x48,                                        // IA32_SPEC_CTRL
    0x1c4, 0x1c5,                                // IA32_XFD, IA32_XFD_ERR (AMX)
    msr::kKvmWallClockOld, msr::kKvmSystemTimeOld,
};

/// MTRRs: KVM emulates them for every vCPU (arch/x86/kvm/mtrr.c) but KVM_GET_MSR_INDEX_LIST does
/// not list them. MTRRcap (0xfe) is read-only and omitted.
constexpr uint32_t kMtrrs[] = {
    0x2ff,                                                            // MTRRdefType
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,  // fixed
    0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207,           // variable base/mask
    0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,           // (KVM_NR_VAR_MTRR = 8)
};

bool allowed(uint32_t index) {
  if (index >= msr::kKvmPvFirst && index <= msr::kKvmPvLast) return true;
  return std::find(std::begin(kAllowed), std::end(kAllowed), index) != std::end(kAllowed);
}

int rank(uint32_t index) {
  switch (index) {
    case msr::kTsc: return 0;
    case msr::kKvmAsyncPfInt: return 1;
    case msr::kKvmAsyncPfEn: return 2;
    case msr::kTscDeadline: return 4;
    default: return 3;
  }
}

}  // namespace

std::vector<uint32_t> msrs_to_save(std::span<const uint32_t> index_list) {
  std::vector<kvm_msr_entry> entries;
  auto add = [&](uint32_t index) {
    if (std::none_of(entries.begin(), entries.end(),
                     [&](const kvm_msr_entry& e) { return e.index == index; })) {
      kvm_msr_entry e{};
      e.index = index;
      entries.push_back(e);
    }
  };
  for (uint32_t index : index_list) {
    if (allowed(index)) add(index);
  }
  for (uint32_t index : kMtrrs) add(index);
  restore_order(entries);
  std::vector<uint32_t> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(e.index);
  return out;
}

void restore_order(std::vector<kvm_msr_entry>& entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const kvm_msr_entry& a, const kvm_msr_entry& b) {
                     const int ra = rank(a.index), rb = rank(b.index);
                     return ra != rb ? ra < rb : a.index < b.index;
                   });
}

}  // namespace forkvm::state
