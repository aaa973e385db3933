// What the libFuzzer harnesses share: a front-to-back reader of the fuzzer's bytes (so that
// make_corpus.py can lay out seeds field by field), and the layout of a guest-RAM input (a
// queue's configuration followed by the first bytes of guest RAM), used by the harnesses that
// drive a virtqueue over in-memory guest RAM.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm::fuzz {

/// Reads little-endian integers and byte runs from the front of the input; past the end every
/// integer reads as 0 and every run is empty, so a harness never has to check lengths.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) noexcept : data_(data), size_(size) {}

  /// The next `n` bytes (fewer at the end).
  std::span<const uint8_t> bytes(size_t n) noexcept {
    n = std::min(n, size_ - pos_);
    std::span<const uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  /// Everything not read yet.
  std::span<const uint8_t> rest() noexcept { return bytes(size_ - pos_); }
  /// The same, as text.
  std::string_view rest_text() noexcept {
    const auto r = rest();
    return {reinterpret_cast<const char*>(r.data()), r.size()};
  }
  uint8_t u8() noexcept { return static_cast<uint8_t>(le(1)); }
  uint16_t u16() noexcept { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() noexcept { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() noexcept { return le(8); }
  /// Whether everything was read.
  bool empty() const noexcept { return pos_ == size_; }

 private:
  uint64_t le(size_t n) noexcept {
    uint64_t v = 0;
    const auto b = bytes(n);
    for (size_t i = 0; i < b.size(); ++i) v |= uint64_t{b[i]} << (8 * i);
    return v;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// Guest RAM of the queue harnesses: small, so that a chain's buffers (guest-chosen addresses)
/// land inside it often and outside it often.
inline constexpr uint64_t kGuestRamBytes = 64 * 1024;

/// A queue input: u16 size, u64 descriptor table, u64 available ring, u64 used ring (all as the
/// driver would write them to the transport, unchecked), then up to kGuestRamBytes bytes copied
/// to guest-physical 0 (the rest of RAM is zero). make_corpus.py writes seeds in this layout.
struct QueueInput {
  uint16_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;
};

/// Reads a QueueInput from `in` and fills `mem` (kGuestRamBytes, reused across runs) with the
/// RAM bytes that follow it; returns the configuration.
inline QueueInput read_queue_input(ByteReader& in, const GuestMemory& mem) {
  QueueInput q;
  q.size = in.u16();
  q.desc = in.u64();
  q.avail = in.u64();
  q.used = in.u64();
  const auto ram = mem.slice_for_write(0, kGuestRamBytes);
  const auto image = in.bytes(kGuestRamBytes);
  std::memcpy(ram.data(), image.data(), image.size());
  std::memset(ram.data() + image.size(), 0, ram.size() - image.size());
  return q;
}

/// A queue configured from `q` (not yet validated), with `max_size` as its QueueNumMax.
inline Queue make_queue(const QueueInput& q, uint16_t max_size = Queue::kDefaultMaxSize,
                        uint64_t max_request_bytes = Queue::kDefaultMaxRequestBytes) {
  Queue queue(max_size, max_request_bytes);
  queue.set_size(q.size);
  queue.set_desc_table(q.desc);
  queue.set_avail_ring(q.avail);
  queue.set_used_ring(q.used);
  return queue;
}

}  // namespace forkvm::fuzz
