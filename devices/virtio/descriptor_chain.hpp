// Walking a split-virtqueue descriptor chain (virtio 1.2 §2.7.5) into validated segments.
// Every value read from the descriptor table is guest-controlled and checked here, once, on a
// private copy; devices only ever see the resulting segments (through Reader/Writer).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/virtio/queue_error.hpp"

namespace forkvm {

class GuestMemory;

/// One descriptor as laid out in guest memory (virtio 1.2 §2.7.5, little-endian).
struct VirtqDesc {
  uint64_t addr;   ///< guest-physical buffer address
  uint32_t len;    ///< buffer length in bytes
  uint16_t flags;  ///< VIRTQ_DESC_F_*
  uint16_t next;   ///< next descriptor index when flags has VIRTQ_DESC_F_NEXT
};
static_assert(sizeof(VirtqDesc) == 16);

/// VIRTQ_DESC_F_NEXT: the chain continues via `next` (virtio 1.2 §2.7.5).
inline constexpr uint16_t kVirtqDescFNext = 1;
/// VIRTQ_DESC_F_WRITE: the buffer is device-writable (virtio 1.2 §2.7.5).
inline constexpr uint16_t kVirtqDescFWrite = 2;
/// VIRTQ_DESC_F_INDIRECT: the buffer is an indirect table (virtio 1.2 §2.7.5.3); not offered.
inline constexpr uint16_t kVirtqDescFIndirect = 4;

/// One validated buffer: [gpa, gpa + len) lies inside one guest RAM region.
struct ChainSegment {
  uint64_t gpa;   ///< guest-physical start
  uint32_t len;   ///< bytes, never zero (zero-length descriptors are dropped)
  bool writable;  ///< device-writable (VIRTQ_DESC_F_WRITE)
};

/// What a walk needs to know about its queue.
struct ChainLimits {
  uint64_t desc_table = 0;          ///< guest-physical address of the descriptor table
  uint16_t queue_size = 0;          ///< number of descriptors; also the hop limit
  uint64_t max_request_bytes = 0;   ///< cap on the sum of all lengths in one chain
};

/// A descriptor chain that has been walked and validated (virtio 1.2 §2.7.5, §2.7.4.2):
/// readable segments first, then writable ones.
class DescriptorChain {
 public:
  /// Walks the chain starting at `head` into `out`. Checks every index < queue_size, stops a
  /// cyclic chain after queue_size hops, rejects INDIRECT, readable-after-writable, address
  /// overflow, buffers outside guest RAM and totals above max_request_bytes. On failure returns
  /// the error, sets `*fault_desc` (when given) to the offending descriptor index, and leaves
  /// `out` empty. Never throws except std::bad_alloc.
  static QueueError walk(const GuestMemory& mem, const ChainLimits& limits, uint16_t head,
                         DescriptorChain& out, uint16_t* fault_desc = nullptr);

  /// The head index, which the device returns in the used ring (virtio 1.2 §2.7.8).
  uint16_t head() const noexcept { return head_; }
  /// All segments, readable ones first.
  std::span<const ChainSegment> segments() const noexcept { return segments_; }
  /// The device-readable segments (a prefix of segments()).
  std::span<const ChainSegment> readable() const noexcept {
    return std::span<const ChainSegment>(segments_).first(readable_count_);
  }
  /// The device-writable segments (a suffix of segments()).
  std::span<const ChainSegment> writable() const noexcept {
    return std::span<const ChainSegment>(segments_).subspan(readable_count_);
  }
  /// Sum of readable lengths.
  uint64_t readable_bytes() const noexcept { return readable_bytes_; }
  /// Sum of writable lengths.
  uint64_t writable_bytes() const noexcept { return writable_bytes_; }
  /// Number of descriptors walked, zero-length ones included.
  uint16_t descriptor_count() const noexcept { return descriptor_count_; }

 private:
  void clear() noexcept;

  uint16_t head_ = 0;
  uint16_t descriptor_count_ = 0;
  size_t readable_count_ = 0;
  uint64_t readable_bytes_ = 0;
  uint64_t writable_bytes_ = 0;
  std::vector<ChainSegment> segments_;
};

}  // namespace forkvm
