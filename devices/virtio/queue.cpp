#include "devices/virtio/queue.hpp"

#include <atomic>
#include <cstring>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm {
namespace {

// Offsets inside the rings (virtio 1.2 §2.7.6 and §2.7.8).
constexpr uint64_t kAvailFlagsOffset = 0;  // le16 flags
constexpr uint64_t kRingIdxOffset = 2;   // le16 flags; le16 idx
constexpr uint64_t kRingOffset = 4;      // ring[] starts after flags and idx
constexpr uint64_t kUsedElemBytes = 8;   // le32 id; le32 len

bool read_u16(const GuestMemory& mem, uint64_t gpa, uint16_t& out) noexcept {
  const auto s = mem.try_slice(gpa, sizeof out);
  if (!s) return false;
  std::memcpy(&out, s->data(), sizeof out);
  return true;
}

bool write_bytes(const GuestMemory& mem, uint64_t gpa, const void* data, size_t len) noexcept {
  const auto s = mem.try_slice_for_write(gpa, len);
  if (!s) return false;
  std::memcpy(s->data(), data, len);
  return true;
}

}  // namespace

Queue::Queue(uint16_t max_size, uint64_t max_request_bytes) noexcept
    : max_size_(max_size), max_request_bytes_(max_request_bytes), size_(max_size) {}

void Queue::reset() noexcept {
  size_ = max_size_;
  desc_table_ = avail_ring_ = used_ring_ = 0;
  ready_ = false;
  next_avail_ = next_used_ = in_flight_ = 0;
  error_ = QueueError::kNone;
  reason_.clear();
}

void Queue::fail(QueueError e, std::string_view detail) {
  if (broken()) return;  // keep the first reason: later ones are usually consequences
  ready_ = false;
  error_ = e;
  reason_ = std::string(to_string(e)) + ": " + std::string(detail);
}

bool Queue::validate(const GuestMemory& mem) {
  if (broken()) return false;
  // Guest-controlled: size and the three ring addresses, written by the driver through the
  // transport. Sizes are checked before computing any ring length from them.
  if (size_ == 0 || (size_ & (size_ - 1)) != 0 || size_ > max_size_) {
    fail(QueueError::kSizeInvalid,
         "size " + std::to_string(size_) + ", max " + std::to_string(max_size_));
    return false;
  }
  if (desc_table_ % kDescAlign != 0) {
    fail(QueueError::kDescTableMisaligned, "desc " + hex(desc_table_));
    return false;
  }
  if (avail_ring_ % kAvailAlign != 0) {
    fail(QueueError::kAvailRingMisaligned, "avail " + hex(avail_ring_));
    return false;
  }
  if (used_ring_ % kUsedAlign != 0) {
    fail(QueueError::kUsedRingMisaligned, "used " + hex(used_ring_));
    return false;
  }
  // try_slice is overflow-safe (it never forms gpa + len), so a ring address near 2^64 fails
  // here instead of wrapping around to low memory.
  if (!mem.try_slice(desc_table_, desc_table_bytes(size_))) {
    fail(QueueError::kDescTableOutOfMemory,
         "desc " + hex(desc_table_) + " + " + hex(desc_table_bytes(size_)));
    return false;
  }
  if (!mem.try_slice(avail_ring_, avail_ring_bytes(size_))) {
    fail(QueueError::kAvailRingOutOfMemory,
         "avail " + hex(avail_ring_) + " + " + hex(avail_ring_bytes(size_)));
    return false;
  }
  if (!mem.try_slice(used_ring_, used_ring_bytes(size_))) {
    fail(QueueError::kUsedRingOutOfMemory,
         "used " + hex(used_ring_) + " + " + hex(used_ring_bytes(size_)));
    return false;
  }
  ready_ = true;
  return true;
}

