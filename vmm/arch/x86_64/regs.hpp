// Register state of a vCPU entering Linux through the 64-bit boot protocol
// (Documentation/x86/boot.rst "64-bit Boot Protocol"): long mode with paging on, flat
// segments from the boot GDT, interrupts off, %rsi = the zero page. Values follow Firecracker
// (arch/x86_64/regs.rs); control-register bits are from Intel SDM Vol. 3A §2.5 and the EFER
// bits from SDM Vol. 3A §2.2.1 / Vol. 4 (IA32_EFER).
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace forkvm::x86 {

inline constexpr uint64_t kCr0Pe = 1u << 0;   ///< protection enable
inline constexpr uint64_t kCr0Et = 1u << 4;   ///< extension type (x87 present; fixed 1)
inline constexpr uint64_t kCr0Pg = 1u << 31;  ///< paging
inline constexpr uint64_t kCr4Pae = 1u << 5;  ///< physical address extension (required by IA-32e)
inline constexpr uint64_t kEferLme = 1u << 8;   ///< long mode enable
inline constexpr uint64_t kEferLma = 1u << 10;  ///< long mode active
/// RFLAGS with only the always-one bit 1 set: interrupts disabled, as the protocol requires.
inline constexpr uint64_t kBootRflags = 0x2;

/// General-purpose registers at the 64-bit entry: RIP = `entry`, RSP = RBP =
/// kBootStackPointer, RSI = kZeroPageStart (the struct boot_params), RFLAGS = 0x2; all
/// others zero. Every vCPU gets the same; APs wait for INIT-SIPI in the in-kernel LAPIC.
kvm_regs boot_regs(uint64_t entry);

/// Returns `kvm_default` (what KVM_GET_SREGS gave for a fresh vCPU) switched to 64-bit mode:
/// CS from the boot GDT code descriptor (selector 0x08, L=1), DS/ES/FS/GS/SS from the data
/// descriptor (0x10), TR from the TSS descriptor (0x18); GDTR = kGdtStart / 31, IDTR =
/// kIdtStart / 7; CR0 |= PE|ET|PG, CR4 |= PAE, EFER |= LME|LMA, CR3 = `cr3`.
/// Everything else (APIC base, LDT, CR8, interrupt bitmap) is kept as KVM set it.
kvm_sregs boot_sregs(const kvm_sregs& kvm_default, uint64_t cr3);

/// The x87/SSE state of a reset CPU (SDM Vol. 1 §8.1.5 / §10.2.3.1): FCW = 0x37f (all
/// exceptions masked, 64-bit precision, round to nearest), MXCSR = 0x1f80 (all SIMD exceptions
/// masked); everything else zero.
kvm_fpu boot_fpu();

}  // namespace forkvm::x86
