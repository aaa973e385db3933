#include "vmm/arch/x86_64/mptable.hpp"

#include <cstddef>
#include <cstring>
#include <numeric>
#include <string>

#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

/// MP Floating Pointer Structure (MPSpec 1.4 §4.1, Figure 4-2).
struct [[gnu::packed]] MpFloatingPointer {
  char signature[4];  // "_MP_"
  uint32_t physptr;   // configuration table address
  uint8_t length;     // in 16-byte paragraphs: 1
  uint8_t spec_rev;   // 4 = MPSpec 1.4
  uint8_t checksum;
  uint8_t feature1;   // 0: a configuration table is present
  uint8_t feature2;   // bit 7 IMCRP clear: virtual wire mode
  uint8_t feature3_5[3];
};
static_assert(sizeof(MpFloatingPointer) == 16);

/// MP Configuration Table Header (MPSpec 1.4 §4.2, Figure 4-3).
struct [[gnu::packed]] MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t base_table_length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table_pointer;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_address;
  uint16_t extended_table_length;
  uint8_t extended_table_checksum;
  uint8_t reserved;
};
static_assert(sizeof(MpConfigHeader) == 44);

/// Processor entry (MPSpec 1.4 §4.3.1, Figure 4-4).
struct [[gnu::packed]] MpProcessor {
  uint8_t type, apic_id, apic_version, cpu_flags;
  uint32_t cpu_signature, feature_flags;
  uint32_t reserved[2];
};
static_assert(sizeof(MpProcessor) == 20);

/// Bus entry (MPSpec 1.4 §4.3.2, Figure 4-5).
struct [[gnu::packed]] MpBus {
  uint8_t type, bus_id;
  char bus_type[6];
};
static_assert(sizeof(MpBus) == 8);

/// I/O APIC entry (MPSpec 1.4 §4.3.3, Figure 4-6).
struct [[gnu::packed]] MpIoapic {
  uint8_t type, apic_id, apic_version, flags;
  uint32_t address;
};
static_assert(sizeof(MpIoapic) == 8);

/// I/O and local interrupt assignment entries share one layout (MPSpec 1.4 §4.3.4 and §4.3.5,
/// Figures 4-7 and 4-8).
struct [[gnu::packed]] MpInterrupt {
  uint8_t type, interrupt_type;
  uint16_t flags;  // polarity bits 1:0, trigger bits 3:2; 0 = conforms to the bus
  uint8_t source_bus_id, source_bus_irq, dest_apic_id, dest_pin;
};
static_assert(sizeof(MpInterrupt) == 8);

constexpr uint8_t kCpuEnabled = 1u << 0;
constexpr uint8_t kCpuBootProcessor = 1u << 1;
constexpr uint8_t kIoapicEnabled = 1u << 0;
/// Family 6 signature and FPU | APIC feature bits (CPUID.1 EDX bits 0 and 9), as Firecracker
/// writes them; Linux reads the real values from CPUID, not from here.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatures = (1u << 0) | (1u << 9);
constexpr uint8_t kIsaBusId = 0;
constexpr uint8_t kAllApics = 0xff;
constexpr uint8_t kLocalEntries = 2;

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

/// The value that makes the bytes of [first, last) sum to 0 mod 256.
uint8_t checksum_for(std::vector<uint8_t>::const_iterator first,
                     std::vector<uint8_t>::const_iterator last) {
  const unsigned sum = std::accumulate(first, last, 0u);
  return static_cast<uint8_t>(0x100u - (sum & 0xffu));
}

void check_ncpus(uint32_t ncpus) {
  if (ncpus == 0 || ncpus > layout::kMaxVcpus) {
    throw ConfigError("vCPU count " + std::to_string(ncpus) + " is outside 1.." +
                      std::to_string(layout::kMaxVcpus));
  }
}

void append_entries(std::vector<uint8_t>& out, uint32_t ncpus) {
  for (uint32_t i = 0; i < ncpus; ++i) {
    const auto flags = static_cast<uint8_t>(kCpuEnabled | (i == 0 ? kCpuBootProcessor : 0));
    append(out, MpProcessor{kMpProcessor, static_cast<uint8_t>(i), kLapicVersion, flags,
                            kCpuSignature, kCpuFeatures, {0, 0}});
  }
  append(out, MpBus{kMpBus, kIsaBusId, {'I', 'S', 'A', ' ', ' ', ' '}});
  const auto ioapic_id = static_cast<uint8_t>(ncpus);
  append(out, MpIoapic{kMpIoapic, ioapic_id, kIoapicVersion, kIoapicEnabled,
                       static_cast<uint32_t>(layout::kIoapicStart)});
  for (uint8_t pin = 0; pin < kIoapicPins; ++pin) {
    append(out, MpInterrupt{kMpIoInterrupt, kMpIntInt, 0, kIsaBusId, pin, ioapic_id, pin});
  }
  append(out, MpInterrupt{kMpLocalInterrupt, kMpIntExtInt, 0, kIsaBusId, 0, 0, 0});
  append(out, MpInterrupt{kMpLocalInterrupt, kMpIntNmi, 0, kIsaBusId, 0, kAllApics, 1});
}

}  // namespace

uint64_t mptable_size(uint32_t ncpus) {
  return sizeof(MpFloatingPointer) + sizeof(MpConfigHeader) + ncpus * sizeof(MpProcessor) +
         sizeof(MpBus) + sizeof(MpIoapic) + (kIoapicPins + kLocalEntries) * sizeof(MpInterrupt);
}

std::vector<uint8_t> build_mptable(uint32_t ncpus, uint64_t base) {
  check_ncpus(ncpus);
  std::vector<uint8_t> table;
  table.reserve(mptable_size(ncpus));

  MpFloatingPointer mpf{};
  std::memcpy(mpf.signature, "_MP_", 4);
  mpf.physptr = static_cast<uint32_t>(base + sizeof(MpFloatingPointer));
  mpf.length = 1;
  mpf.spec_rev = 4;
  append(table, mpf);
  table[offsetof(MpFloatingPointer, checksum)] = checksum_for(table.begin(), table.end());

  const size_t header_at = table.size();
  append(table, MpConfigHeader{});
  append_entries(table, ncpus);

  MpConfigHeader hdr{};
  std::memcpy(hdr.signature, "PCMP", 4);
  hdr.base_table_length = static_cast<uint16_t>(table.size() - header_at);
  hdr.spec_rev = 4;
  std::memcpy(hdr.oem_id, "FORKVM  ", 8);
  std::memcpy(hdr.product_id, "000000000000", 12);
  hdr.entry_count = static_cast<uint16_t>(ncpus + 2 + kIoapicPins + kLocalEntries);
  hdr.lapic_address = static_cast<uint32_t>(layout::kLapicStart);
  std::memcpy(table.data() + header_at, &hdr, sizeof hdr);
  table[header_at + offsetof(MpConfigHeader, checksum)] =
      checksum_for(table.begin() + static_cast<std::ptrdiff_t>(header_at), table.end());
  return table;
}

void write_mptable(const GuestMemory& mem, uint32_t ncpus) {
  check_ncpus(ncpus);
  if (mptable_size(ncpus) > layout::kEbdaReservedEnd - layout::kMpTableStart) {
    throw ConfigError("MP table for " + std::to_string(ncpus) +
                      " vCPUs does not fit in the reserved area below 0xe0000");
  }
  const std::vector<uint8_t> table = build_mptable(ncpus, layout::kMpTableStart);
  mem.write(layout::kMpTableStart, table);
}

}  // namespace forkvm::x86
