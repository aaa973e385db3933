// The device side of one split virtqueue (virtio 1.2 §2.7), written defensively after
// Firecracker's devices/virtio/queue.rs: the transport sets the size and ring addresses, the
// queue is validated once at activation, and any malformed guest input afterwards puts the
// queue into a sticky broken state (a device error, DEVICE_NEEDS_RESET) instead of throwing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/queue_error.hpp"

namespace forkvm {

class GuestMemory;

/// One split virtqueue, host (device) side (virtio 1.2 §2.7). Not thread-safe: one worker
/// owns it at a time. Guest memory is passed to every call and only touched through
/// GuestMemory::try_slice, with copies (no pointer into guest RAM is kept across calls).
class Queue {
 public:
  /// Default largest size a transport may set (QueueNumMax, virtio 1.2 §4.2.2).
  static constexpr uint16_t kDefaultMaxSize = 256;
  /// Default cap on the total length of one descriptor chain.
  static constexpr uint64_t kDefaultMaxRequestBytes = 64ull << 20;

  /// Alignments required by virtio 1.2 §2.7 (table "Virtqueue Part / Alignment").
  static constexpr uint64_t kDescAlign = 16;
  static constexpr uint64_t kAvailAlign = 2;
  static constexpr uint64_t kUsedAlign = 4;

  /// Bytes of the descriptor table for `size` entries (virtio 1.2 §2.7.5): 16 * size.
  static constexpr uint64_t desc_table_bytes(uint16_t size) noexcept { return 16ull * size; }
  /// Bytes of the available ring (virtio 1.2 §2.7.6): flags, idx, ring[size], used_event.
  static constexpr uint64_t avail_ring_bytes(uint16_t size) noexcept { return 6 + 2ull * size; }
  /// Bytes of the used ring (virtio 1.2 §2.7.8): flags, idx, ring[size] of 8 bytes, avail_event.
  static constexpr uint64_t used_ring_bytes(uint16_t size) noexcept { return 6 + 8ull * size; }

  /// A queue whose size may be set to at most `max_size` and whose chains may total at most
  /// `max_request_bytes`. The initial size is max_size, as after a device reset (§4.2.2).
  explicit Queue(uint16_t max_size = kDefaultMaxSize,
                 uint64_t max_request_bytes = kDefaultMaxRequestBytes) noexcept;

  /// Sets the size the driver chose (QueueNum). Checked by validate(), not here.
  void set_size(uint16_t size) noexcept { size_ = size; }
  /// Sets the descriptor table address (QueueDescLow/High, §2.7.5).
  void set_desc_table(uint64_t gpa) noexcept { desc_table_ = gpa; }
  /// Sets the available ring address (QueueDriverLow/High, §2.7.6).
  void set_avail_ring(uint64_t gpa) noexcept { avail_ring_ = gpa; }
  /// Sets the used ring address (QueueDeviceLow/High, §2.7.8).
  void set_used_ring(uint64_t gpa) noexcept { used_ring_ = gpa; }

  /// Current size (number of descriptors).
  uint16_t size() const noexcept { return size_; }
  /// Largest size the transport accepts.
  uint16_t max_size() const noexcept { return max_size_; }
  /// Descriptor table address.
  uint64_t desc_table() const noexcept { return desc_table_; }
  /// Available ring address.
  uint64_t avail_ring() const noexcept { return avail_ring_; }
  /// Used ring address.
  uint64_t used_ring() const noexcept { return used_ring_; }

  /// Checks the configuration at activation (QueueReady, §2.7): size a power of two in
  /// [1, max_size], rings aligned, each ring entirely inside guest RAM (its exact byte length
  /// including used_event/avail_event). On success the queue becomes ready; on failure it is
  /// broken with a reason. Returns whether it is ready.
  bool validate(const GuestMemory& mem);

  /// Takes the next available chain head (virtio 1.2 §2.7.6), or nullopt when the ring is
  /// empty or the queue is not ready/broken. A head >= size or an avail idx that ran ahead by
  /// more than size breaks the queue.
  std::optional<uint16_t> pop(const GuestMemory& mem);
  /// pop() and then walks the chain (DescriptorChain::walk). A malformed chain breaks the
  /// queue and yields nullopt. Allocates the segment vector (may throw std::bad_alloc only).
  std::optional<DescriptorChain> pop_chain(const GuestMemory& mem);

  /// Returns chain `head` to the driver with `len` bytes written (virtio 1.2 §2.7.8): writes
  /// the used element, then publishes used->idx with release ordering. Returns false (and
  /// breaks the queue) on an invalid head or a failed memory access.
  bool add_used(const GuestMemory& mem, uint16_t head, uint32_t len);

