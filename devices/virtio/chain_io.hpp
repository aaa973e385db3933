// Reader and Writer: the only way devices consume a descriptor chain (crosvm descriptor_utils
// shape). A Reader walks the device-readable segments of a validated DescriptorChain, a Writer
// the device-writable ones (virtio 1.2 §2.7.4.2). Every access copies through
// GuestMemory::try_slice; nothing here throws or keeps a pointer into guest memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "devices/virtio/descriptor_chain.hpp"

namespace forkvm {

class GuestMemory;

namespace detail {

/// A cursor over segments: shared by Reader and Writer.
class SegmentCursor {
 public:
  SegmentCursor(const GuestMemory& mem, std::span<const ChainSegment> segments) noexcept;

  /// Bytes left before the end of the last segment.
  size_t available() const noexcept { return available_; }
  /// Bytes consumed so far.
  size_t consumed() const noexcept { return consumed_; }
  /// Copies min(len, available()) bytes between guest memory and `host`, in the direction
  /// given by `to_guest`. Returns the count copied; stops early if guest memory access fails.
  size_t copy(uint8_t* host, size_t len, bool to_guest) noexcept;
  /// Skips up to `len` bytes; returns how many were skipped.
  size_t skip(size_t len) noexcept;

 private:
  const GuestMemory* mem_;
  std::span<const ChainSegment> segments_;
  size_t index_ = 0;     // current segment
  size_t offset_ = 0;    // offset in the current segment
  size_t available_ = 0;
  size_t consumed_ = 0;
};

}  // namespace detail

/// Reads the device-readable part of a chain (virtio 1.2 §2.7.4.2). The chain and the memory
/// must outlive the Reader.
class Reader {
 public:
  /// A Reader over chain.readable().
  Reader(const GuestMemory& mem, const DescriptorChain& chain) noexcept
      : cursor_(mem, chain.readable()) {}

  /// Copies up to out.size() bytes; returns the number read (0 at the end).
  size_t read(std::span<uint8_t> out) noexcept {
    return cursor_.copy(out.data(), out.size(), false);
  }
  /// Fills `out` completely, or reads nothing and returns false when fewer bytes remain.
  bool read_exact(std::span<uint8_t> out) noexcept {
    if (out.size() > available()) return false;
    return read(out) == out.size();
  }
  /// Reads one trivially copyable object (e.g. a request header), or nullopt when fewer than
  /// sizeof(T) bytes remain (nothing is consumed then).
  template <typename T>
  std::optional<T> read_obj() noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    static_assert(std::is_default_constructible_v<T>);
    T value{};
    if (!read_exact(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T)))) {
      return std::nullopt;
    }
    return value;
  }
  /// Skips up to `len` bytes; returns how many were skipped.
  size_t skip(size_t len) noexcept { return cursor_.skip(len); }
  /// Bytes left to read.
  size_t available() const noexcept { return cursor_.available(); }
  /// Bytes read (or skipped) so far.
  size_t bytes_read() const noexcept { return cursor_.consumed(); }

 private:
  detail::SegmentCursor cursor_;
};

/// Writes the device-writable part of a chain (virtio 1.2 §2.7.4.2). bytes_written() is the
/// `len` the device reports in the used ring (§2.7.8). The chain and the memory must outlive
/// the Writer.
class Writer {
 public:
  /// A Writer over chain.writable().
  Writer(const GuestMemory& mem, const DescriptorChain& chain) noexcept
      : cursor_(mem, chain.writable()) {}

  /// Copies up to data.size() bytes; returns the number written (0 when full).
  size_t write(std::span<const uint8_t> data) noexcept {
    // copy() only reads from `host` when writing to the guest.
    return cursor_.copy(const_cast<uint8_t*>(data.data()), data.size(), true);
  }
  /// Writes all of `data`, or nothing and returns false when less space remains.
  bool write_all(std::span<const uint8_t> data) noexcept {
    if (data.size() > available()) return false;
    return write(data) == data.size();
  }
  /// Writes one trivially copyable object, or nothing and returns false when it does not fit.
  template <typename T>
  bool write_obj(const T& value) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    return write_all(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }
  /// Space left.
  size_t available() const noexcept { return cursor_.available(); }
  /// Bytes written so far.
  size_t bytes_written() const noexcept { return cursor_.consumed(); }

 private:
  detail::SegmentCursor cursor_;
};

}  // namespace forkvm
