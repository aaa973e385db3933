// Test helper (after Firecracker's virtio test_utils): lays out a split virtqueue's descriptor
// table, available ring and used ring in a fake guest memory and plays the driver's part.
#pragma once

#include <cstdint>
#include <vector>

#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm::testing {

/// A driver-side view of one queue in a 16 MiB anonymous guest memory.
class VirtqBuilder {
 public:
  static constexpr uint64_t kMemBytes = 16ull << 20;
  static constexpr uint64_t kDesc = 0x1000;
  static constexpr uint64_t kAvail = 0x5000;
  static constexpr uint64_t kUsed = 0x6000;
  static constexpr uint64_t kData = 0x100000;

  explicit VirtqBuilder(uint16_t size = 16)
      : mem_(GuestMemory::create_anonymous(kMemBytes)), size_(size) {
    queue_.set_size(size);
    queue_.set_desc_table(kDesc);
    queue_.set_avail_ring(kAvail);
    queue_.set_used_ring(kUsed);
  }

  const GuestMemory& mem() const { return mem_; }
  Queue& queue() { return queue_; }

  /// Writes descriptor `i` in the table.
  void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    mem_.write_obj(kDesc + 16ull * i, VirtqDesc{addr, len, flags, next});
  }
  /// Puts `head` in the next available slot and bumps avail->idx.
  void publish(uint16_t head) {
    mem_.write_obj<uint16_t>(kAvail + 4 + 2ull * (avail_idx_ % size_), head);
    ++avail_idx_;
    set_avail_idx(avail_idx_);
  }
  /// Overwrites avail->idx directly.
  void set_avail_idx(uint16_t idx) { mem_.store_u16(kAvail + 2, idx, std::memory_order_release); }
  /// Reads used->idx.
  uint16_t used_idx() const { return mem_.load_u16(kUsed + 2, std::memory_order_acquire).value(); }
  /// Reads used ring element `slot` as {id, len}.
  std::pair<uint32_t, uint32_t> used_elem(uint16_t slot) const {
    return {mem_.read_obj<uint32_t>(kUsed + 4 + 8ull * slot),
            mem_.read_obj<uint32_t>(kUsed + 8 + 8ull * slot)};
  }
  /// Lays out a chain of buffers starting at descriptor `first`; each buffer is
  /// {len, writable}, placed at kData + 0x10000 * k.
  void chain(uint16_t first, const std::vector<std::pair<uint32_t, bool>>& bufs) {
    for (size_t k = 0; k < bufs.size(); ++k) {
      const auto i = static_cast<uint16_t>(first + k);
      const bool last = k + 1 == bufs.size();
      set_desc(i, kData + 0x10000ull * k, bufs[k].first,
               static_cast<uint16_t>((last ? 0 : kVirtqDescFNext) |
                                     (bufs[k].second ? kVirtqDescFWrite : 0)),
               static_cast<uint16_t>(last ? 0 : i + 1));
    }
  }

 private:
  GuestMemory mem_;
  uint16_t size_;
  Queue queue_;
  uint16_t avail_idx_ = 0;
};

}  // namespace forkvm::testing