std::optional<uint16_t> Queue::pop(const GuestMemory& mem) {
  if (!ready()) return std::nullopt;
  // Guest-controlled: avail->idx. The driver fills ring[idx % size] first and only then
  // increments idx, with a write barrier between (virtio 1.2 §2.7.6 and the driver rules for
  // supplying buffers).
  // So we read idx first and the ring entry after it; the acquire load keeps the entry load
  // from being hoisted above the idx load (by the compiler, or the CPU on weaker ISAs), which
  // would let us see the new idx with a stale entry.
  const auto idx = mem.load_u16(avail_ring_ + kRingIdxOffset, std::memory_order_acquire);
  if (!idx) {
    fail(QueueError::kMemoryAccess, "reading avail idx");
    return std::nullopt;
  }
  const uint16_t avail_idx = *idx;

  // Free-running 16-bit counters: the difference is the number of new entries. More than
  // `size` is impossible for a correct driver (there are only `size` descriptors).
  const auto pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending > size_) {
    fail(QueueError::kAvailIdxJump, "avail idx " + std::to_string(avail_idx) + ", last seen " +
                                        std::to_string(next_avail_) + ", size " +
                                        std::to_string(size_));
    return std::nullopt;
  }
  if (pending == 0) return std::nullopt;

  const uint64_t slot = next_avail_ & (size_ - 1u);  // size is a power of two
  uint16_t head = 0;
  // A plain read: the acquire load of avail->idx above already orders it after the driver's
  // write of this entry.
  if (!read_u16(mem, avail_ring_ + kRingOffset + 2 * slot, head)) {
    fail(QueueError::kMemoryAccess, "reading avail ring slot " + std::to_string(slot));
    return std::nullopt;
  }
  // Guest-controlled: the head index.
  if (head >= size_) {
    fail(QueueError::kHeadOutOfRange,
         "head " + std::to_string(head) + " >= size " + std::to_string(size_));
    return std::nullopt;
  }
  ++next_avail_;
  ++in_flight_;
  return head;
}

std::optional<DescriptorChain> Queue::pop_chain(const GuestMemory& mem) {
  const auto head = pop(mem);
  if (!head) return std::nullopt;
  DescriptorChain chain;
  uint16_t fault = 0;
  const ChainLimits limits{desc_table_, size_, max_request_bytes_};
  const QueueError e = DescriptorChain::walk(mem, limits, *head, chain, &fault);
  if (e != QueueError::kNone) {
    fail(e, "chain head " + std::to_string(*head) + ", descriptor " + std::to_string(fault));
    return std::nullopt;
  }
  return chain;
}

bool Queue::add_used(const GuestMemory& mem, uint16_t head, uint32_t len) {
  if (!ready()) return false;
  if (head >= size_ || in_flight_ == 0) {
    fail(QueueError::kUsedHeadInvalid, "head " + std::to_string(head) + ", in flight " +
                                           std::to_string(in_flight_));
    return false;
  }
  const uint64_t slot = next_used_ & (size_ - 1u);
  const uint32_t elem[2] = {head, len};
  if (!write_bytes(mem, used_ring_ + kRingOffset + kUsedElemBytes * slot, elem, sizeof elem)) {
    fail(QueueError::kMemoryAccess, "writing used ring slot " + std::to_string(slot));
    return false;
  }
  // The driver reads used->idx and then the elements below it (virtio 1.2 §2.7.8). The release
  // store orders the element store before the idx store, so a driver that observes the new
  // idx also observes the element it covers.
  const auto new_idx = static_cast<uint16_t>(next_used_ + 1);
  if (!mem.store_u16(used_ring_ + kRingIdxOffset, new_idx, std::memory_order_release)) {
    fail(QueueError::kMemoryAccess, "writing used idx");
    return false;
  }
  next_used_ = new_idx;
  --in_flight_;
  return true;
}

bool Queue::undo_pop() noexcept {
  if (in_flight_ == 0) return false;
  --next_avail_;
  --in_flight_;
  return true;
}

