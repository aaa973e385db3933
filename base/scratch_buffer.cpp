#include "base/scratch_buffer.hpp"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace forkvm {

ScratchBuffer::ScratchBuffer(size_t size) : size_(size) {
  if (size == 0) throw std::bad_alloc();
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // Advice only: a kernel without transparent huge pages refuses it, and then there are none.
  (void)::madvise(p, size, MADV_NOHUGEPAGE);
  data_ = static_cast<uint8_t*>(p);
}

ScratchBuffer::~ScratchBuffer() { release(); }

ScratchBuffer::ScratchBuffer(ScratchBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

ScratchBuffer& ScratchBuffer::operator=(ScratchBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void ScratchBuffer::release() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace forkvm
