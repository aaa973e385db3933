// Freezing image-mapped RAM from logs instead of a pagemap scan: the write log's bits
// (WriteLog), their union with a dirty log as extents (written_extents), every GuestMemory write
// path marking the log, freeze(guest_written) copying exactly the logged pages, and the check
// (FORKVM_CHECK_WRITE_LOG=1) that fails a freeze when a page was written behind both logs.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"
#include "memory/written_pages.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;
constexpr uint64_t kPage = layout::kPageSize;
constexpr uint64_t kRam = 8 * layout::kMiB;  // one region, 2048 pages

/// The pages set in `bitmaps` (region 0 only), in ascending order.
std::vector<uint64_t> set_pages(const PageBitmaps& bitmaps) {
  std::vector<uint64_t> out;
  if (bitmaps.empty()) return out;
  for (size_t w = 0; w < bitmaps[0].size(); ++w) {
    for (uint64_t b = 0; b < 64; ++b) {
      if ((bitmaps[0][w] >> b) & 1) out.push_back(w * 64 + b);
    }
  }
  return out;
}

/// One bitmap for a kRam region with `pages` set.
PageBitmaps bitmap_with(const std::vector<uint64_t>& pages) {
  PageBitmaps b(1, std::vector<uint64_t>(bitmap_words(kRam)));
  for (const uint64_t p : pages) b[0][p / 64] |= uint64_t{1} << (p % 64);
  return b;
}

/// Sets every byte of page `page` to `value` through the logged write path.
void set_page(const GuestMemory& mem, uint64_t page, uint8_t value) {
  const auto dst = mem.slice_for_write(page * kPage, kPage);
  std::memset(dst.data(), value, kPage);
}

/// Sets page `page` to `value` behind the write log, as the guest (through KVM) or a writer that
/// bypassed the writing views would.
void set_page_unlogged(const GuestMemory& mem, uint64_t page, uint8_t value) {
  std::memset(const_cast<uint8_t*>(mem.slice(page * kPage, kPage).data()), value, kPage);
}

bool page_holds(const GuestMemory& mem, uint64_t page, uint8_t value) {
  const auto src = mem.slice(page * kPage, kPage);
  return std::all_of(src.begin(), src.end(), [value](uint8_t b) { return b == value; });
}

/// A kRam image whose every page holds 0x11.
std::shared_ptr<const MemoryImage> filled_image() {
  GuestMemory mem = GuestMemory::create_memfd(kRam);
  std::memset(mem.slice_for_write(0, kRam).data(), 0x11, kRam);
  return mem.freeze();
}

/// Freezes `mem` with a dirty log naming `guest_pages` (the guest's writes) and maps the image
/// as a child would.
GuestMemory freeze_into_child(GuestMemory& mem, const std::vector<uint64_t>& guest_pages = {}) {
  const PageBitmaps guest = bitmap_with(guest_pages);
  return GuestMemory::map_image(mem.freeze(&guest));
}

/// Sets FORKVM_CHECK_WRITE_LOG for one scope.
class CheckWriteLog {
 public:
  CheckWriteLog() { ::setenv("FORKVM_CHECK_WRITE_LOG", "1", 1); }
  ~CheckWriteLog() { ::unsetenv("FORKVM_CHECK_WRITE_LOG"); }
};

TEST(WriteLog, MarksEveryPageARangeTouchesAndTakeClears) {
  WriteLog log({kRam});
  log.mark(0, 5 * kPage + 100, 1);             // one byte: its page
  log.mark(0, 62 * kPage + 4000, 200);         // crosses pages 62 and 63
  log.mark(0, 63 * kPage, 3 * kPage);          // crosses a word: 63, 64, 65
  log.mark(0, 2047 * kPage, 10 * kPage);       // clipped at the region's end
  log.mark(1, 0, kPage);                       // no such region: ignored
  log.mark(0, 9 * kPage, 0);                   // empty: nothing
  EXPECT_EQ(set_pages(log.take()), (std::vector<uint64_t>{5, 62, 63, 64, 65, 2047}));
  EXPECT_TRUE(set_pages(log.take()).empty()) << "take() must clear";
}

