#include "devices/virtio/descriptor_chain.hpp"

#include <cstring>
#include <limits>

#include "memory/guest_memory.hpp"

namespace forkvm {

std::string_view to_string(QueueError e) noexcept {
  switch (e) {
    case QueueError::kNone: return "none";
    case QueueError::kNotReady: return "queue used before activation";
    case QueueError::kSizeInvalid: return "queue size is zero, not a power of two, or too big";
    case QueueError::kDescTableMisaligned: return "descriptor table not 16-byte aligned";
    case QueueError::kAvailRingMisaligned: return "available ring not 2-byte aligned";
    case QueueError::kUsedRingMisaligned: return "used ring not 4-byte aligned";
    case QueueError::kDescTableOutOfMemory: return "descriptor table outside guest memory";
    case QueueError::kAvailRingOutOfMemory: return "available ring outside guest memory";
    case QueueError::kUsedRingOutOfMemory: return "used ring outside guest memory";
    case QueueError::kAvailIdxJump: return "avail idx moved by more than the queue size";
    case QueueError::kHeadOutOfRange: return "available ring entry out of range";
    case QueueError::kNextOutOfRange: return "descriptor next index out of range";
    case QueueError::kChainTooLong: return "descriptor chain longer than the queue (loop)";
    case QueueError::kIndirectNotSupported: return "indirect descriptor not negotiated";
    case QueueError::kReadableAfterWritable: return "readable descriptor after a writable one";
    case QueueError::kAddressOverflow: return "descriptor addr + len overflows";
    case QueueError::kBufferOutOfMemory: return "descriptor buffer outside guest memory";
    case QueueError::kRequestTooLarge: return "request larger than the per-request cap";
    case QueueError::kMemoryAccess: return "guest memory access failed";
    case QueueError::kUsedHeadInvalid: return "device returned an invalid used head";
  }
  return "unknown";
}

void DescriptorChain::clear() noexcept {
  head_ = 0;
  descriptor_count_ = 0;
  readable_count_ = 0;
  readable_bytes_ = 0;
  writable_bytes_ = 0;
  segments_.clear();
}

QueueError DescriptorChain::walk(const GuestMemory& mem, const ChainLimits& limits,
                                 uint16_t head, DescriptorChain& out, uint16_t* fault_desc) {
  out.clear();
  out.head_ = head;
  uint16_t index = head;
  uint32_t hops = 0;
  uint64_t total = 0;
  bool seen_writable = false;
  auto fail = [&](QueueError e) {
    if (fault_desc != nullptr) *fault_desc = index;
    out.clear();
    return e;
  };
  for (;;) {
    // Guest-controlled: the head (from the available ring) and every `next` (from the table).
    if (index >= limits.queue_size) {
      return fail(hops == 0 ? QueueError::kHeadOutOfRange : QueueError::kNextOutOfRange);
    }
    // Hop limit: a chain visits each descriptor at most once, so more than queue_size hops
    // means a cycle (§2.7.5.1 forbids loops). This bounds the walk and the segment vector.
    if (++hops > limits.queue_size) return fail(QueueError::kChainTooLong);

    // Copy the descriptor once and validate the copy: the guest may rewrite it concurrently.
    // index < queue_size and the table was validated, so this cannot overflow.
    const auto raw = mem.try_slice(limits.desc_table + uint64_t{index} * sizeof(VirtqDesc),
                                   sizeof(VirtqDesc));
    if (!raw) return fail(QueueError::kMemoryAccess);
    VirtqDesc desc;
    std::memcpy(&desc, raw->data(), sizeof desc);

    // Guest-controlled: flags. INDIRECT is only legal once VIRTIO_F_INDIRECT_DESC is
    // negotiated (§2.7.5.3.1), which this device model never offers.
    if ((desc.flags & kVirtqDescFIndirect) != 0) return fail(QueueError::kIndirectNotSupported);
    const bool writable = (desc.flags & kVirtqDescFWrite) != 0;
    // §2.7.4.2: device-readable descriptors come before device-writable ones.
    if (!writable && seen_writable) return fail(QueueError::kReadableAfterWritable);
    seen_writable = seen_writable || writable;

    // Guest-controlled: addr and len. total <= cap holds, so cap - total cannot underflow.
    if (desc.len > limits.max_request_bytes - total) return fail(QueueError::kRequestTooLarge);
    if (desc.len > std::numeric_limits<uint64_t>::max() - desc.addr) {
      return fail(QueueError::kAddressOverflow);
    }
    if (desc.len > 0) {
      // The whole buffer must lie in one RAM region, checked now rather than at access time.
      if (!mem.try_slice(desc.addr, desc.len)) return fail(QueueError::kBufferOutOfMemory);
      out.segments_.push_back(ChainSegment{desc.addr, desc.len, writable});
      if (writable) {
        out.writable_bytes_ += desc.len;
      } else {
        out.readable_bytes_ += desc.len;
        ++out.readable_count_;
      }
    }
    // Zero-length buffers are legal and simply contribute no segment.
    total += desc.len;
    out.descriptor_count_ = static_cast<uint16_t>(hops);

    if ((desc.flags & kVirtqDescFNext) == 0) return QueueError::kNone;
    index = desc.next;
  }
}

}  // namespace forkvm
