// Every guest-physical address and fixed value of forkvm's x86-64 machine, in one place.
// The boot structures follow the Linux x86 boot protocol (Documentation/x86/boot.rst) and the
// placement Firecracker uses (src/vmm/src/arch/x86_64/layout.rs); static_asserts below keep
// the ranges from overlapping.
#pragma once

#include <cstdint>

#include "contract/boot_signal.hpp"

namespace forkvm::layout {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;
inline constexpr uint64_t kPageSize = 4096;

// --- Low memory: boot structures (all below the EBDA) ---
/// Boot GDT: null, 64-bit code, data, TSS descriptors (8 bytes each).
inline constexpr uint64_t kGdtStart = 0x500;
inline constexpr uint64_t kGdtEntries = 4;
/// Boot IDT: a single empty entry; Linux installs its own before enabling interrupts.
inline constexpr uint64_t kIdtStart = 0x520;
/// The zero page (struct boot_params), 4 KiB.
inline constexpr uint64_t kZeroPageStart = 0x7000;
/// Initial stack pointer of the boot vCPU.
inline constexpr uint64_t kBootStackPointer = 0x8ff0;
/// Identity-map page tables: PML4, PDPT, and 4 page directories of 2 MiB pages (4 GiB).
inline constexpr uint64_t kPml4Start = 0x9000;
inline constexpr uint64_t kPdptStart = 0xa000;
inline constexpr uint64_t kPdStart = 0xb000;
inline constexpr uint64_t kPdCount = 4;
inline constexpr uint64_t kIdentityMapSize = kPdCount * kGiB;
/// Kernel command line. The boot protocol lets cmdline_size go far higher, but 64 KiB
/// is the space reserved here.
inline constexpr uint64_t kCmdlineStart = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;
/// EBDA-like reserved area where the MP table goes (MPSpec 1.4 §4: the floating pointer is
/// searched in the first KiB of the EBDA, the last KiB of base memory, or 0xF0000-0xFFFFF).
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kMpTableStart = kEbdaStart;
/// End of conventional memory usable by the guest; [kEbdaStart, 1 MiB) is not RAM to it.
inline constexpr uint64_t kLowRamEnd = kEbdaStart;
/// Start of high memory: the lowest address a kernel is loaded at.
inline constexpr uint64_t kHimemStart = 1 * kMiB;
/// End of the e820-reserved system area [kEbdaStart, kEbdaReservedEnd) (Firecracker's
/// SYSTEM_MEM). The MP table grows from kMpTableStart into it: ~1.5 KiB for 64 vCPUs, which
/// is past 0xA0000. [kEbdaReservedEnd, 1 MiB) is left out of the e820 map (implicitly reserved).
inline constexpr uint64_t kEbdaReservedEnd = 0xe0000;

// --- The 32-bit MMIO hole ---
/// RAM below 4 GiB ends here; RAM beyond it continues at 4 GiB.
inline constexpr uint64_t kMmioHoleStart = 3 * kGiB;
inline constexpr uint64_t kMmioHoleEnd = 4 * kGiB;
/// Virtio-mmio device slots (4 KiB each) start here.
inline constexpr uint64_t kVirtioMmioStart = kMmioHoleStart + 0x1000;
inline constexpr uint64_t kVirtioMmioSlotSize = 0x1000;
/// In-kernel IOAPIC and LAPIC (KVM emulates them at the architectural addresses).
inline constexpr uint64_t kIoapicStart = 0xfec00000;
inline constexpr uint64_t kLapicStart = 0xfee00000;
/// Three pages KVM needs for its TSS on Intel (KVM_SET_TSS_ADDR).
inline constexpr uint64_t kKvmTssStart = 0xfffbd000;

// --- Port I/O ---
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint8_t kCom1Irq = 4;
inline constexpr uint16_t kI8042Port = 0x60;  // data 0x60, command/status 0x64
inline constexpr uint8_t kI8042Irq = 1;
/// forkvm's boot-signal port: the agent writes a code here. The number is part of the
/// host <-> guest contract (contract/boot_signal.hpp), so it is defined there.
inline constexpr uint16_t kBootSignalPort = forkvm::kBootSignalPort;
/// First legacy GSI handed to virtio-mmio devices.
inline constexpr uint32_t kFirstVirtioIrq = 5;
/// Last GSI handed to virtio-mmio devices: the in-kernel IOAPIC's last pin (it has 24), each of
/// which the MP table routes ISA IRQ n -> pin n (mptable.hpp), as Firecracker's IRQ_MAX.
inline constexpr uint32_t kLastVirtioIrq = 23;
/// How many virtio-mmio devices a VM can have: one slot and one GSI each.
inline constexpr uint32_t kMaxVirtioDevices = kLastVirtioIrq - kFirstVirtioIrq + 1;

// --- Limits ---
inline constexpr uint64_t kMinMemory = 64 * kMiB;
inline constexpr uint32_t kMaxVcpus = 64;

static_assert(kGdtStart + kGdtEntries * 8 <= kIdtStart);
static_assert(kIdtStart + 8 <= kZeroPageStart);
static_assert(kZeroPageStart + kPageSize <= kBootStackPointer - 0x100);
static_assert(kBootStackPointer < kPml4Start);
static_assert(kPml4Start + kPageSize == kPdptStart);
static_assert(kPdptStart + kPageSize == kPdStart);
static_assert(kPdStart + kPdCount * kPageSize <= kCmdlineStart);
static_assert(kCmdlineStart + kCmdlineMaxSize <= kEbdaStart);
static_assert(kMinMemory > kHimemStart);
static_assert(kEbdaStart < kEbdaReservedEnd && kEbdaReservedEnd <= kHimemStart);
static_assert(kVirtioMmioStart + 64 * kVirtioMmioSlotSize < kIoapicStart);
static_assert(kMaxVirtioDevices <= 64);
static_assert(kFirstVirtioIrq > kCom1Irq && kFirstVirtioIrq > kI8042Irq);

}  // namespace forkvm::layout
