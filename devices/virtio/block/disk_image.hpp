// DiskImage: the raw image file behind one virtio-blk device. Opening checks what a user can
// get wrong (missing, unreadable, not a regular file, empty, a size that is not whole 512-byte
// sectors) and takes an OFD lock as QEMU does: a shared lock for a read-only disk, an exclusive
// one for a read-write disk, so two VMs never write one file and nothing writes a file a VM
// reads. Every failure to open is an ImageError naming the file. I/O is positional and
// thread-safe (pread/pwrite on one descriptor); the device's worker is its only user.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/fd.hpp"
#include "devices/virtio/block/block_backend.hpp"

namespace forkvm {

class DiskImage final : public BlockBackend {
 public:
  /// Opens `path` read-only or read-write and locks it. Throws ImageError.
  static DiskImage open(const std::string& path, bool read_only);

  /// Another handle on this read-only image: a duplicate of its descriptor, so the same open
  /// file and the same shared lock. A VM started from a frozen image gets its template's disk
  /// this way, never a file re-opened by name that could have been replaced. Throws ImageError
  /// for a read-write disk, which one VM has to itself.
  DiskImage share() const;

  /// The file's path, for messages.
  const std::string& path() const noexcept override { return path_; }
  /// Size in bytes (a multiple of 512).
  uint64_t size() const noexcept override { return size_; }
  /// Whether it was opened read-only.
  bool read_only() const noexcept override { return read_only_; }
  /// Whether the file system can punch holes in it (DISCARD and WRITE_ZEROES are offered only
  /// then); false for a read-only disk.
  bool can_punch_holes() const noexcept override { return can_punch_; }
  /// Never: writes go to the file.
  bool copy_on_write() const noexcept override { return false; }
  /// The descriptor (owned by this object), for hashing the image (vmm/disk_digest.hpp).
  int fd() const noexcept { return fd_.get(); }

  /// Reads exactly out.size() bytes at `offset`; returns 0 or an errno (EIO for a short read).
  int read(uint64_t offset, std::span<uint8_t> out) const noexcept override;
  /// Writes all of `data` at `offset`; returns 0 or an errno.
  int write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
  /// fdatasync: written data is durable when it returns 0.
  int flush() noexcept override;
  /// Deallocates [offset, offset + len) (reads then return zeros); returns 0 or an errno.
  int punch_hole(uint64_t offset, uint64_t len) noexcept override;
  /// Makes [offset, offset + len) read as zeros without deallocating; returns 0 or an errno.
  int write_zeroes(uint64_t offset, uint64_t len) noexcept override;
  /// A read-only image is shared as it is (share()); a read-write one is this VM's alone and
  /// cannot fork: SnapshotError.
  std::shared_ptr<const FrozenDisk> freeze() override;

 private:
  DiskImage() = default;
  std::string path_;
  Fd fd_;
  uint64_t size_ = 0;
  bool read_only_ = true;
  bool can_punch_ = false;
};

}  // namespace forkvm
