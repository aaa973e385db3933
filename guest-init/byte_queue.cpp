#include "guest-init/byte_queue.hpp"

#include <algorithm>
#include <cstring>

namespace forkvm::relay {

ByteQueue::ByteQueue(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

std::span<char> ByteQueue::write_area() {
  const std::size_t room = capacity_ - std::min(size_, capacity_);
  if (room == 0) return {};
  if (chunks_.empty() || tail_ == kChunkBytes) {
    chunks_.push_back(std::make_unique<Chunk>());
    tail_ = 0;
  }
  return {chunks_.back()->data() + tail_, std::min(kChunkBytes - tail_, room)};
}

void ByteQueue::commit(std::size_t n) noexcept {
  tail_ += n;
  size_ += n;
}

std::size_t ByteQueue::append(std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const std::span<char> area = write_area();
    if (area.empty()) break;
    const std::size_t n = std::min(area.size(), data.size() - done);
    std::memcpy(area.data(), data.data() + done, n);
    commit(n);
    done += n;
  }
  return done;
}

std::span<const char> ByteQueue::read_area() const noexcept {
  if (size_ == 0) return {};
  const std::size_t end = chunks_.size() == 1 ? tail_ : kChunkBytes;
  return {chunks_.front()->data() + head_, end - head_};
}

void ByteQueue::consume(std::size_t n) noexcept {
  head_ += n;
  size_ -= n;
  if (size_ == 0) {
    trim();
  } else if (head_ == kChunkBytes) {  // the front chunk is drained and more chunks follow
    chunks_.pop_front();
    head_ = 0;
  }
}

void ByteQueue::trim() noexcept {
  if (size_ != 0) return;
  chunks_.clear();
  head_ = 0;
  tail_ = 0;
}

}  // namespace forkvm::relay
