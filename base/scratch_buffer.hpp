// ScratchBuffer: bytes of its own mapping, none of them resident until written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace forkvm {

/// A fixed-size byte buffer in its own anonymous mapping, for per-VM scratch space sized for
/// the largest transfer (a vsock packet's payload, an agent read) that most VMs rarely fill.
/// Its contents start as zero pages that take no host memory: a page becomes resident when it
/// is first written, and all of them go back to the kernel when the buffer is destroyed. (A
/// zeroed std::vector of 64 KiB made every sandbox hold 64 KiB of host memory; malloc'd
/// memory, once freed by an earlier sandbox, may come back resident.) The mapping is advised
/// no-huge, so neighbouring buffers merged into one mapping never get a 2 MiB page for a
/// write to one of them. Not copyable; movable.
class ScratchBuffer {
 public:
  /// Maps `size` bytes (> 0). Throws std::bad_alloc when the mapping is refused, as a vector
  /// of that size would.
  explicit ScratchBuffer(size_t size);
  ~ScratchBuffer();
  ScratchBuffer(ScratchBuffer&& other) noexcept;
  ScratchBuffer& operator=(ScratchBuffer&& other) noexcept;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  uint8_t* data() noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<uint8_t> span() noexcept { return {data_, size_}; }

 private:
  void release() noexcept;

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace forkvm
