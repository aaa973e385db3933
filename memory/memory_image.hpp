// MemoryImage: frozen guest RAM that any number of VMs map copy-on-write.
//
// An image is a base file (a snapshot's memory file, or the memfd a booted VM ran on) plus up
// to kMaxLayers overlay layers. A layer is a sealed, sparse memfd of the full RAM size that
// holds data only in its extents, at the same file offsets as the pages they replace; a page
// is read from the topmost layer whose extents contain it, else from the base.
//
// Layers are what make forks of forks cheap: freezing a VM that was itself started from an
// image copies only the pages that VM has written (its private copy-on-write pages, found in
// /proc/self/pagemap) into one new layer; the base is never copied. Mapping an image is one
// MAP_PRIVATE mapping of the base per region plus one MAP_FIXED mapping per extent, so extents
// are coalesced (short gaps are filled from the lower layers) and the layers are merged into
// one when there would be more than kMaxLayers or kMaxExtents.
//
// The files never change once the image exists (GuestMemory::map_private's contract): nobody
// maps them shared or writes them afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/fd.hpp"
#include "base/file_extents.hpp"

namespace forkvm {

/// Throws ConfigError unless `size` is a valid guest RAM size: a non-zero multiple of 4096 that
/// fits off_t (mmap offsets and ftruncate take it) with room for the MMIO hole.
void check_guest_memory_size(uint64_t size);

/// A new memfd (close-on-exec, sealable) named `name`, sized to `size` bytes (sparse: nothing
/// is allocated until written). Throws GuestMemoryError.
Fd create_sized_memfd(const char* name, uint64_t size);

/// Adds `seals` (F_SEAL_*) to the memfd `fd`; `what` names it in the GuestMemoryError.
void add_memfd_seals(int fd, int seals, const char* what);

class MemoryImage {
 public:
  /// A page-aligned byte range in the memory-file layout (GuestMemory's class comment).
  using Extent = FileExtent;
  /// One overlay: a sealed memfd holding data at `extents` (sorted, disjoint, non-adjacent).
  /// Shared by every image built on it.
  struct Layer {
    Fd fd;
    std::vector<Extent> extents;
    uint64_t bytes = 0;  ///< sum of the extents' lengths
  };

  /// At most this many layers; one more is merged with the others.
  static constexpr size_t kMaxLayers = 4;
  /// At most this many extents over all layers; more are merged into one layer.
  static constexpr size_t kMaxExtents = 4096;
  /// Gaps of at most this many bytes between written pages are copied into the layer too, so
  /// that scattered writes make one extent (one mapping) instead of many.
  static constexpr uint64_t kCoalesceGap = 64 * 1024;

  /// An image of `size` bytes whose base is the file `fd`, duplicated (the caller keeps its
  /// descriptor). Throws SnapshotError when `fd` is not a regular file of at least `size`
  /// bytes, ConfigError for a bad size.
  static std::shared_ptr<const MemoryImage> from_file(int fd, uint64_t size);

  /// Reads `len` bytes of a view of this image at file offset `offset` into `dst`.
  using ReadFn = std::function<void(uint64_t offset, uint8_t* dst, uint64_t len)>;

  /// A new image: this one plus one layer holding `pages` (sorted, disjoint, page-aligned
  /// extents inside size()), copied through `read` from a view laid out as this image with
  /// those pages changed (the memory of a paused VM mapped from this image). Extents closer
  /// than kCoalesceGap are joined, the gap read through `read` too; when the result would
  /// exceed kMaxLayers or kMaxExtents, every layer is merged into one, also read through
  /// `read`. Throws GuestMemoryError when the memfd cannot be made or written, ConfigError for
  /// extents that are unsorted, overlapping, unaligned or out of range.
  std::shared_ptr<const MemoryImage> with_layer(std::vector<Extent> pages, const ReadFn& read) const;

  uint64_t size() const noexcept { return size_; }
  /// The base file (shared by every image built on it).
  int base_fd() const noexcept { return base_->get(); }
  /// The overlay layers, lowest first.
  const std::vector<std::shared_ptr<const Layer>>& layers() const noexcept { return layers_; }
  /// Bytes held by all layers.
  uint64_t overlay_bytes() const noexcept;
  /// Extents over all layers (each one a mapping in every VM of this image).
  size_t extent_count() const noexcept;

  /// Internal (use from_file / with_layer).
  MemoryImage(std::shared_ptr<const Fd> base, uint64_t size,
              std::vector<std::shared_ptr<const Layer>> layers)
      : base_(std::move(base)), size_(size), layers_(std::move(layers)) {}

 private:
  std::shared_ptr<const Fd> base_;
  uint64_t size_ = 0;
  std::vector<std::shared_ptr<const Layer>> layers_;
};

/// The union of extent lists in any order: sorted, with overlapping and adjacent extents joined
/// (empty ones dropped).
std::vector<MemoryImage::Extent> unite_extents(std::vector<MemoryImage::Extent> all);

}  // namespace forkvm
