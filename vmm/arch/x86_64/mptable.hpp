// The Intel MultiProcessor Specification 1.4 table that tells a guest without ACPI where its
// CPUs, IOAPIC and interrupt lines are (Linux: arch/x86/kernel/mpparse.c, CONFIG_X86_MPPARSE).
// A floating pointer structure (MPSpec §4.1) at kMpTableStart, in the last KiB of base memory
// where Linux scans for it, followed by the configuration table (§4.2) and its entries (§4.3).
// The entry list matches Firecracker's mptable.rs and kvmtool's mptable.c.
#pragma once

#include <cstdint>
#include <vector>

namespace forkvm {
class GuestMemory;
}

namespace forkvm::x86 {

/// Entry type codes (MPSpec 1.4 Table 4-3).
inline constexpr uint8_t kMpProcessor = 0;
inline constexpr uint8_t kMpBus = 1;
inline constexpr uint8_t kMpIoapic = 2;
inline constexpr uint8_t kMpIoInterrupt = 3;
inline constexpr uint8_t kMpLocalInterrupt = 4;
/// Interrupt types (MPSpec 1.4 Table 4-8).
inline constexpr uint8_t kMpIntInt = 0;
inline constexpr uint8_t kMpIntNmi = 1;
inline constexpr uint8_t kMpIntExtInt = 3;
/// Version numbers reported for the emulated APICs: KVM's local APIC reports 0x14, its IOAPIC
/// 0x11 (the 82093AA's; MPSpec 1.4 §4.3.3).
inline constexpr uint8_t kLapicVersion = 0x14;
inline constexpr uint8_t kIoapicVersion = 0x11;
/// Input pins of the in-kernel IOAPIC (KVM_IOAPIC_NUM_PINS).
inline constexpr uint8_t kIoapicPins = 24;

/// Size in bytes of the whole MP table (floating pointer + configuration table) for `ncpus`.
uint64_t mptable_size(uint32_t ncpus);

/// Builds the MP table as it must appear at guest-physical `base`: floating pointer ("_MP_",
/// length 1 paragraph, spec rev 4, physptr = base + 16, checksum), configuration table header
/// ("PCMP", spec 4, OEM "FORKVM", LAPIC at kLapicStart, entry count, checksum), one processor
/// entry per vCPU (APIC id = index, enabled, BSP flag on 0), one ISA bus (id 0), the IOAPIC
/// (id = ncpus, version 0x11, enabled, kIoapicStart), I/O interrupt entries ISA IRQ i -> IOAPIC
/// pin i for i in 0..23 (conforming polarity/trigger, so edge/active-high as ISA defines), and
/// local interrupt entries ExtINT -> LINT0 of the BSP and NMI -> LINT1 of every CPU. Both
/// checksums make their structure's bytes sum to 0 mod 256 (MPSpec §4.1, §4.2).
/// Throws ConfigError unless 1 <= ncpus <= kMaxVcpus.
std::vector<uint8_t> build_mptable(uint32_t ncpus, uint64_t base);

/// Writes build_mptable(ncpus, kMpTableStart) at kMpTableStart. Throws ConfigError for a bad
/// vCPU count or if the table would pass kEbdaReservedEnd, GuestMemoryError if RAM is short.
void write_mptable(const GuestMemory& mem, uint32_t ncpus);

}  // namespace forkvm::x86
