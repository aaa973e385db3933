#include "vmm/arch/x86_64/page_tables.hpp"

#include <gtest/gtest.h>

#include "arch_test_util.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

TEST(PageTables, IdentityMapsFourGiBWithTwoMiBPages) {
  const GuestMemory mem = GuestMemory::create_anonymous(test::kTestMemSize);
  // Dirty the area first: the tables must not inherit stale entries.
  for (uint64_t a = layout::kPml4Start; a < layout::kPdStart + 4 * 4096; a += 8) {
    mem.write_obj<uint64_t>(a, ~0ull);
  }
  EXPECT_EQ(write_identity_page_tables(mem), layout::kPml4Start);

  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPml4Start), 0xa003u);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPml4Start + 8), 0u);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPdptStart + i * 8), (0xb000 + i * 0x1000) | 3);
  }
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPdptStart + 4 * 8), 0u);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPdStart), 0x83u);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPdStart + 8), 0x200083u);
  // Last entry of the fourth directory maps [4 GiB - 2 MiB, 4 GiB).
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kPdStart + 4 * 4096 - 8),
            (4ull << 30) - (2ull << 20) + 0x83);
  for (uint64_t i = 0; i < 2048; ++i) {
    ASSERT_EQ(mem.read_obj<uint64_t>(layout::kPdStart + i * 8), (i << 21) | 0x83) << i;
  }
}

}  // namespace
}  // namespace forkvm::x86
