// Transparent huge pages for guest RAM: the host's THP settings, asking for huge pages on a
// mapping (MADV_HUGEPAGE), and how many huge pages a mapping really got (/proc/self/smaps).
// The host may refuse or ignore the request at every step; nothing here fails because of that.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace forkvm {

/// The host's THP policy (Documentation/admin-guide/mm/transhuge.rst): the selected value of
/// /sys/kernel/mm/transparent_hugepage/enabled (anonymous memory: always, madvise, never) and
/// shmem_enabled (shmem and memfds: always, within_size, advise, never, deny, force). Empty
/// when the file cannot be read (a kernel without CONFIG_TRANSPARENT_HUGEPAGE).
struct ThpSettings {
  std::string enabled;
  std::string shmem_enabled;
};
/// Reads both files now.
ThpSettings read_thp_settings();
/// The bracketed value of a THP sysfs line ("always [madvise] never\n" -> "madvise"); the
/// trimmed line when nothing is bracketed.
std::string thp_selected(std::string_view line);

/// What MADV_HUGEPAGE on a mapping came to.
struct HugePageAdvice {
  bool asked = false;     ///< huge pages were asked for (GuestMemory::create_memfd(size, true))
  bool accepted = false;  ///< every madvise(MADV_HUGEPAGE) returned 0
  std::string error;      ///< why the host refused (errno text), when it did
};
/// madvise(MADV_HUGEPAGE) over [addr, addr + len). Never throws: a refusal (EINVAL on a kernel
/// without THP) is recorded in the result.
HugePageAdvice advise_huge_pages(void* addr, uint64_t len);

/// Host pages behind a set of address ranges, summed over the /proc/self/smaps entries (one per
/// mapping, VMA) that overlap them. A VMA that reaches beyond a range is counted whole; guest
/// RAM's mappings are its own, so that only happens when the kernel merged an anonymous region
/// with a neighbour.
struct HugePageUsage {
  uint64_t rss_bytes = 0;        ///< Rss: resident, any page size
  uint64_t anon_huge_bytes = 0;  ///< AnonHugePages: anonymous THP mapped by PMD
  /// ShmemPmdMapped + FilePmdMapped: shmem/memfd (or page cache) huge pages mapped by PMD.
  uint64_t file_pmd_bytes = 0;
  /// Both kinds of PMD-mapped huge page.
  uint64_t huge_bytes() const noexcept { return anon_huge_bytes + file_pmd_bytes; }
};
/// A host address range [begin, end).
struct HostRange {
  uintptr_t begin = 0;
  uintptr_t end = 0;
};
/// Parses smaps text (the format of /proc/PID/smaps) for the entries overlapping `ranges`.
/// Lines it does not know are skipped; a malformed number counts as 0.
HugePageUsage parse_smaps_huge(std::string_view smaps, std::span<const HostRange> ranges);
/// parse_smaps_huge over this process's /proc/self/smaps now. All zero when it cannot be read.
HugePageUsage huge_page_usage(std::span<const HostRange> ranges);

/// The huge page size the alignment below is for (x86-64 PMD): 2 MiB.
inline constexpr uint64_t kHugePageSize = 2ull << 20;

/// Reserves `len` bytes of address space (PROT_NONE, MAP_NORESERVE) starting on a kHugePageSize
/// boundary, so that a mapping placed over it with MAP_FIXED can use PMD-mapped huge pages from
/// its first byte, and KVM, which maps a guest huge page only where the guest-physical and host
/// addresses agree modulo 2 MiB, can too. Throws GuestMemoryError when the host refuses.
uint8_t* reserve_aligned(uint64_t len);

}  // namespace forkvm
