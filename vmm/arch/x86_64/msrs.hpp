// The MSR values a vCPU boots with (KVM_SET_MSRS). The list is Firecracker's
// (arch/x86_64/msr.rs create_boot_msr_entries); indices are from Intel SDM Vol. 4 "Model-
// Specific Registers" (Table 2-2, architectural MSRs).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace forkvm::x86 {

inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

/// IA32_MISC_ENABLE bit 0: fast-string operations enabled (SDM Vol. 4 Table 2-2).
inline constexpr uint64_t kMiscEnableFastString = 1u << 0;
/// IA32_MTRR_DEF_TYPE: E (bit 11, MTRRs enabled) with default type 6 = write-back
/// (SDM Vol. 3A §11.11.2.1). Without it the guest sees all of RAM as uncached.
inline constexpr uint64_t kMtrrDefTypeEnabledWriteBack = (1u << 11) | 6;

/// The boot MSRs: SYSENTER_CS/ESP/EIP, STAR, CSTAR, KERNEL_GS_BASE, SYSCALL_MASK, LSTAR and
/// IA32_TSC = 0; IA32_MISC_ENABLE = FAST_STRING; MTRRdefType = enabled, write-back.
/// IA32_TSC is set on every vCPU so that their TSCs start together.
std::vector<kvm_msr_entry> boot_msrs();

}  // namespace forkvm::x86
