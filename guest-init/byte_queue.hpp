// ByteQueue: the bounded FIFO of bytes that holds one direction of a relayed connection (bytes
// read from one socket and not yet written to the other). Memory follows the backlog: storage
// is a list of 16 KiB chunks allocated while bytes wait and freed once they are written, so an
// idle connection holds nothing and a stalled one holds at most its capacity.
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <memory>
#include <span>
#include <string_view>

namespace forkvm::relay {

/// A byte FIFO that never holds more than its capacity.
class ByteQueue {
 public:
  /// Size of one storage chunk (the most one write_area() offers).
  static constexpr std::size_t kChunkBytes = 16 * 1024;

  /// An empty queue that holds at most `capacity` bytes (at least 1).
  explicit ByteQueue(std::size_t capacity);

  /// Bytes waiting.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Whether no byte is waiting.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Whether no byte more fits (the source must not be read).
  [[nodiscard]] bool full() const noexcept { return size_ >= capacity_; }
  /// The most bytes it holds.
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Free space to receive into directly, contiguous, at most kChunkBytes; empty when full.
  /// Allocates a chunk when needed (std::bad_alloc). Call commit() with what was stored.
  [[nodiscard]] std::span<char> write_area();
  /// Makes the first `n` bytes of the last write_area() part of the queue (n <= its size).
  void commit(std::size_t n) noexcept;
  /// Appends as much of `data` as fits; returns how much did.
  std::size_t append(std::string_view data);

  /// The oldest waiting bytes, contiguous (one chunk's worth at most); empty when empty.
  [[nodiscard]] std::span<const char> read_area() const noexcept;
  /// Drops the first `n` bytes of read_area() (n <= its size); frees drained chunks.
  void consume(std::size_t n) noexcept;
  /// Frees storage that holds no bytes (a write_area() that received nothing).
  void trim() noexcept;

 private:
  using Chunk = std::array<char, kChunkBytes>;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::size_t head_ = 0;  // first waiting byte in chunks_.front()
  std::size_t tail_ = 0;  // bytes filled in chunks_.back()
  std::deque<std::unique_ptr<Chunk>> chunks_;
};

}  // namespace forkvm::relay
