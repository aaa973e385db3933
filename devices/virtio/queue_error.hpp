// Why a virtqueue stopped: the guest handed the device something malformed. These are device
// errors (the transport sets DEVICE_NEEDS_RESET, virtio 1.2 §2.1.2), never host exceptions.
#pragma once

#include <cstdint>
#include <string_view>

namespace forkvm {

/// The first fault that put a virtqueue into its sticky broken state (virtio 1.2 §2.7).
enum class QueueError : uint8_t {
  kNone = 0,                ///< the queue is healthy
  kNotReady,                ///< used before validate() succeeded
  kSizeInvalid,             ///< size is zero, not a power of two, or above max (§2.7)
  kDescTableMisaligned,     ///< descriptor table not 16-byte aligned (§2.7 table)
  kAvailRingMisaligned,     ///< available ring not 2-byte aligned (§2.7 table)
  kUsedRingMisaligned,      ///< used ring not 4-byte aligned (§2.7 table)
  kDescTableOutOfMemory,    ///< descriptor table not inside guest RAM (§2.7.5)
  kAvailRingOutOfMemory,    ///< available ring not inside guest RAM (§2.7.6)
  kUsedRingOutOfMemory,     ///< used ring not inside guest RAM (§2.7.8)
  kAvailIdxJump,            ///< avail->idx moved by more than the queue size (§2.7.6)
  kHeadOutOfRange,          ///< a ring entry names a descriptor >= size (§2.7.6)
  kNextOutOfRange,          ///< a descriptor's next index is >= size (§2.7.5)
  kChainTooLong,            ///< more hops than the queue size: a cyclic chain (§2.7.5.1)
  kIndirectNotSupported,    ///< VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC (§2.7.5.3)
  kReadableAfterWritable,   ///< a readable descriptor follows a writable one (§2.7.4.2)
  kAddressOverflow,         ///< addr + len wraps past 2^64 (§2.7.5)
  kBufferOutOfMemory,       ///< a buffer is not inside guest RAM (§2.7.5)
  kRequestTooLarge,         ///< the chain's total length exceeds the per-request cap
  kMemoryAccess,            ///< a ring or descriptor read/write failed after validation
  kUsedHeadInvalid,         ///< the device returned a head >= size or with nothing in flight
};

/// A stable, human-readable name for `e` (for logs and the device's error reason).
std::string_view to_string(QueueError e) noexcept;

}  // namespace forkvm
