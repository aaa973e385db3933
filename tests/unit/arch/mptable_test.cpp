#include "vmm/arch/x86_64/mptable.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

constexpr uint64_t kBase = layout::kMpTableStart;

template <typename T>
T at(const std::vector<uint8_t>& t, size_t off) {
  T v;
  std::memcpy(&v, t.data() + off, sizeof v);
  return v;
}

uint8_t sum(const std::vector<uint8_t>& t, size_t off, size_t len) {
  return static_cast<uint8_t>(std::accumulate(t.begin() + static_cast<long>(off),
                                              t.begin() + static_cast<long>(off + len), 0u));
}

struct Counts {
  int cpus = 0, bsp = 0, bus = 0, ioapic = 0, intsrc = 0, lint = 0;
};

/// Walks the configuration table's entries by type (MPSpec 1.4 Table 4-3 sizes).
Counts walk(const std::vector<uint8_t>& t, uint32_t ncpus) {
  Counts c;
  size_t off = 16 + 44;
  const uint16_t count = at<uint16_t>(t, 16 + 34);
  for (uint16_t i = 0; i < count; ++i) {
    const uint8_t type = t.at(off);
    if (type == kMpProcessor) {
      EXPECT_EQ(t[off + 1], c.cpus);           // APIC id = index
      EXPECT_EQ(t[off + 2], kLapicVersion);
      EXPECT_TRUE(t[off + 3] & 1);             // enabled
      c.bsp += (t[off + 3] & 2) ? 1 : 0;
      ++c.cpus;
      off += 20;
      continue;
    }
    if (type == kMpBus) {
      EXPECT_EQ(std::memcmp(&t[off + 2], "ISA   ", 6), 0);
      ++c.bus;
    } else if (type == kMpIoapic) {
      EXPECT_EQ(t[off + 1], ncpus);
      EXPECT_EQ(t[off + 2], 0x11);
      EXPECT_EQ(at<uint32_t>(t, off + 4), layout::kIoapicStart);
      ++c.ioapic;
    } else if (type == kMpIoInterrupt) {
      EXPECT_EQ(t[off + 1], kMpIntInt);
      EXPECT_EQ(t[off + 5], c.intsrc);         // ISA IRQ n ...
      EXPECT_EQ(t[off + 6], ncpus);            // ... to the IOAPIC ...
      EXPECT_EQ(t[off + 7], c.intsrc);         // ... pin n
      ++c.intsrc;
    } else if (type == kMpLocalInterrupt) {
      EXPECT_EQ(t[off + 1], c.lint == 0 ? kMpIntExtInt : kMpIntNmi);
      EXPECT_EQ(t[off + 7], c.lint);           // LINT0, LINT1
      ++c.lint;
    } else {
      ADD_FAILURE() << "unknown entry type " << int{type};
      break;
    }
    off += 8;
  }
  EXPECT_EQ(off, t.size());
  return c;
}

class MpTableCounts : public testing::TestWithParam<uint32_t> {};

TEST_P(MpTableCounts, ChecksumsAndEntries) {
  const uint32_t n = GetParam();
  const std::vector<uint8_t> t = build_mptable(n, kBase);
  ASSERT_EQ(t.size(), mptable_size(n));
  // Floating pointer (MPSpec §4.1).
  EXPECT_EQ(std::memcmp(t.data(), "_MP_", 4), 0);
  EXPECT_EQ(at<uint32_t>(t, 4), kBase + 16);
  EXPECT_EQ(t[8], 1);  // length in paragraphs
  EXPECT_EQ(t[9], 4);  // spec rev
  EXPECT_EQ(sum(t, 0, 16), 0);
  // Configuration table (MPSpec §4.2).
  EXPECT_EQ(std::memcmp(t.data() + 16, "PCMP", 4), 0);
  const uint16_t len = at<uint16_t>(t, 16 + 4);
  EXPECT_EQ(len, t.size() - 16);
  EXPECT_EQ(t[16 + 6], 4);
  EXPECT_EQ(sum(t, 16, len), 0);
  EXPECT_EQ(at<uint32_t>(t, 16 + 36), layout::kLapicStart);
  EXPECT_EQ(at<uint16_t>(t, 16 + 34), n + 1 + 1 + 24 + 2);

  const Counts c = walk(t, n);
  EXPECT_EQ(c.cpus, static_cast<int>(n));
  EXPECT_EQ(c.bsp, 1);
  EXPECT_EQ(c.bus, 1);
  EXPECT_EQ(c.ioapic, 1);
  EXPECT_EQ(c.intsrc, 24);
  EXPECT_EQ(c.lint, 2);
}

INSTANTIATE_TEST_SUITE_P(Cpus, MpTableCounts, testing::Values(1u, 2u, 64u));

TEST(MpTable, RejectsZeroAndTooManyCpus) {
  EXPECT_THROW(build_mptable(0, kBase), ConfigError);
  EXPECT_THROW(build_mptable(65, kBase), ConfigError);
  const GuestMemory mem = GuestMemory::create_anonymous(test::kTestMemSize);
  EXPECT_THROW(write_mptable(mem, 0), ConfigError);
  EXPECT_THROW(write_mptable(mem, 65), ConfigError);
}

TEST(MpTable, WrittenAtTheEbdaAndFitsTheReservedArea) {
  const GuestMemory mem = GuestMemory::create_anonymous(test::kTestMemSize);
  write_mptable(mem, 64);
  EXPECT_EQ(mem.read_obj<uint32_t>(layout::kMpTableStart), 0x5f504d5fu);  // "_MP_"
  EXPECT_LE(layout::kMpTableStart + mptable_size(layout::kMaxVcpus), layout::kEbdaReservedEnd);
  std::vector<uint8_t> back(mptable_size(64));
  mem.read(layout::kMpTableStart, back);
  EXPECT_EQ(back, build_mptable(64, layout::kMpTableStart));
}

}  // namespace
}  // namespace forkvm::x86
