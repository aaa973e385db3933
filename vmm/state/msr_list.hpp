// Which MSRs a vCPU snapshot saves, and the order they are restored in.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <linux/kvm.h>

namespace forkvm::state {

/// MSR numbers with an ordering or selection role (Intel SDM Vol. 4; Linux
/// Documentation/virt/kvm/x86/msr.rst for the KVM paravirtual range).
namespace msr {
inline constexpr uint32_t kTsc = 0x10;
inline constexpr uint32_t kTscAdjust = 0x3b;
inline constexpr uint32_t kTscDeadline = 0x6e0;
inline constexpr uint32_t kKvmWallClockOld = 0x11;
inline constexpr uint32_t kKvmSystemTimeOld = 0x12;
inline constexpr uint32_t kKvmPvFirst = 0x4b564d00;  ///< MSR_KVM_WALL_CLOCK_NEW
inline constexpr uint32_t kKvmPvLast = 0x4b564dff;
inline constexpr uint32_t kKvmAsyncPfEn = 0x4b564d02;
inline constexpr uint32_t kKvmAsyncPfInt = 0x4b564d06;
}  // namespace msr

/// The MSRs to save, from KVM_GET_MSR_INDEX_LIST (`index_list`) filtered by an allow-list:
/// TSC, TSC_ADJUST, TSC_DEADLINE, SYSENTER_CS/ESP/EIP, STAR/LSTAR/CSTAR/SFMASK,
/// KERNEL_GS_BASE, TSC_AUX, PAT, MISC_ENABLE, SPEC_CTRL, XFD/XFD_ERR, the KVM paravirtual MSRs
/// (0x11, 0x12 and 0x4b564d00-0x4b564dff: wall clock, system time, async PF, steal time, PV EOI,
/// poll control), plus the MTRRs (MTRRdefType, the 11 fixed-range MTRRs and 8 variable pairs),
/// which KVM always emulates but does not list. Left out on purpose: performance counters,
/// VMX/SVM capability and nested-virtualisation MSRs, Hyper-V MSRs, and read-only or feature
/// MSRs that describe the host rather than the guest's state.
/// The result is in restore order (restore_order()), without duplicates.
std::vector<uint32_t> msrs_to_save(std::span<const uint32_t> index_list);

/// Sorts `entries` into the order KVM_SET_MSRS must see them:
/// 1. IA32_TSC first: writing it sets the TSC offset that TSC_DEADLINE and kvmclock are
///    relative to;
/// 2. MSR_KVM_ASYNC_PF_INT before MSR_KVM_ASYNC_PF_EN: enabling async PF with interrupt
///    delivery uses the vector from ASYNC_PF_INT (the kernel checks it at the EN write);
/// 3. everything else by index;
/// 4. IA32_TSC_DEADLINE last: KVM arms the LAPIC timer from it only when the TSC and the LAPIC
///    (LVT timer in TSC-deadline mode, restored before MSRs) are already in place.
void restore_order(std::vector<kvm_msr_entry>& entries);

}  // namespace forkvm::state
