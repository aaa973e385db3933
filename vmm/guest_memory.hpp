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

namespace forkvm {

/// Guest RAM: one or two host mappings laid out around the 32-bit MMIO hole.
class GuestMemory {
 public:
  /// One contiguous range of guest-physical RAM backed by one host mapping.
  struct Region {
    uint64_t gpa;    ///< first guest-physical address
    uint64_t size;   ///< bytes
    uint8_t* host;   ///< host address of gpa
  };

  /// Maps `size` bytes of anonymous, lazily allocated memory: [0, min(size, 3 GiB)) and the
  /// rest from 4 GiB on. Throws ConfigError when size is not page-aligned or zero, and
  /// GuestMemoryError when the host cannot map it.
  static GuestMemory create_anonymous(uint64_t size);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  /// Total RAM in bytes.
  uint64_t size() const noexcept { return total_; }
  /// The RAM regions, in ascending guest-physical order.
  const std::vector<Region>& regions() const noexcept { return regions_; }

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
  void release() noexcept;

  std::vector<Region> regions_;
  uint64_t total_ = 0;
};

}  // namespace forkvm
