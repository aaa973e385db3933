#include "vmm/arch/x86_64/gdt.hpp"

#include <gtest/gtest.h>

#include "arch_test_util.hpp"

namespace forkvm::x86 {
namespace {

TEST(Gdt, BootEntriesMatchTheKnownEncodings) {
  constexpr auto gdt = boot_gdt();
  EXPECT_EQ(gdt[0], 0u);
  EXPECT_EQ(gdt[1], 0x00af9b000000ffffull);
  EXPECT_EQ(gdt[2], 0x00cf93000000ffffull);
  EXPECT_EQ(gdt[3], 0x008f8b000000ffffull);
}

TEST(Gdt, CodeSegmentIs64BitFlat) {
  const kvm_segment s = segment_from_gdt(boot_gdt()[1], 1);
  EXPECT_EQ(s.base, 0u);
  EXPECT_EQ(s.limit, 0xffffffffu);
  EXPECT_EQ(s.selector, 0x08);
  EXPECT_EQ(s.type, 0xb);
  EXPECT_EQ(s.present, 1);
  EXPECT_EQ(s.dpl, 0);
  EXPECT_EQ(s.db, 0);
  EXPECT_EQ(s.s, 1);
  EXPECT_EQ(s.l, 1);
  EXPECT_EQ(s.g, 1);
  EXPECT_EQ(s.avl, 0);
  EXPECT_EQ(s.unusable, 0);
}

TEST(Gdt, DataAndTssSegments) {
  const kvm_segment d = segment_from_gdt(boot_gdt()[2], 2);
  EXPECT_EQ(d.selector, 0x10);
  EXPECT_EQ(d.type, 0x3);
  EXPECT_EQ(d.db, 1);
  EXPECT_EQ(d.l, 0);
  EXPECT_EQ(d.s, 1);
  const kvm_segment t = segment_from_gdt(boot_gdt()[3], 3);
  EXPECT_EQ(t.selector, 0x18);
  EXPECT_EQ(t.type, 0xb);
  EXPECT_EQ(t.s, 0);
  EXPECT_EQ(t.limit, 0xffffffffu);
}

TEST(Gdt, BaseLimitAndFlagsRoundTrip) {
  // Byte-granular limit, a base spread over both base fields, DPL 3, AVL set.
  const uint64_t e = gdt_entry(0x10f2, 0x12345678, 0xabcde);
  const kvm_segment s = segment_from_gdt(e, 5);
  EXPECT_EQ(s.base, 0x12345678u);
  EXPECT_EQ(s.limit, 0xabcdeu);
  EXPECT_EQ(s.g, 0);
  EXPECT_EQ(s.avl, 1);
  EXPECT_EQ(s.dpl, 3);
  EXPECT_EQ(s.type, 0x2);
  EXPECT_EQ(s.selector, 0x28);
}

TEST(Gdt, NullDescriptorIsUnusable) {
  const kvm_segment s = segment_from_gdt(0, 0);
  EXPECT_EQ(s.present, 0);
  EXPECT_EQ(s.unusable, 1);
}

TEST(Gdt, WrittenToGuestMemory) {
  const GuestMemory mem = GuestMemory::create_anonymous(test::kTestMemSize);
  mem.write_obj<uint64_t>(layout::kIdtStart, ~0ull);
  write_gdt_and_idt(mem);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kGdtStart + 8), 0x00af9b000000ffffull);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kGdtStart + 24), 0x008f8b000000ffffull);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kIdtStart), 0u);
}

}  // namespace
}  // namespace forkvm::x86
