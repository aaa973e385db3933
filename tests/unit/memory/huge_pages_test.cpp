// Huge pages for guest RAM without a VM: the THP sysfs format, smaps parsing, 2 MiB-aligned
// regions, and a memfd asked for huge pages that maps and works whatever the host gives, and
// says what that was.
#include "memory/huge_pages.hpp"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

constexpr uint64_t kHugeRamSize = 64 * layout::kMiB;

TEST(ThpSelected, BracketedValue) {
  EXPECT_EQ(thp_selected("always [madvise] never\n"), "madvise");
  EXPECT_EQ(thp_selected("always within_size advise [never] deny force"), "never");
  EXPECT_EQ(thp_selected("  plain\n"), "plain");
  EXPECT_EQ(thp_selected(""), "");
}

TEST(ParseSmapsHuge, SumsOnlyTheEntriesThatOverlap) {
  const std::string smaps =
      "7f0000000000-7f0000400000 rw-s 00000000 00:01 5   /memfd:forkvm-guest-ram (deleted)\n"
      "Size:               4096 kB\n"
      "Rss:                4096 kB\n"
      "AnonHugePages:         0 kB\n"
      "ShmemPmdMapped:     2048 kB\n"
      "FilePmdMapped:      1024 kB\n"
      "7f0000400000-7f0000800000 rw-p 00000000 00:00 0\n"
      "Rss:                 100 kB\n"
      "AnonHugePages:      2048 kB\n"
      "7f1000000000-7f1000001000 r--p 00000000 00:00 0   [elsewhere]\n"
      "Rss:                   4 kB\n"
      "AnonHugePages:      9999 kB\n"
      "VmFlags: rd mr mw me\n";
  const HostRange ranges[] = {{0x7f0000000000, 0x7f0000800000}};
  const HugePageUsage u = parse_smaps_huge(smaps, ranges);
  EXPECT_EQ(u.rss_bytes, (4096u + 100u) << 10);
  EXPECT_EQ(u.anon_huge_bytes, 2048u << 10);
  EXPECT_EQ(u.file_pmd_bytes, (2048u + 1024u) << 10);
  EXPECT_EQ(u.huge_bytes(), (2048u + 3072u) << 10);
  // A range touching no entry, and malformed numbers, count nothing.
  const HostRange none[] = {{0x1000, 0x2000}};
  EXPECT_EQ(parse_smaps_huge(smaps, none).rss_bytes, 0u);
  const HugePageUsage bad = parse_smaps_huge("1000-3000 rw-p 0 0:0 0\nRss: lots kB\n", none);
  EXPECT_EQ(bad.rss_bytes, 0u);
}

TEST(ReserveAligned, StartsOnAHugePageBoundary) {
  for (uint64_t len : {uint64_t{4096}, 3 * kHugePageSize + 4096, 64 * layout::kMiB}) {
    uint8_t* p = reserve_aligned(len);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageSize, 0u) << len;
    munmap(p, len);
  }
}

TEST(AdviseHugePages, RefusalIsReportedNotThrown) {
  // An unmapped range: madvise fails (ENOMEM); the result says so instead of throwing.
  uint8_t* p = reserve_aligned(kHugePageSize);
  munmap(p, kHugePageSize);
  HugePageAdvice a;
  EXPECT_NO_THROW(a = advise_huge_pages(p, kHugePageSize));
  EXPECT_TRUE(a.asked);
  EXPECT_FALSE(a.accepted);
  EXPECT_NE(a.error.find("MADV_HUGEPAGE"), std::string::npos) << a.error;
}

TEST(GuestMemoryHugePages, BootedRamIsAlignedForEveryBacking) {
  for (bool anonymous : {true, false}) {
    GuestMemory mem = anonymous ? GuestMemory::create_anonymous(kHugeRamSize) : GuestMemory::create_memfd(kHugeRamSize);
    for (const auto& r : mem.regions()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r.host) % kHugePageSize, 0u) << anonymous;
    }
    EXPECT_FALSE(mem.huge_page_advice().asked);
  }
  GuestMemory reserved = GuestMemory::reserve(kHugeRamSize);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(reserved.regions()[0].host) % kHugePageSize, 0u);
}

TEST(GuestMemoryHugePages, MemfdWithHugePagesWorksWhateverTheHostGives) {
  GuestMemory mem = GuestMemory::create_memfd(kHugeRamSize, true);
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kSharedFile);
  const HugePageAdvice& a = mem.huge_page_advice();
  EXPECT_TRUE(a.asked);
  // Accepted, or refused with a reason: never a throw, never silent.
  EXPECT_TRUE(a.accepted || !a.error.empty());
  std::memset(mem.slice_for_write(0, kHugeRamSize).data(), 0x5a, kHugeRamSize);  // every page, as a guest would
  EXPECT_EQ(mem.read_obj<uint8_t>(kHugeRamSize - 1), 0x5a);
  const HugePageUsage u = mem.huge_page_usage();
  EXPECT_EQ(u.rss_bytes, kHugeRamSize);  // all touched, all counted (smaps over exactly this RAM)
  EXPECT_LE(u.huge_bytes(), u.rss_bytes);
  EXPECT_EQ(u.anon_huge_bytes, 0u);  // a memfd has no anonymous pages
  const ThpSettings thp = read_thp_settings();
  if (thp.shmem_enabled == "never" || thp.shmem_enabled == "deny" || !a.accepted) {
    EXPECT_EQ(u.file_pmd_bytes, 0u) << "shmem_enabled [" << thp.shmem_enabled << "]";
  }
  RecordProperty("shmem_enabled", thp.shmem_enabled);
  RecordProperty("file_pmd_mib", std::to_string(u.file_pmd_bytes >> 20));
}

TEST(GuestMemoryHugePages, MemfdWithHugePagesFreezesWithoutCopying) {
  GuestMemory mem = GuestMemory::create_memfd(kHugeRamSize, true);
  mem.write_obj<uint64_t>(0x200000, 0x1122334455667788ull);
  auto image = mem.freeze();
  EXPECT_EQ(image->layers().size(), 0u);  // the memfd itself is the base: nothing copied
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x200000), 0x1122334455667788ull);
  EXPECT_TRUE(mem.huge_page_advice().asked);  // describes how the RAM was made
  GuestMemory child = GuestMemory::map_image(image);
  EXPECT_EQ(child.read_obj<uint64_t>(0x200000), 0x1122334455667788ull);
  EXPECT_TRUE(child.private_extents().empty());
}

}  // namespace
}  // namespace forkvm
