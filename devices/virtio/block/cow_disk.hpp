// CowDisk: a disk that forks with its VM, copy-on-write. The frozen-RAM design of
// memory/memory_image.hpp applied to a disk:
//   base     the image file, opened read-only (shared OFD lock: nothing writes it meanwhile);
//   layers   sealed overlays, lowest first, shared by every VM of a frozen image; each is a
//            sparse unlinked file of the disk's size holding data only at its blocks (BlockMap),
//            at the same offsets as the blocks they replace;
//   top      this VM's private overlay, the only file it writes.
// A block is read from the topmost level that holds it, else from the base. A write lands in
// the top; a write that covers only part of a block not yet in the top copies the block up
// first. freeze() seals the top as one more layer (nothing is copied: the device is quiesced,
// so the file never changes again) and starts a new empty top; past kMaxLayers the layers are
// merged into one, copying only written blocks. Overlay files are made with O_TMPFILE in the
// overlay directory, so they vanish with the last descriptor and never leak.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "devices/virtio/block/block_backend.hpp"
#include "devices/virtio/block/disk_image.hpp"

namespace forkvm {

/// Which blocks of a disk an overlay holds: one bit per block.
class BlockMap {
 public:
  explicit BlockMap(uint64_t blocks = 0) : blocks_(blocks), words_((blocks + 63) / 64, 0) {}
  uint64_t blocks() const noexcept { return blocks_; }
  bool test(uint64_t block) const noexcept {
    return block < blocks_ && (words_[block / 64] >> (block % 64) & 1) != 0;
  }
  void set(uint64_t block) noexcept {
    if (block < blocks_ && !test(block)) {
      words_[block / 64] |= uint64_t{1} << (block % 64);
      ++count_;
    }
  }
  /// Blocks set.
  uint64_t count() const noexcept { return count_; }

 private:
  uint64_t blocks_ = 0;
  std::vector<uint64_t> words_;
  uint64_t count_ = 0;
};

/// A sealed overlay: its file (never written again) and the blocks it holds.
struct DiskLayer {
  Fd fd;
  BlockMap map;
};

class CowDisk final : public BlockBackend {
 public:
  /// The overlay's unit: a partial write copies up one block.
  static constexpr uint64_t kBlockBytes = 4096;
  /// At most this many sealed layers; a freeze that would add one more merges them.
  static constexpr size_t kMaxLayers = 4;

  /// A copy-on-write view of the read-only `base` whose writes go to a new unlinked file in
  /// `overlay_dir` ("" means $TMPDIR, else /var/tmp). Throws ImageError naming the directory
  /// when the overlay cannot be made there, ConfigError when `base` is not read-only.
  static std::unique_ptr<CowDisk> create(DiskImage base, const std::string& overlay_dir);
  /// A frozen copy-on-write disk made of the read-only `base` and sealed `layers` (lowest
  /// first), as a restored snapshot's overlay gives them; children write to new overlays in
  /// `overlay_dir` ("" as for create()). Throws ConfigError for a base that is not read-only
  /// or a layer whose block map does not fit it.
  static std::shared_ptr<const FrozenDisk> frozen(DiskImage base,
                                                  std::vector<std::shared_ptr<const DiskLayer>> layers,
                                                  const std::string& overlay_dir);
  /// The blocks of `size` bytes that `extents` ({offset, length} byte ranges) cover.
  static BlockMap block_map_of(const std::vector<std::pair<uint64_t, uint64_t>>& extents, uint64_t size);

  const std::string& path() const noexcept override { return base_->path(); }
  uint64_t size() const noexcept override { return base_->size(); }
  bool read_only() const noexcept override { return false; }
  bool can_punch_holes() const noexcept override { return can_punch_; }
  bool copy_on_write() const noexcept override { return true; }
  int read(uint64_t offset, std::span<uint8_t> out) const noexcept override;
  int write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
  /// Nothing to make durable: the overlay is discarded with the VM. Returns 0.
  int flush() noexcept override { return 0; }
  int punch_hole(uint64_t offset, uint64_t len) noexcept override;
  int write_zeroes(uint64_t offset, uint64_t len) noexcept override { return punch_hole(offset, len); }
  std::shared_ptr<const FrozenDisk> freeze() override;

  /// The byte ranges {offset, length} held by the top or any layer (what differs from the
  /// base), coalesced, in order; the last block is clipped to the disk's size.
  std::vector<std::pair<uint64_t, uint64_t>> written_extents() const;
  /// The base image.
  const DiskImage& base() const noexcept { return *base_; }
  /// Sealed layers below the top.
  size_t layer_count() const noexcept { return layers_.size(); }
  /// Bytes this VM has written so far (blocks in its top overlay).
  uint64_t top_bytes() const noexcept { return top_->map.count() * kBlockBytes; }

  /// Internal (create() and the frozen stack's open_child()).
  CowDisk(std::shared_ptr<const DiskImage> base, std::vector<std::shared_ptr<const DiskLayer>> layers,
          std::string overlay_dir);

 private:
  /// The level holding `block`: the top (0), a layer (1 + index from the top), or the base.
  size_t level_of(uint64_t block) const noexcept;
  /// Reads [offset, offset + len) from `level` (levels as level_of).
  int read_level(size_t level, uint64_t offset, std::span<uint8_t> out) const noexcept;
  /// Copies block `block` from the level below into the top, so that a partial write to it
  /// can follow.
  int copy_up(uint64_t block) noexcept;
  size_t base_level() const noexcept { return layers_.size() + 1; }

  std::shared_ptr<const DiskImage> base_;
  std::vector<std::shared_ptr<const DiskLayer>> layers_;  ///< lowest first
  std::string overlay_dir_;
  /// The private overlay. Sealing it moves this pointer into layers_ (as const).
  std::shared_ptr<DiskLayer> top_;
  bool can_punch_ = false;
};

}  // namespace forkvm
