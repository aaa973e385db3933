// What a virtio-blk device reads and writes: a BlockBackend. Two kinds exist:
//   DiskImage (disk_image.hpp)  a raw image file, read-only or persistent (writes go to it);
//   CowDisk (cow_disk.hpp)      a read-only base image plus a private copy-on-write overlay
//                               that forks with its VM.
// A backend is used by one device worker at a time; freeze() is called only while the device
// is quiesced. Offsets and lengths reaching it were checked by request.cpp (inside the disk,
// whole sectors); every I/O call returns 0 or an errno and never throws.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace forkvm {

class BlockBackend;

/// A disk frozen for forks: immutable, shared by a frozen VM image and every VM made from it.
class FrozenDisk {
 public:
  virtual ~FrozenDisk() = default;
  /// A backend for one new VM, starting from the frozen content (a duplicate descriptor of a
  /// read-only image, or a fresh empty overlay over the frozen layers). Throws ImageError.
  virtual std::unique_ptr<BlockBackend> open_child() const = 0;
};

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  /// The image file's path, for messages and snapshot records (a CowDisk's base image).
  virtual const std::string& path() const noexcept = 0;
  /// Size in bytes (a multiple of 512).
  virtual uint64_t size() const noexcept = 0;
  /// Whether the guest may only read it.
  virtual bool read_only() const noexcept = 0;
  /// Whether discard and write-zeroes are supported (offered to the guest only then).
  virtual bool can_punch_holes() const noexcept = 0;
  /// Whether guest writes reach only a private overlay (CowDisk), not the image file.
  virtual bool copy_on_write() const noexcept = 0;

  /// Reads exactly out.size() bytes at `offset`; 0 or an errno (EIO for a short read).
  virtual int read(uint64_t offset, std::span<uint8_t> out) const noexcept = 0;
  /// Writes all of `data` at `offset`; 0 or an errno (EROFS on a read-only disk).
  virtual int write(uint64_t offset, std::span<const uint8_t> data) noexcept = 0;
  /// Makes written data durable where that means something (fdatasync of a persistent image).
  virtual int flush() noexcept = 0;
  /// Deallocates [offset, offset + len); reads return zeros afterwards.
  virtual int punch_hole(uint64_t offset, uint64_t len) noexcept = 0;
  /// Makes [offset, offset + len) read as zeros.
  virtual int write_zeroes(uint64_t offset, uint64_t len) noexcept = 0;

  /// Freezes the content as it is now for forks; this backend goes on from the same content,
  /// and nothing it writes afterwards reaches the frozen disk. Throws SnapshotError when the
  /// disk cannot fork (a persistent read-write image), ImageError when a new overlay cannot
  /// be made.
  virtual std::shared_ptr<const FrozenDisk> freeze() = 0;
};

/// Writes zeros over [offset, offset + len) through disk.write(), 64 KiB at a time: the
/// write-zeroes of a backend that cannot do better. 0 or the first errno.
int write_zeros_through(BlockBackend& disk, uint64_t offset, uint64_t len) noexcept;

}  // namespace forkvm
