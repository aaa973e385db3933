#include "memory/guest_memory.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

TEST(GuestMemory, SmallMemoryIsOneRegionFromZero) {
  auto mem = GuestMemory::create_anonymous(64 * layout::kMiB);
  ASSERT_EQ(mem.regions().size(), 1u);
  EXPECT_EQ(mem.regions()[0].gpa, 0u);
  EXPECT_EQ(mem.size(), 64 * layout::kMiB);
}

TEST(GuestMemory, LargeMemorySkipsTheMmioHole) {
  auto mem = GuestMemory::create_anonymous(4 * layout::kGiB);
  ASSERT_EQ(mem.regions().size(), 2u);
  EXPECT_EQ(mem.regions()[0].size, layout::kMmioHoleStart);
  EXPECT_EQ(mem.regions()[1].gpa, layout::kMmioHoleEnd);
  EXPECT_EQ(mem.regions()[1].size, 1 * layout::kGiB);
  EXPECT_FALSE(mem.try_slice(layout::kMmioHoleStart, 1));
  EXPECT_TRUE(mem.try_slice(layout::kMmioHoleEnd, 4096));
}

TEST(GuestMemory, ExtentPiecesAreClippedToEachRegion) {
  auto mem = GuestMemory::create_anonymous(4 * layout::kGiB);  // two regions around the hole
  const uint64_t hole = layout::kMmioHoleStart;  // also the second region's file offset
  std::vector<GuestMemory::ExtentPiece> pieces;
  auto collect = [&pieces](const GuestMemory::ExtentPiece& p) {
    pieces.push_back(p);
    return true;
  };
  // Across the hole: one page either side; past the end of RAM; an end that would wrap.
  const std::vector<MemoryImage::Extent> extents = {
      {hole - 4096, 8192}, {4 * layout::kGiB, 4096}, {UINT64_MAX - 4095, 8192}};
  EXPECT_TRUE(mem.for_each_piece(extents, collect));
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].gpa, hole - 4096);
  EXPECT_EQ(pieces[0].file_offset, hole - 4096);
  EXPECT_EQ(pieces[0].length, 4096u);
  EXPECT_EQ(pieces[0].host, mem.regions()[0].host + (hole - 4096));
  EXPECT_EQ(pieces[1].gpa, layout::kMmioHoleEnd);
  EXPECT_EQ(pieces[1].file_offset, hole);
  EXPECT_EQ(pieces[1].length, 4096u);
  EXPECT_EQ(pieces[1].host, mem.regions()[1].host);

  int calls = 0;
  EXPECT_FALSE(mem.for_each_piece(extents, [&calls](const GuestMemory::ExtentPiece&) {
    ++calls;
    return false;
  }));
  EXPECT_EQ(calls, 1) << "a false return stops the walk";
}

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_THROW(GuestMemory::create_anonymous(0), ConfigError);
  EXPECT_THROW(GuestMemory::create_anonymous(4097), ConfigError);
}

TEST(GuestMemory, ObjectsRoundTrip) {
  auto mem = GuestMemory::create_anonymous(64 * layout::kMiB);
  mem.write_obj<uint64_t>(0x1000, 0x1122334455667788ull);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x1000), 0x1122334455667788ull);
  std::array<uint8_t, 3> out{};
  mem.read(0x1000, out);
  EXPECT_EQ(out[0], 0x88);
}

TEST(GuestMemory, AtomicU16AccessesAreCheckedAndLittleEndianInPlace) {
  auto mem = GuestMemory::create_anonymous(2 * layout::kMiB);
  ASSERT_TRUE(mem.store_u16(0x1002, 0xBEEF, std::memory_order_release));
  EXPECT_EQ(mem.read_obj<uint16_t>(0x1002), 0xBEEF);  // the same bytes a plain copy sees
  mem.write_obj<uint16_t>(0x2000, 0x1234);
  EXPECT_EQ(mem.load_u16(0x2000, std::memory_order_acquire), 0x1234);
  // Odd addresses (no atomic access there), the last byte of RAM and beyond it are refused
  // without touching anything.
  EXPECT_FALSE(mem.load_u16(0x1001, std::memory_order_acquire).has_value());
  EXPECT_FALSE(mem.store_u16(0x1001, 1, std::memory_order_release));
  EXPECT_EQ(mem.read_obj<uint16_t>(0x1002), 0xBEEF);
  EXPECT_TRUE(mem.load_u16(mem.size() - 2, std::memory_order_relaxed).has_value());
  EXPECT_FALSE(mem.load_u16(mem.size() - 1, std::memory_order_relaxed).has_value());
  EXPECT_FALSE(mem.load_u16(mem.size(), std::memory_order_relaxed).has_value());
  EXPECT_FALSE(mem.store_u16(UINT64_MAX - 1, 1, std::memory_order_relaxed));
}

TEST(GuestMemory, ChecksEveryBoundAndOverflow) {
  auto mem = GuestMemory::create_anonymous(64 * layout::kMiB);
  const uint64_t end = mem.size();
  EXPECT_TRUE(mem.try_slice(end - 8, 8));
  EXPECT_FALSE(mem.try_slice(end - 8, 9));
  EXPECT_FALSE(mem.try_slice(end, 1));
  EXPECT_TRUE(mem.try_slice(end, 0));  // empty slice at the end is allowed
  EXPECT_FALSE(mem.try_slice(UINT64_MAX, 2));
  EXPECT_FALSE(mem.try_slice(8, UINT64_MAX));
  EXPECT_THROW(mem.read_obj<uint32_t>(end - 2), GuestMemoryError);
  EXPECT_THROW(mem.write_obj<uint32_t>(UINT64_MAX - 1, 1), GuestMemoryError);
}

TEST(GuestMemory, MoveTransfersOwnership) {
  auto a = GuestMemory::create_anonymous(64 * layout::kMiB);
  a.write_obj<uint32_t>(0, 7);
  GuestMemory b = std::move(a);
  EXPECT_EQ(b.read_obj<uint32_t>(0), 7u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is defined
  EXPECT_FALSE(a.try_slice(0, 1));
}

}  // namespace
}  // namespace forkvm