std::optional<uint16_t> Queue::driver_avail_idx(const GuestMemory& mem) const noexcept {
  if (!ready()) return std::nullopt;
  // Acquire: whatever the driver published before bumping idx is visible after this read.
  return mem.load_u16(avail_ring_ + kRingIdxOffset, std::memory_order_acquire);
}

bool Queue::interrupt_wanted(const GuestMemory& mem) const noexcept {
  constexpr uint16_t kNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
  // Store (used->idx, in add_used) then load (avail->flags): only a full fence keeps the load
  // from passing the store, which would lose the interrupt the driver re-enabled in between.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const auto flags = mem.load_u16(avail_ring_ + kAvailFlagsOffset, std::memory_order_relaxed);
  if (!flags) return true;
  return (*flags & kNoInterrupt) == 0;
}

Queue::State Queue::save_state() const noexcept {
  State s;
  s.size = size_;
  s.desc_table = desc_table_;
  s.avail_ring = avail_ring_;
  s.used_ring = used_ring_;
  s.ready = ready();
  s.next_avail = next_avail_;
  s.next_used = next_used_;
  s.in_flight = in_flight_;
  s.error = error_;
  return s;
}

void Queue::check_state(const State& s, std::string_view component) {
  auto reject = [component](const std::string& what) {
    throw SnapshotError("snapshot: " + std::string(component) + ": " + what);
  };
  // Sizes of a queue that is not ready are whatever the driver wrote to QueueNum (validate()
  // refuses a bad one at activation, as it would have before the snapshot).
  constexpr uint32_t kLargestSize = 32768;  // virtio 1.2 §2.7: Queue Size at most 32768
  if (s.ready && s.size > kLargestSize) reject("size " + std::to_string(s.size) + " above 32768");
  if (s.error != QueueError::kNone && s.ready) reject("a broken queue cannot be ready");
  if (s.ready) {
    if (s.size == 0 || (s.size & (s.size - 1)) != 0) {
      reject("ready queue with size " + std::to_string(s.size) + ", not a power of two");
    }
    if (s.desc_table % kDescAlign != 0) reject("desc_table " + hex(s.desc_table) + " misaligned");
    if (s.avail_ring % kAvailAlign != 0) reject("avail_ring " + hex(s.avail_ring) + " misaligned");
    if (s.used_ring % kUsedAlign != 0) reject("used_ring " + hex(s.used_ring) + " misaligned");
  }
  if (s.in_flight > s.size) {
    reject("in_flight " + std::to_string(s.in_flight) + " above size " + std::to_string(s.size));
  }
  if (static_cast<uint16_t>(s.next_avail - s.next_used) != s.in_flight) {
    reject("next_avail " + std::to_string(s.next_avail) + " - next_used " +
           std::to_string(s.next_used) + " != in_flight " + std::to_string(s.in_flight));
  }
  if (!s.ready && s.error == QueueError::kNone && (s.next_avail != 0 || s.next_used != 0)) {
    // Progress is only made by a validated queue; a never-activated one is still at zero.
    reject("progress recorded on a queue that was never ready");
  }
}

void Queue::restore_state(const State& s, const GuestMemory& mem, std::string_view component) {
  check_state(s, component);
  if (s.ready && s.size > max_size_) {
    throw SnapshotError("snapshot: " + std::string(component) + ": size " +
                        std::to_string(s.size) + " above this queue's max " +
                        std::to_string(max_size_));
  }
  Queue q(max_size_, max_request_bytes_);
  q.size_ = s.size;
  q.desc_table_ = s.desc_table;
  q.avail_ring_ = s.avail_ring;
  q.used_ring_ = s.used_ring;
  q.next_avail_ = s.next_avail;
  q.next_used_ = s.next_used;
  q.in_flight_ = s.in_flight;
  if (s.ready && !q.validate(mem)) {
    throw SnapshotError("snapshot: " + std::string(component) + ": " + q.error_reason());
  }
  if (s.error != QueueError::kNone) q.fail(s.error, "restored from a snapshot");
  *this = std::move(q);
}

}  // namespace forkvm
