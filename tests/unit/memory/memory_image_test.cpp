// MemoryImage and GuestMemory::freeze / map_image without a VM: freezing RAM of each backing
// into an image, re-mapping it copy-on-write at the same addresses, overlay layers of written
// pages only (coalesced, merged past kMaxLayers / kMaxExtents), private_extents(), usage(), and
// what with_layer / from_file refuse.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"
#include "memory/memory_image.hpp"
#include "tests/support/file_stat.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;
using test::allocated_bytes;
using test::stat_of;
using Image = std::shared_ptr<const MemoryImage>;

constexpr uint64_t kPage = layout::kPageSize;
constexpr uint64_t kMiB = layout::kMiB;
constexpr uint64_t kSize = 16 * kMiB;

/// The 8-byte word a pattern with `tag` holds at memory-file offset `offset`.
constexpr uint64_t word(uint64_t tag, uint64_t offset) { return (tag << 48) ^ offset; }

/// Fills one page with the pattern `tag`.
void fill_page(const GuestMemory& mem, uint64_t offset, uint64_t tag) {
  for (uint64_t o = offset; o < offset + kPage; o += 8) mem.write_obj<uint64_t>(o, word(tag, o));
}

/// Whether the page at `offset` holds the pattern `tag` (first, middle and last word).
::testing::AssertionResult page_is(const GuestMemory& mem, uint64_t offset, uint64_t tag) {
  for (const uint64_t o : {offset, offset + kPage / 2, offset + kPage - 8}) {
    const uint64_t got = mem.read_obj<uint64_t>(o);
    if (got != word(tag, o)) {
      return ::testing::AssertionFailure()
             << "at 0x" << std::hex << o << ": 0x" << got << ", want pattern " << std::dec << tag
             << " (0x" << std::hex << word(tag, o) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult page_is_zero(const GuestMemory& mem, uint64_t offset) {
  for (uint64_t o = offset; o < offset + kPage; o += 8) {
    if (mem.read_obj<uint64_t>(o) != 0) {
      return ::testing::AssertionFailure() << "non-zero word at 0x" << std::hex << o;
    }
  }
  return ::testing::AssertionSuccess();
}

/// The pages (offsets) covered by `extents`.
std::set<uint64_t> pages_of(const std::vector<Extent>& extents) {
  std::set<uint64_t> pages;
  for (const auto& e : extents) {
    for (uint64_t o = e.offset; o < e.offset + e.length; o += kPage) pages.insert(o);
  }
  return pages;
}

/// Every extent of every layer of `image`.
std::vector<Extent> all_extents(const MemoryImage& image) {
  std::vector<Extent> all;
  for (const auto& l : image.layers()) all.insert(all.end(), l->extents.begin(), l->extents.end());
  return all;
}

bool covers(const std::vector<Extent>& extents, uint64_t offset, uint64_t len) {
  for (const auto& e : extents) {
    if (offset >= e.offset && offset + len <= e.offset + e.length) return true;
  }
  return false;
}

/// Checks the invariants every image's layers keep (memory_image.hpp).
void expect_well_formed(const MemoryImage& image) {
  uint64_t total = 0;
  size_t count = 0;
  for (size_t i = 0; i < image.layers().size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const MemoryImage::Layer& layer = *image.layers()[i];
    EXPECT_EQ(static_cast<uint64_t>(stat_of(layer.fd.get()).st_size), image.size())
        << "a layer is a memfd of the full RAM size";
    const int seals = fcntl(layer.fd.get(), F_GET_SEALS);
    EXPECT_NE(seals & F_SEAL_SHRINK, 0) << "a layer must be sealed against shrinking";
    EXPECT_NE(seals & F_SEAL_GROW, 0) << "a layer must be sealed against growing";
    uint64_t bytes = 0;
    for (size_t k = 0; k < layer.extents.size(); ++k) {
      const Extent& e = layer.extents[k];
      EXPECT_EQ(e.offset % kPage, 0u);
      EXPECT_EQ(e.length % kPage, 0u);
      EXPECT_GT(e.length, 0u);
      EXPECT_LE(e.offset + e.length, image.size());
      if (k > 0) {
        const Extent& prev = layer.extents[k - 1];
        EXPECT_GT(e.offset, prev.offset + prev.length) << "extents must be sorted, disjoint and "
                                                          "non-adjacent (extent " << k << ")";
      }
      bytes += e.length;
    }
    EXPECT_EQ(layer.bytes, bytes);
    total += bytes;
    count += layer.extents.size();
  }
  EXPECT_EQ(image.overlay_bytes(), total);
  EXPECT_EQ(image.extent_count(), count);
  EXPECT_LE(image.layers().size(), MemoryImage::kMaxLayers);
  EXPECT_LE(image.extent_count(), MemoryImage::kMaxExtents);
}

/// A base image of `size` bytes whose page at each of `pages` holds pattern 0.
Image base_image(uint64_t size, const std::vector<uint64_t>& pages) {
  GuestMemory mem = GuestMemory::create_memfd(size);
  for (const uint64_t p : pages) fill_page(mem, p, 0);
  return mem.freeze();
}

// --- freeze by backing ----------------------------------------------------------------------

TEST(MemoryImageFreeze, SharedMemfdBecomesTheBaseWithoutACopy) {
  GuestMemory mem = GuestMemory::create_memfd(kSize);
  fill_page(mem, 0x1000, 1);
  fill_page(mem, kSize - kPage, 2);
  const struct stat before = stat_of(mem.backing_fd());
  uint8_t* const host = mem.regions()[0].host;

  const Image image = mem.freeze();
  ASSERT_TRUE(image);
  EXPECT_EQ(image->size(), kSize);
  EXPECT_TRUE(image->layers().empty());
  EXPECT_EQ(image->overlay_bytes(), 0u);
  EXPECT_EQ(image->extent_count(), 0u);
  const struct stat base = stat_of(image->base_fd());
  EXPECT_EQ(base.st_ino, before.st_ino) << "the memfd must be the base itself, not a copy";
  EXPECT_EQ(base.st_dev, before.st_dev);

  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(mem.image(), image);
  EXPECT_EQ(mem.regions()[0].host, host) << "freeze() must keep the host addresses";
  EXPECT_TRUE(page_is(mem, 0x1000, 1));
  EXPECT_TRUE(page_is(mem, kSize - kPage, 2));
  EXPECT_TRUE(page_is_zero(mem, 0x2000));

  // Writes after the freeze stay in this mapping.
  fill_page(mem, 0x1000, 3);
  EXPECT_TRUE(page_is(mem, 0x1000, 3));
  const GuestMemory view = GuestMemory::map_image(image);
  EXPECT_TRUE(page_is(view, 0x1000, 1)) << "a write after the freeze reached the image";
  uint64_t in_file = 0;
  ASSERT_EQ(pread(image->base_fd(), &in_file, sizeof in_file, 0x1000),
            static_cast<ssize_t>(sizeof in_file));
  EXPECT_EQ(in_file, word(1, 0x1000));
}

TEST(MemoryImageFreeze, TheFrozenMemfdIsSealedAgainstWrites) {
  GuestMemory mem = GuestMemory::create_memfd(kSize);
  fill_page(mem, 0x1000, 1);
  const Image image = mem.freeze();
  ASSERT_TRUE(image);
  const int seals = fcntl(image->base_fd(), F_GET_SEALS);
  EXPECT_NE(seals & F_SEAL_WRITE, 0) << "the base of an image must be immutable";
  EXPECT_NE(seals & F_SEAL_SEAL, 0);
  // A writer faults at the write, not in a child later.
  const uint64_t junk = 0xdeadbeef;
  EXPECT_EQ(pwrite(image->base_fd(), &junk, sizeof junk, 0x1000), -1);
  EXPECT_EQ(errno, EPERM);
  void* shared = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, image->base_fd(), 0);
  EXPECT_EQ(shared, MAP_FAILED) << "a writable shared mapping of a frozen base was allowed";
  if (shared != MAP_FAILED) munmap(shared, kPage);
  // Copy-on-write views (the children) still work.
  GuestMemory view = GuestMemory::map_image(image);
  fill_page(view, 0x1000, 2);
  EXPECT_TRUE(page_is(view, 0x1000, 2));
  EXPECT_TRUE(page_is(GuestMemory::map_image(image), 0x1000, 1));
}

TEST(MemoryImageFreeze, AnotherSharedMappingOfTheRamFailsTheFreeze) {
  // Something still mapping the RAM shared (a device with its own mapping, say) could change the
  // image under its children: the freeze must refuse instead of handing out that image.
  GuestMemory mem = GuestMemory::create_memfd(kSize);
  void* other = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, mem.backing_fd(), 0);
  ASSERT_NE(other, MAP_FAILED);
  try {
    mem.freeze();
    ADD_FAILURE() << "freeze() accepted RAM that is still mapped shared";
  } catch (const GuestMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("still mapped shared"), std::string::npos) << e.what();
  }
  munmap(other, kPage);
}