TEST(WriteLog, RestoreGivesBackWhatATakeRemoved) {
  WriteLog log({kRam});
  log.mark(0, 7 * kPage, kPage);
  const PageBitmaps taken = log.take();
  log.mark(0, 100 * kPage, kPage);
  log.restore(taken);
  log.restore(bitmap_with({1000}));
  EXPECT_EQ(set_pages(log.take()), (std::vector<uint64_t>{7, 100, 1000}));
}

TEST(WrittenExtents, UnionOfBothLogsMergedAndPlacedByRegion) {
  // Two regions as around the MMIO hole: 3 pages at file offset 0, 130 pages after them.
  const std::vector<MemoryImage::Extent> regions{{0, 3 * kPage}, {3 * kPage, 130 * kPage}};
  PageBitmaps guest{{0b011}, {0, 0, 0}};
  PageBitmaps host{{0b100 | (uint64_t{1} << 9)}, {uint64_t{1} << 63, 1, 0b11}};
  // Region 0: pages 0-2 (bit 9 lies past its 3 pages: ignored). Region 1: 63, 64 | 128, 129.
  const auto extents = written_extents(guest, host, regions);
  ASSERT_EQ(extents.size(), 3u);
  EXPECT_EQ(extents[0].offset, 0u);
  EXPECT_EQ(extents[0].length, 3 * kPage);
  EXPECT_EQ(extents[1].offset, (3 + 63) * kPage);
  EXPECT_EQ(extents[1].length, 2 * kPage);
  EXPECT_EQ(extents[2].offset, (3 + 128) * kPage);
  EXPECT_EQ(extents[2].length, 2 * kPage);
  EXPECT_TRUE(written_extents({}, {}, regions).empty());
}

TEST(GuestMemoryWriteLog, EveryWritePathIsLoggedAndReadsAreNot) {
  GuestMemory mem = GuestMemory::map_image(filled_image());
  mem.start_write_log();
  ASSERT_TRUE(mem.write_logged());
  const uint8_t bytes[3] = {1, 2, 3};
  mem.write(3 * kPage + 10, bytes);
  mem.write_obj<uint64_t>(70 * kPage - 4, 0);  // straddles pages 69 and 70
  EXPECT_TRUE(mem.store_u16(130 * kPage, 7, std::memory_order_release));
  ASSERT_TRUE(mem.try_slice_for_write(200 * kPage, 2 * kPage));
  // Reads: none of these log.
  uint8_t out[8];
  mem.read(300 * kPage, out);
  (void)mem.read_obj<uint64_t>(301 * kPage);
  (void)mem.load_u16(302 * kPage, std::memory_order_acquire);
  (void)mem.slice(303 * kPage, kPage);
  // A failed access logs nothing either.
  EXPECT_FALSE(mem.try_slice_for_write(kRam, 1));
  EXPECT_FALSE(mem.store_u16(kRam, 1, std::memory_order_relaxed));

  const PageBitmaps none = bitmap_with({});
  // freeze() with the logs: the new layer holds the logged pages, whatever the scan would say.
  const auto image = mem.freeze(&none);
  ASSERT_FALSE(image->layers().empty());
  std::vector<uint64_t> pages;
  for (const Extent& e : image->layers().back()->extents) {
    for (uint64_t o = e.offset; o < e.offset + e.length; o += kPage) pages.push_back(o / kPage);
  }
  for (const uint64_t want : {3u, 69u, 70u, 130u, 200u, 201u}) {
    EXPECT_NE(std::find(pages.begin(), pages.end(), want), pages.end()) << "page " << want;
  }
  for (const uint64_t read_only : {300u, 301u, 302u, 303u}) {
    // Layers coalesce short gaps, so a read page may ride along only inside a written run.
    EXPECT_EQ(std::find(pages.begin(), pages.end(), read_only), pages.end()) << "page " << read_only;
  }
}

