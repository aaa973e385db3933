// GuestMemory: the one way host code touches guest RAM. Every access is bounds-checked
// against the regions, with overflow-safe arithmetic, and objects are copied with memcpy
// (never a pointer cast into guest memory, whose contents the guest can change at any time).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "vmm/kvm/fd.hpp"

namespace forkvm {

/// Guest RAM: one or two host mappings laid out around the 32-bit MMIO hole.
///
/// Three kinds of backing (see Backing):
/// - anonymous memory (create_anonymous): private to this process, no file;
/// - a memfd mapped MAP_SHARED (create_memfd): the file *is* the RAM, so a snapshot or a fork can
///   map it again without copying;
/// - a file mapped MAP_PRIVATE (map_private): a restored or forked VM starts from the file's
///   content and copies a page only when it writes it (copy-on-write); nothing it writes ever
///   reaches the file.
///
/// File layout (memory file of a snapshot, memfd): the regions back to back in ascending
/// guest-physical order, so the region at 4 GiB starts at file offset 3 GiB when RAM exceeds
/// 3 GiB. Region::file_offset holds each region's offset.
class GuestMemory {
 public:
  /// One contiguous range of guest-physical RAM backed by one host mapping.
  struct Region {
    uint64_t gpa;    ///< first guest-physical address
    uint64_t size;   ///< bytes
    uint8_t* host;   ///< host address of gpa
    /// Offset of gpa in the memory-file layout (class comment): where this region lives in the
    /// backing file, or would live in a memory file written from anonymous RAM.
    uint64_t file_offset = 0;
  };

  /// How the RAM is backed.
  enum class Backing {
    kAnonymous,    ///< anonymous private memory; backing_fd() is -1
    kSharedFile,   ///< a memfd mapped MAP_SHARED: guest writes reach the file
    kPrivateFile,  ///< a file mapped MAP_PRIVATE: guest writes stay in this mapping
  };

  /// Maps `size` bytes of anonymous, lazily allocated memory: [0, min(size, 3 GiB)) and the
  /// rest from 4 GiB on. Throws ConfigError when size is not page-aligned or zero, and
  /// GuestMemoryError when the host cannot map it.
  static GuestMemory create_anonymous(uint64_t size);

  /// Maps `size` bytes of RAM backed by a new memfd, MAP_SHARED, with the same region layout as
  /// create_anonymous; the memfd holds the regions back to back (class comment). The memfd is
  /// sparse (pages are allocated when first written) and sealed against shrinking and growing,
  /// so no mapping of it can ever fault past its end. Throws ConfigError for a bad size and
  /// GuestMemoryError when the host refuses.
  static GuestMemory create_memfd(uint64_t size);

  /// Maps the file `fd` (a snapshot memory file or a memfd from create_memfd, laid out as in the
  /// class comment) as `size` bytes of guest RAM, MAP_PRIVATE | MAP_NORESERVE: no RAM is copied
  /// or pre-faulted, so the cost does not grow with `size`; a page is copied only when this VM
  /// writes it, and those writes never reach the file or any other mapping of it.
  ///
  /// Checks first that `fd` is a regular file (memfds are) of at least `size` bytes, throwing
  /// SnapshotError otherwise (ConfigError for a bad size, GuestMemoryError when mmap fails).
  /// `fd` is duplicated; the caller keeps its own descriptor.
  ///
  /// Contract: the file must not change while mapped. A page this VM has not yet written is
  /// still read from the file, so a later write to the file (or to a MAP_SHARED mapping of it)
  /// shows through, and truncating the file makes those pages raise SIGBUS. A fork of a running
  /// VM therefore maps a frozen copy (a memfd that nobody maps shared any more), never the
  /// parent's live memfd.
  static GuestMemory map_private(int fd, uint64_t size);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  /// Total RAM in bytes.
  uint64_t size() const noexcept { return total_; }
  /// The RAM regions, in ascending guest-physical order.
  const std::vector<Region>& regions() const noexcept { return regions_; }
  /// How the RAM is backed.
  Backing backing() const noexcept { return backing_; }
  /// The backing file (owned by this object; valid while it lives), or -1 for anonymous RAM.
  /// For kPrivateFile it is the file the mapping started from, which does NOT hold the pages
  /// this VM has written since: read guest RAM through slice()/read() instead.
  int backing_fd() const noexcept { return fd_.get(); }

  /// Host view of [gpa, gpa + len), which must lie inside one region; nullopt otherwise.
  /// Never throws: this is the form for the exit/device hot path.
  std::optional<std::span<uint8_t>> try_slice(uint64_t gpa, uint64_t len) const noexcept;
  /// As try_slice, but throws GuestMemoryError naming the range.
  std::span<uint8_t> slice(uint64_t gpa, uint64_t len) const;

  /// Copies `data` to guest memory at `gpa` (throws GuestMemoryError when out of range).
  void write(uint64_t gpa, std::span<const uint8_t> data) const;
  /// Copies guest memory at `gpa` into `out` (throws GuestMemoryError when out of range).
  void read(uint64_t gpa, std::span<uint8_t> out) const;

  /// Reads a trivially copyable object from guest memory.
  template <typename T>
  T read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, slice(gpa, sizeof(T)).data(), sizeof(T));
    return value;
  }
  /// Writes a trivially copyable object to guest memory.
  template <typename T>
  void write_obj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::memcpy(slice(gpa, sizeof(T)).data(), &value, sizeof(T));
  }

 private:
  GuestMemory(std::vector<Region> regions, uint64_t total);
  /// Maps every region of a `size`-byte RAM with `map(gpa, region_size, file_offset)`.
  template <typename MapFn>
  static GuestMemory map_regions(uint64_t size, MapFn map);
  void release() noexcept;

  std::vector<Region> regions_;
  uint64_t total_ = 0;
  Backing backing_ = Backing::kAnonymous;
  Fd fd_;
};

}  // namespace forkvm
