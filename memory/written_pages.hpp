// WrittenPages: which 4 KiB pages of each guest RAM region were written, one bit per page.
//
// A VM made from an image freezes (a fork of a fork) by copying the pages it wrote since it
// was mapped. Two writers, two records, one format:
// - the guest, through KVM: KVM's dirty log of each memory slot (KVM_GET_DIRTY_LOG, one slot per
//   region, bit i = page i of the slot), which also covers KVM's own writes (kvmclock, steal
//   time);
// - host code (virtio devices, the VMM): GuestMemory's write log, a WrittenPages whose bits are
//   set atomically by every write path GuestMemory hands out (write, write_obj, store_u16 and
//   the *_for_write views).
// The union of the two is what freeze() copies: it follows the pages written, where a
// /proc/self/pagemap scan follows the RAM touched (memory/README.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/memory_image.hpp"

namespace forkvm {

/// One bitmap of 64-bit words per region: bit (i % 64) of word (i / 64) is page i of the
/// region. The layout of KVM_GET_DIRTY_LOG's bitmap on a little-endian host.
using PageBitmaps = std::vector<std::vector<uint64_t>>;

/// Words a bitmap of a `bytes`-long region needs (one bit per 4 KiB page, rounded up to 64).
size_t bitmap_words(uint64_t bytes) noexcept;

/// A thread-safe record of pages written, per region. Marking never allocates or throws.
class WriteLog {
 public:
  /// A log for regions of these sizes (bytes, multiples of 4 KiB), all clear.
  explicit WriteLog(const std::vector<uint64_t>& region_bytes);

  /// Marks the pages of [offset, offset + len) in `region` written. Callers checked the range
  /// against the region (GuestMemory's accessors do); a range past it is clipped.
  void mark(size_t region, uint64_t offset, uint64_t len) noexcept;
  /// The pages marked since the last take(), and clears them. Throws std::bad_alloc before
  /// clearing anything.
  PageBitmaps take();
  /// Marks the pages set in `pages` again (a freeze that failed after take() gives back what it
  /// took, and the guest's pages KVM's dirty log handed it). Never allocates or throws.
  void restore(const PageBitmaps& pages) noexcept;

 private:
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> words_;
  std::vector<size_t> sizes_;  // words per region
};

/// The extents (memory-file layout, sorted, disjoint, merged when adjacent) of the pages set in
/// `a` or `b` (either may be empty: no pages). `regions` places bitmap r: region r lies at
/// memory-file offset regions[r].offset and is regions[r].length bytes long. Bits past a
/// region's end are ignored.
std::vector<MemoryImage::Extent> written_extents(const PageBitmaps& a, const PageBitmaps& b,
                                                 const std::vector<MemoryImage::Extent>& regions);

}  // namespace forkvm
