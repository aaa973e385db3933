#include "devices/virtio/chain_io.hpp"

#include <algorithm>
#include <cstring>

#include "memory/guest_memory.hpp"

namespace forkvm::detail {

SegmentCursor::SegmentCursor(const GuestMemory& mem,
                             std::span<const ChainSegment> segments) noexcept
    : mem_(&mem), segments_(segments) {
  // Totals were capped by DescriptorChain::walk, so this sum cannot overflow.
  for (const ChainSegment& s : segments_) available_ += s.len;
}

size_t SegmentCursor::copy(uint8_t* host, size_t len, bool to_guest) noexcept {
  size_t done = 0;
  while (done < len && index_ < segments_.size()) {
    const ChainSegment& seg = segments_[index_];
    const size_t chunk = std::min<size_t>(len - done, seg.len - offset_);
    // Re-checked on every access (cheap), though walk() already validated the segment. A
    // write goes through the writing view, which the write log sees (GuestMemory).
    bool ok = false;
    if (to_guest) {
      if (const auto view = mem_->try_slice_for_write(seg.gpa + offset_, chunk)) {
        std::memcpy(view->data(), host + done, chunk);
        ok = true;
      }
    } else if (const auto view = mem_->try_slice(seg.gpa + offset_, chunk)) {
      std::memcpy(host + done, view->data(), chunk);
      ok = true;
    }
    if (!ok) {
      // Cannot happen for a validated chain; end the stream rather than touch bad memory.
      available_ = 0;
      index_ = segments_.size();
      break;
    }
    done += chunk;
    offset_ += chunk;
    available_ -= chunk;
    consumed_ += chunk;
    if (offset_ == seg.len) {
      ++index_;
      offset_ = 0;
    }
  }
  return done;
}

size_t SegmentCursor::skip(size_t len) noexcept {
  size_t done = 0;
  while (done < len && index_ < segments_.size()) {
    const size_t chunk = std::min<size_t>(len - done, segments_[index_].len - offset_);
    done += chunk;
    offset_ += chunk;
    available_ -= chunk;
    consumed_ += chunk;
    if (offset_ == segments_[index_].len) {
      ++index_;
      offset_ = 0;
    }
  }
  return done;
}

}  // namespace forkvm::detail
