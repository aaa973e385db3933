#include "devices/virtio/block/block_backend.hpp"

#include <algorithm>
#include <vector>

namespace forkvm {

int write_zeros_through(BlockBackend& disk, uint64_t offset, uint64_t len) noexcept {
  static const std::vector<uint8_t> kZeros(64 * 1024, 0);
  for (uint64_t done = 0; done < len;) {
    const uint64_t n = std::min<uint64_t>(kZeros.size(), len - done);
    if (const int err = disk.write(offset + done, std::span(kZeros.data(), n)); err != 0) return err;
    done += n;
  }
  return 0;
}

}  // namespace forkvm