TEST(MemoryImageFreeze, AnonymousRamIsCopiedOnlyWhereTouched) {
  constexpr uint64_t size = 64 * kMiB;
  GuestMemory mem = GuestMemory::create_anonymous(size);
  for (const uint64_t p : {uint64_t{0}, 5 * kMiB, size - kPage}) fill_page(mem, p, 7);
  uint8_t* const host = mem.regions()[0].host;

  const Image image = mem.freeze();
  ASSERT_TRUE(image);
  expect_well_formed(*image);
  // The touched pages go into a new memfd: as its base, or (as implemented) as one layer over
  // an all-zero sparse base; either way only they are copied, never the whole RAM.
  EXPECT_LE(image->layers().size(), 1u);
  EXPECT_EQ(static_cast<uint64_t>(stat_of(image->base_fd()).st_size), size);
  uint64_t allocated = allocated_bytes(image->base_fd());
  for (const auto& layer : image->layers()) allocated += allocated_bytes(layer->fd.get());
  EXPECT_LT(allocated, 1 * kMiB) << "the image must hold only the touched pages, not the whole RAM";
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(mem.regions()[0].host, host);

  const GuestMemory view = GuestMemory::map_image(image);
  for (const uint64_t p : {uint64_t{0}, 5 * kMiB, size - kPage}) {
    EXPECT_TRUE(page_is(mem, p, 7));
    EXPECT_TRUE(page_is(view, p, 7));
  }
  EXPECT_TRUE(page_is_zero(view, kMiB));
  fill_page(mem, 5 * kMiB, 8);
  EXPECT_TRUE(page_is(view, 5 * kMiB, 7));
  EXPECT_TRUE(page_is(GuestMemory::map_image(image), 5 * kMiB, 7));
}