TEST(GuestMemoryWriteLog, FreezeCopiesTheGuestsAndTheHostsPagesOnly) {
  GuestMemory mem = GuestMemory::map_image(filled_image());
  mem.start_write_log();
  set_page(mem, 10, 0x22);                           // host code: logged
  set_page_unlogged(mem, 500, 0x33);  // "guest"
  set_page_unlogged(mem, 1500, 0x44);  // unlogged
  const PageBitmaps guest = bitmap_with({500});  // what KVM's dirty log would say
  const auto image = mem.freeze(&guest);

  const GuestMemory child = GuestMemory::map_image(image);
  EXPECT_TRUE(page_holds(child, 10, 0x22)) << "the host's write missed the image";
  EXPECT_TRUE(page_holds(child, 500, 0x33)) << "the guest's write missed the image";
  EXPECT_TRUE(page_holds(child, 1500, 0x11))
      << "a page neither log names was copied: the freeze did not follow the logs";
  // The frozen RAM itself still reads what it wrote.
  EXPECT_TRUE(page_holds(mem, 1500, 0x44));

  // Logs start again empty: the next freeze copies only what is written after this one.
  set_page(mem, 20, 0x55);
  const GuestMemory grandchild = freeze_into_child(mem);
  EXPECT_EQ(mem.image()->layers().size(), image->layers().size() + 1);
  EXPECT_TRUE(page_holds(grandchild, 20, 0x55));
  EXPECT_TRUE(page_holds(grandchild, 10, 0x22));
}

TEST(GuestMemoryWriteLog, CheckFailsAFreezeThatWouldMissAWriteAndKeepsTheLogs) {
  GuestMemory mem = GuestMemory::map_image(filled_image());
  mem.start_write_log();
  set_page(mem, 10, 0x22);
  // Written behind both logs (as a device writing through a read view would).
  set_page_unlogged(mem, 700, 0x66);
  const PageBitmaps guest = bitmap_with({40});
  set_page_unlogged(mem, 40, 0x77);
  {
    CheckWriteLog check;
    try {
      (void)mem.freeze(&guest);
      ADD_FAILURE() << "the freeze accepted a page no log names";
    } catch (const GuestMemoryError& e) {
      EXPECT_NE(std::string(e.what()).find("0x2bc000"), std::string::npos) << e.what();
    }
  }
  // Nothing was lost: the logged pages (the host's and the guest's, whose dirty log was read
  // already) go into the next freeze.
  const GuestMemory child = freeze_into_child(mem);
  EXPECT_TRUE(page_holds(child, 10, 0x22));
  EXPECT_TRUE(page_holds(child, 40, 0x77));
}

TEST(GuestMemoryWriteLog, CheckAcceptsPagesTakenAheadWithTheirContent) {
  GuestMemory mem = GuestMemory::map_image(filled_image());
  mem.start_write_log();
  // A pooled VM takes pages ahead (private copies, the image's bytes): not writes.
  GuestMemory::Touched ahead;
  ahead.written.push_back({64 * kPage, 16 * kPage});
  (void)mem.prefault(ahead);
  set_page(mem, 3, 0x22);
  CheckWriteLog check;
  EXPECT_TRUE(page_holds(freeze_into_child(mem), 3, 0x22));
}

TEST(GuestMemoryWriteLog, WithoutGuestPagesFreezeScansAsBefore) {
  GuestMemory mem = GuestMemory::map_image(filled_image());
  mem.start_write_log();
  set_page_unlogged(mem, 1500, 0x44);
  const auto image = mem.freeze();  // no dirty log (a VM whose slots are not logged)
  EXPECT_TRUE(page_holds(GuestMemory::map_image(image), 1500, 0x44));
}

TEST(GuestMemoryWriteLog, ConcurrentMarksAreNotLost) {
  // Device workers write from several threads: fetch_or, not a read-modify-write race.
  WriteLog log({kRam});
  std::atomic<bool> go{false};
  auto marker = [&](uint64_t first) {
    while (!go.load()) {
    }
    for (uint64_t p = first; p < 2048; p += 2) log.mark(0, p * kPage, 1);
  };
  std::thread even(marker, 0);
  std::thread odd(marker, 1);
  go.store(true);
  even.join();
  odd.join();
  EXPECT_EQ(set_pages(log.take()).size(), 2048u);
}

}  // namespace
}  // namespace forkvm
