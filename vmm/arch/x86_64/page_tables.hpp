// Identity-mapped boot page tables for the 64-bit Linux boot protocol (Documentation/x86/
// boot.rst "64-bit Boot Protocol": the kernel, zero page and command line must be identity
// mapped). Format: Intel SDM Vol. 3A §4.5 "4-Level Paging", Table 4-15 (PML4E), 4-17 (PDPTE)
// and 4-18 (PDE mapping a 2 MiB page).
#pragma once

#include <cstdint>

namespace forkvm {
class GuestMemory;
}

namespace forkvm::x86 {

/// Page-table entry bits (SDM Vol. 3A Tables 4-15..4-18).
inline constexpr uint64_t kPtePresent = 1u << 0;
inline constexpr uint64_t kPteWritable = 1u << 1;
inline constexpr uint64_t kPtePageSize = 1u << 7;  ///< in a PDE: maps a 2 MiB page

/// Writes PML4 (kPml4Start), PDPT (kPdptStart) and kPdCount page directories (kPdStart, ...)
/// identity-mapping [0, kIdentityMapSize) = 4 GiB with present, writable 2 MiB pages; every
/// other entry of those pages is zeroed. Returns the CR3 value (the PML4 address; PCD/PWT 0).
/// Throws GuestMemoryError when guest RAM does not cover the tables.
uint64_t write_identity_page_tables(const GuestMemory& mem);

}  // namespace forkvm::x86
