// The boot GDT and IDT, and the conversion of a GDT descriptor into the kvm_segment KVM wants
// in kvm_sregs. Descriptor format: Intel SDM Vol. 3A §3.4.5 "Segment Descriptors" (and
// §7.2.3 for the 64-bit TSS descriptor); the entries are Firecracker's (arch/x86_64/gdt.rs).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>

#include "memory/layout.hpp"

namespace forkvm {
class GuestMemory;
}

namespace forkvm::x86 {

/// Index of each boot descriptor in the GDT. Selector = index * 8 (TI = 0, RPL = 0).
inline constexpr uint16_t kGdtCodeIndex = 1;
inline constexpr uint16_t kGdtDataIndex = 2;
inline constexpr uint16_t kGdtTssIndex = 3;

/// Packs a segment descriptor (SDM Vol. 3A §3.4.5, Figure 3-8). `flags` holds the access byte in
/// bits 0-7 (type, S, DPL, P) and the G/DB/L/AVL nibble in bits 12-15, as in 0xa09b.
constexpr uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((uint64_t{base} & 0xff000000u) << 32) | ((uint64_t{base} & 0x00ffffffu) << 16) |
         (uint64_t{limit} & 0x0000ffffu) | ((uint64_t{limit} & 0x000f0000u) << 32) |
         ((uint64_t{flags} & 0xf0ffu) << 40);
}

/// The boot GDT: null; 64-bit code (0xa09b: P, DPL 0, execute/read accessed, L=1, G=1);
/// data (0xc093: P, read/write accessed, D/B=1, G=1); 64-bit busy TSS (0x808b).
/// All flat: base 0, limit 0xfffff pages.
constexpr std::array<uint64_t, layout::kGdtEntries> boot_gdt() {
  return {gdt_entry(0, 0, 0), gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff),
          gdt_entry(0x808b, 0, 0xfffff)};
}

/// Decodes GDT descriptor `entry` found at GDT index `index` into the segment-register form
/// of KVM_SET_SREGS: base, limit scaled by 4 KiB when G=1 (SDM §3.4.5 "G flag"), type, S, DPL,
/// P, AVL, L, D/B, G, and `unusable` set for a not-present descriptor.
kvm_segment segment_from_gdt(uint64_t entry, uint16_t index);

/// Writes the boot GDT at kGdtStart and one zeroed IDT entry at kIdtStart. Linux loads its own
/// IDT before enabling interrupts; until then any exception triple-faults, which is the
/// honest outcome for a kernel that cannot start. Throws GuestMemoryError if RAM is too small.
void write_gdt_and_idt(const GuestMemory& mem);

}  // namespace forkvm::x86