TEST(MemoryImageFreeze, ViewsOfOneImageAreIsolatedFromEachOther) {
  const Image image = base_image(kSize, {0x4000});
  GuestMemory a = GuestMemory::map_image(image);
  GuestMemory b = GuestMemory::map_image(image);
  EXPECT_EQ(a.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(a.image(), image);
  fill_page(a, 0x4000, 1);
  fill_page(b, 0x8000, 2);
  EXPECT_TRUE(page_is(a, 0x4000, 1));
  EXPECT_TRUE(page_is(b, 0x4000, 0));
  EXPECT_TRUE(page_is_zero(a, 0x8000));
  EXPECT_TRUE(page_is(b, 0x8000, 2));
  EXPECT_TRUE(page_is(GuestMemory::map_image(image), 0x4000, 0));
  EXPECT_TRUE(page_is_zero(GuestMemory::map_image(image), 0x8000));
}

TEST(MemoryImageFreeze, MappingKeepsTheImageAlive) {
  std::weak_ptr<const MemoryImage> weak;
  GuestMemory view = [&] {
    Image image = base_image(kSize, {0x3000});
    weak = image;
    return GuestMemory::map_image(image);
  }();
  EXPECT_FALSE(weak.expired()) << "map_image must hold the image";
  EXPECT_TRUE(page_is(view, 0x3000, 0));
  { GuestMemory gone = std::move(view); }
  EXPECT_TRUE(weak.expired()) << "the last mapping gone, the image should be released";
}

// --- private_extents and usage --------------------------------------------------------------

TEST(MemoryImagePrivateExtents, AreExactlyTheWrittenPages) {
  const Image image = base_image(kSize, {3 * kPage, 4 * kPage, 20 * kPage});
  GuestMemory mem = GuestMemory::map_image(image);
  EXPECT_TRUE(mem.private_extents().empty());

  // Reads do not make pages private; writes do (adjacent pages may share an extent).
  EXPECT_TRUE(page_is(mem, 20 * kPage, 0));
  EXPECT_TRUE(page_is_zero(mem, 30 * kPage));
  fill_page(mem, 3 * kPage, 1);
  fill_page(mem, 4 * kPage, 1);
  mem.write_obj<uint8_t>(10 * kPage + 17, 0xab);  // one byte dirties its whole page
  fill_page(mem, kSize - kPage, 1);

  const auto extents = mem.private_extents();
  for (size_t i = 1; i < extents.size(); ++i) {
    EXPECT_GE(extents[i].offset, extents[i - 1].offset + extents[i - 1].length)
        << "extents must be sorted and disjoint";
  }
  EXPECT_EQ(pages_of(extents),
            (std::set<uint64_t>{3 * kPage, 4 * kPage, 10 * kPage, kSize - kPage}));
}

TEST(MemoryImagePrivateExtents, SharedMemfdHasNone) {
  GuestMemory mem = GuestMemory::create_memfd(kSize);
  fill_page(mem, 0x5000, 1);
  EXPECT_TRUE(mem.private_extents().empty()) << "a shared memfd's pages all live in the file";
}

TEST(MemoryImagePrivateExtents, AnonymousRamReportsTouchedPages) {
  GuestMemory mem = GuestMemory::create_anonymous(kSize);
  fill_page(mem, 0x7000, 1);
  fill_page(mem, 0x9000, 1);
  EXPECT_EQ(pages_of(mem.private_extents()), (std::set<uint64_t>{0x7000, 0x9000}));
}

TEST(MemoryImageUsage, CountsPrivateAndSharedPages) {
  std::vector<uint64_t> data_pages;
  for (uint64_t i = 0; i < 16; ++i) data_pages.push_back((64 + i) * kPage);
  const Image image = base_image(kSize, data_pages);
  GuestMemory mem = GuestMemory::map_image(image);
  const auto fresh = mem.usage();
  EXPECT_EQ(fresh.private_bytes, 0u);

  for (const uint64_t p : data_pages) EXPECT_TRUE(page_is(mem, p, 0));  // shared reads
  for (uint64_t i = 0; i < 8; ++i) fill_page(mem, (1024 + i * 16) * kPage, 1);  // private writes
  const auto used = mem.usage();
  EXPECT_EQ(used.private_bytes, 8 * kPage);
  EXPECT_GE(used.shared_bytes, 16 * kPage);
  EXPECT_LT(used.shared_bytes, kSize) << "unread pages are not resident in this mapping";
}

// --- touched pages and prefault (TemplateOptions::prefault) ---------------------------------

TEST(MemoryImageTouched, SplitsWrittenFromReadPages) {
  const Image image = base_image(kSize, {5 * kPage, 6 * kPage});
  GuestMemory mem = GuestMemory::map_image(image);
  EXPECT_TRUE(page_is(mem, 5 * kPage, 0));  // read
  EXPECT_TRUE(page_is_zero(mem, 40 * kPage));  // read (a hole of the base)
  fill_page(mem, 6 * kPage, 1);  // read above, now written
  fill_page(mem, 100 * kPage, 1);
  const GuestMemory::Touched t = mem.touched_extents();
  EXPECT_EQ(pages_of(t.written), (std::set<uint64_t>{6 * kPage, 100 * kPage}));
  const std::set<uint64_t> read = pages_of(t.read);
  EXPECT_TRUE(read.count(5 * kPage));
  EXPECT_FALSE(read.count(6 * kPage)) << "a written page is not also counted as read";
  EXPECT_FALSE(read.count(100 * kPage));
}

TEST(MemoryImageTouched, PrefaultTakesThePagesAheadWithTheirContent) {
  const Image image = base_image(kSize, {5 * kPage, 6 * kPage, 7 * kPage});
  GuestMemory first = GuestMemory::map_image(image);
  EXPECT_TRUE(page_is(first, 5 * kPage, 0));
  fill_page(first, 6 * kPage, 1);
  fill_page(first, 200 * kPage, 1);
  const GuestMemory::Touched learned = first.touched_extents();

  // Another VM of the same image takes them before its guest runs: the written ones become
  // private copies of the image's content (not of the first VM's writes), the read ones mapped.
  GuestMemory second = GuestMemory::map_image(image);
  EXPECT_EQ(second.usage().private_bytes, 0u);
  const uint64_t taken = second.prefault(learned);
  if (taken == 0) GTEST_SKIP() << "this kernel has no MADV_POPULATE_READ/WRITE (Linux < 5.14)";
  const GuestMemory::Touched after = second.touched_extents();
  EXPECT_EQ(pages_of(after.written), pages_of(learned.written));
  EXPECT_TRUE(pages_of(after.read).count(5 * kPage));
  // Every learned byte (a read fault may have mapped neighbours too: fault-around).
  uint64_t learned_bytes = 0;
  for (const auto* v : {&learned.written, &learned.read}) {
    for (const auto& e : *v) learned_bytes += e.length;
  }
  EXPECT_EQ(taken, learned_bytes);
  EXPECT_GE(taken, 3 * kPage);
  EXPECT_TRUE(page_is(second, 6 * kPage, 0)) << "a prefaulted page holds the image's content";
  EXPECT_TRUE(page_is_zero(second, 200 * kPage));
  EXPECT_TRUE(page_is(second, 7 * kPage, 0));
  // Still copy-on-write: writes stay private to this mapping.
  fill_page(second, 6 * kPage, 2);
  EXPECT_TRUE(page_is(first, 6 * kPage, 1));
  GuestMemory third = GuestMemory::map_image(image);
  EXPECT_TRUE(page_is(third, 6 * kPage, 0));
  // Extents past the end of this RAM (another image's layout) are clipped, not an error.
  GuestMemory::Touched outside;
  outside.written.push_back({kSize - kPage, 4 * kPage});
  EXPECT_EQ(third.prefault(outside), kPage);
}

TEST(MemoryImageTouched, PrefaultIgnoresRamThatIsNotAnImage) {
  GuestMemory mem = GuestMemory::create_memfd(kSize);
  GuestMemory::Touched t;
  t.written.push_back({0, 4 * kPage});
  EXPECT_EQ(mem.prefault(t), 0u);
}

// --- data_extents (what a snapshot writer reads) ---------------------------------------------

TEST(MemoryImageData, DataExtentsAreWhereRamMayHoldDataByBacking) {
  // A memfd: its data pages, from its holes, without reading (or allocating) anything else.
  GuestMemory memfd = GuestMemory::create_memfd(kSize);
  fill_page(memfd, 3 * kPage, 1);
  fill_page(memfd, 4 * kPage, 1);
  fill_page(memfd, 9 * kMiB, 1);
  EXPECT_EQ(pages_of(memfd.data_extents()), (std::set<uint64_t>{3 * kPage, 4 * kPage, 9 * kMiB}));
  EXPECT_EQ(memfd.data_extents().size(), 2u) << "adjacent pages form one extent";

  // Anonymous RAM: the pages touched.
  GuestMemory anon = GuestMemory::create_anonymous(kSize);
  fill_page(anon, 7 * kPage, 1);
  EXPECT_TRUE(pages_of(anon.data_extents()).count(7 * kPage));
  EXPECT_LT(pages_of(anon.data_extents()).size(), 64u);

  // An image's mapping: the base's data, each layer's extents and this mapping's own copies.
  const Image base = base_image(kSize, {5 * kPage});
  GuestMemory first = GuestMemory::map_image(base);
  fill_page(first, 12 * kMiB, 2);
  const Image layered = first.freeze();
  GuestMemory mapped = GuestMemory::map_image(layered);
  fill_page(mapped, 14 * kMiB, 3);
  EXPECT_EQ(pages_of(mapped.data_extents()),
            (std::set<uint64_t>{5 * kPage, 12 * kMiB, 14 * kMiB}));
  // Reading a hole of the base memfd through the mapping allocates a zero page in the memfd
  // (shmem does so on a read fault), which then counts as data: more than needed, never less.
  EXPECT_TRUE(page_is_zero(mapped, 2 * kMiB));
  EXPECT_TRUE(pages_of(mapped.data_extents()).count(14 * kMiB));
}

// --- layers ---------------------------------------------------------------------------------

TEST(MemoryImageLayers, FreezeOfAnImageMappingAddsOneLayerOfTheWrittenPages) {
  const Image base = base_image(kSize, {0x1000, 0x2000});
  GuestMemory mem = GuestMemory::map_image(base);
  uint8_t* const host = mem.regions()[0].host;
  fill_page(mem, 0x2000, 1);
  fill_page(mem, 8 * kMiB, 1);  // far away: its own extent

  const Image img = mem.freeze();
  ASSERT_TRUE(img);
  expect_well_formed(*img);
  EXPECT_GE(img->base_fd(), 0);
  EXPECT_EQ(stat_of(img->base_fd()).st_ino, stat_of(base->base_fd()).st_ino)
      << "the base is shared with the image below, never copied";
  ASSERT_EQ(img->layers().size(), 1u);
  EXPECT_EQ(img->extent_count(), 2u);
  EXPECT_EQ(img->overlay_bytes(), 2 * kPage);
  EXPECT_EQ(pages_of(all_extents(*img)), (std::set<uint64_t>{0x2000, 8 * kMiB}));
  EXPECT_LT(allocated_bytes(img->layers()[0]->fd.get()), 1 * kMiB) << "the layer is not sparse";
  EXPECT_EQ(mem.image(), img);
  EXPECT_EQ(mem.regions()[0].host, host);
  EXPECT_TRUE(mem.private_extents().empty());

  const GuestMemory view = GuestMemory::map_image(img);
  EXPECT_TRUE(page_is(view, 0x1000, 0));
  EXPECT_TRUE(page_is(view, 0x2000, 1));
  EXPECT_TRUE(page_is(view, 8 * kMiB, 1));
  EXPECT_TRUE(page_is_zero(view, 0x3000));
  // The image below did not change.
  const GuestMemory below = GuestMemory::map_image(base);
  EXPECT_TRUE(page_is(below, 0x2000, 0));
  EXPECT_TRUE(page_is_zero(below, 8 * kMiB));
}

TEST(MemoryImageLayers, FreezeWithNothingWrittenKeepsTheContent) {
  const Image base = base_image(kSize, {0x1000});
  GuestMemory mem = GuestMemory::map_image(base);
  const Image img = mem.freeze();
  ASSERT_TRUE(img);
  expect_well_formed(*img);
  EXPECT_EQ(img->overlay_bytes(), 0u);
  EXPECT_TRUE(page_is(mem, 0x1000, 0));
  EXPECT_TRUE(page_is(GuestMemory::map_image(img), 0x1000, 0));
}

TEST(MemoryImageLayers, NearbyWritesShareOneExtentWithTheGapFromBelow) {
  const Image base = base_image(kSize, {0x101000, 0x102000});
  GuestMemory mem = GuestMemory::map_image(base);
  fill_page(mem, 0x100000, 1);
  fill_page(mem, 0x103000, 1);  // 8 KiB gap holding base data: coalesced
  fill_page(mem, 0x900000, 1);  // far: separate
  const Image img = mem.freeze();
  expect_well_formed(*img);
  const auto extents = all_extents(*img);
  ASSERT_EQ(extents.size(), 2u);
  EXPECT_EQ(extents[0].offset, 0x100000u);
  EXPECT_EQ(extents[0].length, 4 * kPage);
  EXPECT_EQ(extents[1].offset, 0x900000u);
  EXPECT_EQ(extents[1].length, kPage);
  // The gap pages came from the image below.
  const GuestMemory view = GuestMemory::map_image(img);
  EXPECT_TRUE(page_is(view, 0x100000, 1));
  EXPECT_TRUE(page_is(view, 0x101000, 0));
  EXPECT_TRUE(page_is(view, 0x102000, 0));
  EXPECT_TRUE(page_is(view, 0x103000, 1));
}

TEST(MemoryImageLayers, TopmostLayerWinsAndOlderImagesStayValid) {
  const Image base = base_image(kSize, {0x10000, 0x20000, 0x30000});
  GuestMemory mem = GuestMemory::map_image(base);
  fill_page(mem, 0x10000, 1);
  fill_page(mem, 0x20000, 1);
  const Image one = mem.freeze();
  fill_page(mem, 0x20000, 2);
  fill_page(mem, 4 * kMiB, 2);
  const Image two = mem.freeze();
  expect_well_formed(*one);
  expect_well_formed(*two);
  ASSERT_EQ(one->layers().size(), 1u);
  ASSERT_EQ(two->layers().size(), 2u);
  EXPECT_EQ(two->layers()[0], one->layers()[0]) << "the layer below is shared, not copied";
  EXPECT_EQ(stat_of(two->base_fd()).st_ino, stat_of(base->base_fd()).st_ino);

  const GuestMemory v0 = GuestMemory::map_image(base);
  const GuestMemory v1 = GuestMemory::map_image(one);
  const GuestMemory v2 = GuestMemory::map_image(two);
  EXPECT_TRUE(page_is(v0, 0x10000, 0));
  EXPECT_TRUE(page_is(v0, 0x20000, 0));
  EXPECT_TRUE(page_is(v1, 0x10000, 1));
  EXPECT_TRUE(page_is(v1, 0x20000, 1));
  EXPECT_TRUE(page_is_zero(v1, 4 * kMiB));
  EXPECT_TRUE(page_is(v2, 0x10000, 1));  // from the layer below
  EXPECT_TRUE(page_is(v2, 0x20000, 2));  // the top layer shadows it
  EXPECT_TRUE(page_is(v2, 0x30000, 0));  // from the base
  EXPECT_TRUE(page_is(v2, 4 * kMiB, 2));
  EXPECT_TRUE(page_is(mem, 0x20000, 2));
}

TEST(MemoryImageLayers, MergedIntoOnePastKMaxLayers) {
  const Image base = base_image(kSize, {0});
  GuestMemory mem = GuestMemory::map_image(base);
  std::vector<Image> images{base};
  constexpr size_t kFreezes = MemoryImage::kMaxLayers + 3;
  for (size_t k = 1; k <= kFreezes; ++k) {
    SCOPED_TRACE("freeze " + std::to_string(k));
    fill_page(mem, k * kMiB, k);  // this level's own page
    fill_page(mem, 0, k);         // a page every level overwrites
    images.push_back(mem.freeze());
    const MemoryImage& img = *images.back();
    expect_well_formed(img);
    const auto& below = images[k - 1]->layers();
    const size_t before = below.size();
    const bool merged = before + 1 > MemoryImage::kMaxLayers;
    ASSERT_EQ(img.layers().size(), merged ? 1 : before + 1);
    if (!merged) {
      for (size_t j = 0; j < before; ++j) {
        EXPECT_EQ(img.layers()[j], below[j]) << "layer " << j << " of the image below was copied";
      }
    }
    // Whatever was merged, the image holds each written page once, never the whole RAM.
    std::set<uint64_t> want{0};
    for (size_t j = 1; j <= k; ++j) want.insert(j * kMiB);
    const auto pages = pages_of(all_extents(img));
    for (const uint64_t p : want) EXPECT_TRUE(pages.count(p)) << "page 0x" << std::hex << p;
    EXPECT_LE(img.overlay_bytes(), kSize / 4);
  }
  // Every image, merged or not, reads as it was frozen.
  for (size_t k = 0; k < images.size(); ++k) {
    SCOPED_TRACE("image " + std::to_string(k));
    const GuestMemory view = GuestMemory::map_image(images[k]);
    EXPECT_TRUE(page_is(view, 0, k));
    for (size_t j = 1; j <= kFreezes; ++j) {
      if (j <= k) {
        EXPECT_TRUE(page_is(view, j * kMiB, j)) << "level " << j;
      } else {
        EXPECT_TRUE(page_is_zero(view, j * kMiB)) << "level " << j;
      }
    }
  }
}

TEST(MemoryImageLayers, MergedPastKMaxExtents) {
  // Two layers of pages 72 KiB apart (gaps too long to coalesce), interleaved so that together
  // they have more than kMaxExtents extents; merged, the union is pages 36 KiB apart, which
  // coalesce.
  constexpr uint64_t size = 256 * kMiB;
  constexpr uint64_t kPerLayer = MemoryImage::kMaxExtents / 2 + 100;
  constexpr uint64_t kStride = 72 * 1024;
  static_assert(kStride - kPage > MemoryImage::kCoalesceGap);
  static_assert(kPerLayer * kStride <= size);
  GuestMemory mem = GuestMemory::map_image(base_image(size, {}));
  for (uint64_t i = 0; i < kPerLayer; ++i) fill_page(mem, i * kStride, 1);
  const Image one = mem.freeze();
  expect_well_formed(*one);
  EXPECT_EQ(one->layers().size(), 1u);
  EXPECT_EQ(one->extent_count(), kPerLayer) << "pages 68 KiB apart must not be coalesced";

  for (uint64_t i = 0; i < kPerLayer; ++i) fill_page(mem, i * kStride + kStride / 2, 2);
  const Image two = mem.freeze();
  expect_well_formed(*two);
  EXPECT_EQ(two->layers().size(), 1u) << "2 x " << kPerLayer << " extents exceed kMaxExtents ("
                                      << MemoryImage::kMaxExtents << "): merge into one layer";
  EXPECT_LT(two->extent_count(), kPerLayer);

  const GuestMemory view = GuestMemory::map_image(two);
  for (uint64_t i = 0; i < kPerLayer; ++i) {
    ASSERT_TRUE(page_is(view, i * kStride, 1)) << "page " << i;
    ASSERT_TRUE(page_is(view, i * kStride + kStride / 2, 2)) << "page " << i;
  }
  EXPECT_TRUE(page_is_zero(view, kPerLayer * kStride));
}

TEST(MemoryImageLayers, NeverMoreThanKMaxExtentsEvenFromOneFreeze) {
  // One freeze of more scattered pages than kMaxExtents: each extent is a mapping in every VM
  // of the image, so the image must stay within the cap however the pages lie.
  constexpr uint64_t size = 512 * kMiB;
  constexpr uint64_t kPages = MemoryImage::kMaxExtents + 500;
  constexpr uint64_t kStride = 72 * 1024;
  static_assert(kStride - kPage > MemoryImage::kCoalesceGap);
  static_assert(kPages * kStride <= size);
  GuestMemory mem = GuestMemory::map_image(base_image(size, {}));
  for (uint64_t i = 0; i < kPages; ++i) fill_page(mem, i * kStride, 3);
  const Image img = mem.freeze();
  expect_well_formed(*img);  // includes extent_count() <= kMaxExtents
  const GuestMemory view = GuestMemory::map_image(img);
  for (uint64_t i = 0; i < kPages; ++i) ASSERT_TRUE(page_is(view, i * kStride, 3)) << "page " << i;
  EXPECT_TRUE(page_is_zero(view, kStride / 2));
}

TEST(MemoryImageLayers, PagesAboveTheMmioHoleUseTheFileLayout) {
  // 3 GiB + 8 KiB: the region at GPA 4 GiB is at file offset 3 GiB. Sparse, so cheap.
  const uint64_t size = layout::kMmioHoleStart + 2 * kPage;
  GuestMemory mem = GuestMemory::create_memfd(size);
  ASSERT_EQ(mem.regions().size(), 2u);
  mem.write_obj<uint64_t>(layout::kMmioHoleEnd, 0x1111);
  const Image base = mem.freeze();
  EXPECT_EQ(mem.regions().size(), 2u);
  EXPECT_EQ(mem.read_obj<uint64_t>(layout::kMmioHoleEnd), 0x1111u);

  mem.write_obj<uint64_t>(layout::kMmioHoleEnd + kPage, 0x2222);
  const Image img = mem.freeze();
  expect_well_formed(*img);
  const auto extents = all_extents(*img);
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_EQ(extents[0].offset, layout::kMmioHoleStart + kPage)
      << "extents are in the memory-file layout, not guest-physical";
  EXPECT_EQ(extents[0].length, kPage);
  const GuestMemory view = GuestMemory::map_image(img);
  EXPECT_EQ(view.read_obj<uint64_t>(layout::kMmioHoleEnd), 0x1111u);
  EXPECT_EQ(view.read_obj<uint64_t>(layout::kMmioHoleEnd + kPage), 0x2222u);
  EXPECT_EQ(GuestMemory::map_image(base).read_obj<uint64_t>(layout::kMmioHoleEnd + kPage), 0u);
}

// --- with_layer directly --------------------------------------------------------------------

/// A ReadFn that serves pattern `tag` and records every range it was asked for.
struct PatternReader {
  uint64_t tag;
  std::vector<Extent> calls;
  MemoryImage::ReadFn fn() {
    return [this](uint64_t offset, uint8_t* dst, uint64_t len) {
      calls.push_back({offset, len});
      for (uint64_t i = 0; i + 8 <= len; i += 8) {
        const uint64_t w = word(tag, offset + i);
        std::memcpy(dst + i, &w, 8);
      }
    };
  }
};

TEST(MemoryImageWithLayer, CoalescesGapsUpToKCoalesceGap) {
  const Image base = base_image(kSize, {0x0, 0x300000});
  constexpr uint64_t kGap = MemoryImage::kCoalesceGap;
  const uint64_t a = 0x10000, b = 0x400000, c = 0x800000;
  PatternReader reader{1, {}};
  const Image img = base->with_layer(
      {
          {a, kPage},
          {a + kPage + kGap, kPage},          // gap of exactly kCoalesceGap: joined
          {b, kPage},
          {b + kPage + kGap + kPage, kPage},  // one page more: separate
          {c, kPage},
          {c + kPage, kPage},                 // adjacent: one extent
      },
      reader.fn());
  ASSERT_TRUE(img);
  expect_well_formed(*img);
  ASSERT_EQ(img->layers().size(), 1u);
  const auto& ext = img->layers()[0]->extents;
  ASSERT_EQ(ext.size(), 4u);
  EXPECT_EQ(ext[0].offset, a);
  EXPECT_EQ(ext[0].length, 2 * kPage + kGap);
  EXPECT_EQ(ext[1].offset, b);
  EXPECT_EQ(ext[1].length, kPage);
  EXPECT_EQ(ext[2].offset, b + 2 * kPage + kGap);
  EXPECT_EQ(ext[2].length, kPage);
  EXPECT_EQ(ext[3].offset, c);
  EXPECT_EQ(ext[3].length, 2 * kPage);
  EXPECT_EQ(img->overlay_bytes(), 6 * kPage + kGap);
  // Every byte of the layer came through `read`, and nothing outside it was read.
  uint64_t read_bytes = 0;
  for (const auto& call : reader.calls) {
    EXPECT_TRUE(covers(ext, call.offset, call.length))
        << "read outside the layer at 0x" << std::hex << call.offset << "+0x" << call.length;
    read_bytes += call.length;
  }
  EXPECT_GE(read_bytes, img->overlay_bytes());

  const GuestMemory view = GuestMemory::map_image(img);
  EXPECT_TRUE(page_is(view, a, 1));
  EXPECT_TRUE(page_is(view, a + kPage, 1)) << "the joined gap is read through `read` as well";
  EXPECT_TRUE(page_is(view, a + kPage + kGap, 1));
  EXPECT_TRUE(page_is_zero(view, b + kPage));
  EXPECT_TRUE(page_is(view, b + 2 * kPage + kGap, 1));
  EXPECT_TRUE(page_is(view, c + kPage, 1));
  EXPECT_TRUE(page_is(view, 0x0, 0));
  EXPECT_TRUE(page_is(view, 0x300000, 0));
}

TEST(MemoryImageWithLayer, RejectsBadExtents) {
  const Image base = base_image(kSize, {});
  PatternReader reader{1, {}};
  const std::vector<std::pair<const char*, std::vector<Extent>>> bad = {
      {"unsorted", {{0x2000, kPage}, {0x1000, kPage}}},
      {"overlapping", {{0x1000, 2 * kPage}, {0x2000, kPage}}},
      {"duplicate", {{0x1000, kPage}, {0x1000, kPage}}},
      {"unaligned offset", {{0x1001, kPage}}},
      {"unaligned length", {{0x1000, 100}}},
      {"past the end", {{kSize - kPage, 2 * kPage}}},
      {"at the end", {{kSize, kPage}}},
      {"wrapping", {{std::numeric_limits<uint64_t>::max() - kPage + 1, kPage}}},
      {"huge length", {{kPage, std::numeric_limits<uint64_t>::max() - kPage + 1}}},
  };
  for (const auto& [what, extents] : bad) {
    EXPECT_THROW(base->with_layer(extents, reader.fn()), ConfigError) << what;
  }
  // The base image is untouched by the refusals and still takes a good layer.
  const Image good = base->with_layer({{kSize - kPage, kPage}}, reader.fn());
  EXPECT_EQ(good->overlay_bytes(), kPage);
  EXPECT_TRUE(base->layers().empty());
}

// --- from_file ------------------------------------------------------------------------------

TEST(MemoryImageFromFile, ChecksTheFileAndKeepsItsOwnDescriptor) {
  GuestMemory src = GuestMemory::create_memfd(kSize);
  fill_page(src, 0x6000, 5);
  Fd dup(fcntl(src.backing_fd(), F_DUPFD_CLOEXEC, 0));
  const Image image = MemoryImage::from_file(dup.get(), kSize);
  ASSERT_TRUE(image);
  EXPECT_NE(image->base_fd(), dup.get());
  dup.reset();
  EXPECT_EQ(image->size(), kSize);
  EXPECT_TRUE(image->layers().empty());
  EXPECT_TRUE(page_is(GuestMemory::map_image(image), 0x6000, 5));
  // A smaller RAM than the file is fine.
  EXPECT_NO_THROW(MemoryImage::from_file(src.backing_fd(), kSize / 2));

  EXPECT_THROW(MemoryImage::from_file(src.backing_fd(), kSize + kPage), SnapshotError);
  EXPECT_THROW(MemoryImage::from_file(-1, kSize), SnapshotError);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  Fd r(pipe_fds[0]), w(pipe_fds[1]);
  EXPECT_THROW(MemoryImage::from_file(r.get(), kSize), SnapshotError);
  EXPECT_THROW(MemoryImage::from_file(src.backing_fd(), 0), ConfigError);
  EXPECT_THROW(MemoryImage::from_file(src.backing_fd(), 4097), ConfigError);
}

TEST(MemoryImageFromFile, ARegularFileWorksAsABase) {
  char path[] = "/tmp/forkvm-image-XXXXXX";
  Fd fd(mkstemp(path));
  ASSERT_TRUE(fd);
  unlink(path);
  ASSERT_EQ(ftruncate(fd.get(), static_cast<off_t>(kSize)), 0);
  const uint64_t v = word(9, 0x8000);
  ASSERT_EQ(pwrite(fd.get(), &v, sizeof v, 0x8000), static_cast<ssize_t>(sizeof v));
  const Image image = MemoryImage::from_file(fd.get(), kSize);
  GuestMemory mem = GuestMemory::map_image(image);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x8000), v);
  mem.write_obj<uint64_t>(0x8000, 1);
  uint64_t in_file = 0;
  ASSERT_EQ(pread(fd.get(), &in_file, sizeof in_file, 0x8000), static_cast<ssize_t>(sizeof in_file));
  EXPECT_EQ(in_file, v);
  const Image img = mem.freeze();
  EXPECT_EQ(pages_of(all_extents(*img)), (std::set<uint64_t>{0x8000}));
  EXPECT_EQ(GuestMemory::map_image(img).read_obj<uint64_t>(0x8000), 1u);
}

}  // namespace
}  // namespace forkvm