  /// Whether validate() succeeded and the queue is not broken.
  bool ready() const noexcept { return ready_ && !broken(); }
  /// Whether a malformed input stopped the queue; sticky until reset().
  bool broken() const noexcept { return error_ != QueueError::kNone; }
  /// The first error that broke the queue (kNone when healthy).
  QueueError error() const noexcept { return error_; }
  /// A human-readable reason naming the numbers involved ("" when healthy).
  const std::string& error_reason() const noexcept { return reason_; }

  /// The next available-ring position the device will read (free-running, wraps at 2^16).
  uint16_t next_avail() const noexcept { return next_avail_; }
  /// The next used-ring position the device will write (free-running, wraps at 2^16).
  uint16_t next_used() const noexcept { return next_used_; }
  /// Chains popped but not yet returned through add_used().
  uint16_t in_flight() const noexcept { return in_flight_; }

  /// Device reset (virtio 1.2 §2.4): back to max size, zero addresses, not ready, not broken.
  void reset() noexcept;

  /// Gives back the chain pop() returned last, as if it had never been taken (Firecracker's
  /// undo_pop): for a device that popped a buffer it cannot fill before a snapshot. Only valid
  /// right after that pop, with no add_used() in between. Returns false (and changes nothing)
  /// when nothing is in flight.
  bool undo_pop() noexcept;

  /// The driver's avail->idx as it is in guest memory now (acquire), or nullopt when the queue
  /// is not ready or the read fails. Does not consume anything.
  std::optional<uint16_t> driver_avail_idx(const GuestMemory& mem) const noexcept;

  /// Whether the driver wants an interrupt for the used buffers published so far: false when
  /// it set VIRTQ_AVAIL_F_NO_INTERRUPT in avail->flags (virtio 1.2 §2.7.7: the device SHOULD
  /// NOT interrupt then; Linux sets it while it polls the ring itself), true otherwise and
  /// whenever the flags cannot be read. A full fence orders it after the used->idx store: a
  /// driver that clears the flag and then re-checks used->idx cannot miss both.
  bool interrupt_wanted(const GuestMemory& mem) const noexcept;

  /// Snapshot state: the configuration the driver wrote and the device's progress. The reason
  /// string of a broken queue is not kept; a restored broken queue reports its QueueError.
  struct State {
    uint16_t size = 0;         ///< QueueNum (number of descriptors).
    uint64_t desc_table = 0;   ///< Descriptor table address.
    uint64_t avail_ring = 0;   ///< Available ring address.
    uint64_t used_ring = 0;    ///< Used ring address.
    bool ready = false;        ///< Validated at activation and not broken.
    uint16_t next_avail = 0;   ///< Next available-ring position to read.
    uint16_t next_used = 0;    ///< Next used-ring position to write.
    uint16_t in_flight = 0;    ///< Chains popped and not yet returned.
    QueueError error = QueueError::kNone;  ///< Why the queue broke (kNone when healthy).
    /// Field equality.
    bool operator==(const State&) const = default;
  };

  /// Captures the configuration and progress.
  State save_state() const noexcept;
  /// Checks `state` for consistency without a queue or memory: a ready queue has a power-of-two
  /// size in [1, 32768] and aligned rings, next_avail - next_used == in_flight (mod 2^16, each
  /// pop adds one to both next_avail and in_flight, each add_used moves one from in_flight to
  /// next_used), in_flight <= size, and a broken queue is not ready. Throws SnapshotError
  /// starting with `component`. The size of a queue that is not ready is not checked: it is
  /// whatever the driver wrote, and validate() judges it at activation.
  static void check_state(const State& state, std::string_view component);
  /// Replaces this queue's configuration and progress with `state` (check_state(), plus size <=
  /// max_size() when ready). A ready state is re-validated against `mem` (rings inside guest RAM); failing
  /// that throws SnapshotError, as does any other check, leaving the queue unchanged.
  void restore_state(const State& state, const GuestMemory& mem, std::string_view component);

 private:
  void fail(QueueError e, std::string_view detail);

  uint16_t max_size_;
  uint64_t max_request_bytes_;
  uint16_t size_;
  uint64_t desc_table_ = 0;
  uint64_t avail_ring_ = 0;
  uint64_t used_ring_ = 0;
  bool ready_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t in_flight_ = 0;
  QueueError error_ = QueueError::kNone;
  std::string reason_;
};

}  // namespace forkvm
