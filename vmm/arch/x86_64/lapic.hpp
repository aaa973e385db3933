// Local APIC LINT0/LINT1 setup for the boot CPU (Intel SDM Vol. 3A §10.5.1 "Local Vector
// Table", Figure 10-8): LINT0 delivers the 8259 PIC's ExtINT (virtual-wire mode, MPSpec 1.4
// §3.6.2.2), LINT1 delivers NMI. Firecracker does the same (arch/x86_64/interrupts.rs set_lint).
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace forkvm::x86 {

/// Offsets of the LVT registers in the 1 KiB APIC register page (SDM Vol. 3A Table 10-1).
inline constexpr uint32_t kApicLvt0 = 0x350;
inline constexpr uint32_t kApicLvt1 = 0x360;
/// LVT delivery modes, bits 10:8 (SDM Vol. 3A §10.5.1).
inline constexpr uint32_t kApicModeNmi = 0x4;
inline constexpr uint32_t kApicModeExtInt = 0x7;

/// Reads the 32-bit APIC register at `offset` of `lapic` (offset + 4 <= 0x400, else 0).
uint32_t lapic_reg(const kvm_lapic_state& lapic, uint32_t offset);

/// Returns `lapic` (as KVM_GET_LAPIC gave it) with the delivery mode of LVT0 set to ExtINT and
/// of LVT1 set to NMI; every other bit (vector, mask, trigger) is kept.
kvm_lapic_state with_boot_lints(const kvm_lapic_state& lapic);

}  // namespace forkvm::x86
