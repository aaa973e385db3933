// Test helpers for virtio-blk: a scratch image file and a driver that lays requests out in a
// fake guest memory (header, data buffers, status byte) the way Linux's virtio_blk does.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "devices/virtio/block/virtio_blk.hpp"
#include "devices/virtio/descriptor_chain.hpp"
#include "memory/guest_memory.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm::testing {

/// An image file of `bytes` whose byte i is (i * 7 + i / 512) mod 251, so every sector differs.
inline std::string make_image(const test::TempDir& dir, const std::string& name, uint64_t bytes) {
  const std::string path = dir / name;
  std::vector<uint8_t> data(bytes);
  for (uint64_t i = 0; i < bytes; ++i) data[i] = static_cast<uint8_t>((i * 7 + i / 512) % 251);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()),
                                              static_cast<std::streamsize>(bytes));
  return path;
}

/// The expected content of make_image() at `offset`.
inline std::vector<uint8_t> image_bytes(uint64_t offset, uint64_t len) {
  std::vector<uint8_t> v(len);
  for (uint64_t i = 0; i < len; ++i) {
    const uint64_t at = offset + i;
    v[i] = static_cast<uint8_t>((at * 7 + at / 512) % 251);
  }
  return v;
}

/// The whole content of a file.
inline std::vector<uint8_t> file_bytes(const std::string& path) {
  const std::string text = test::read_text(path);
  return {text.begin(), text.end()};
}

/// One buffer of a request: where it is, how long, and whether the device may write it.
struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

/// A virtio-blk driver over VirtqBuilder's queue layout (16 descriptors in a 16 MiB guest
/// memory): lays requests out as Linux's virtio_blk does (header, data buffers, status byte).
class BlkDriver : public VirtqBuilder {
 public:
  static constexpr uint64_t kHeader = 0x10000;
  static constexpr uint64_t kStatus = 0x11000;
  static constexpr uint16_t kSize = 16;

  BlkDriver() : VirtqBuilder(kSize) {}

  /// Writes a header at kHeader.
  void header(uint32_t type, uint64_t sector) {
    mem().write_obj(kHeader, blk::RequestHeader{type, 0, sector});
  }
  /// Lays out `bufs` as descriptors first..first+n-1 and walks the chain.
  DescriptorChain chain(const std::vector<Buf>& bufs, uint16_t first = 0) {
    for (size_t k = 0; k < bufs.size(); ++k) {
      const auto i = static_cast<uint16_t>(first + k);
      const bool last = k + 1 == bufs.size();
      set_desc(i, bufs[k].gpa, bufs[k].len,
               static_cast<uint16_t>((last ? 0 : kVirtqDescFNext) |
                                     (bufs[k].writable ? kVirtqDescFWrite : 0)),
               static_cast<uint16_t>(last ? 0 : i + 1));
    }
    DescriptorChain c;
    const QueueError e = DescriptorChain::walk(mem(), ChainLimits{kDesc, kSize, 64ull << 20}, first, c);
    if (e != QueueError::kNone) throw std::runtime_error("test chain did not walk");
    return c;
  }
  /// The usual request: header, one data buffer at kData (when data_len > 0), status.
  DescriptorChain simple(uint32_t type, uint64_t sector, uint32_t data_len) {
    header(type, sector);
    mem().write_obj<uint8_t>(kStatus, 0xff);
    std::vector<Buf> bufs = {{kHeader, 16, false}};
    if (data_len > 0) bufs.push_back({kData, data_len, type == blk::type::kIn || type == blk::type::kGetId});
    bufs.push_back({kStatus, 1, true});
    return chain(bufs);
  }
  uint8_t status() const { return mem().read_obj<uint8_t>(kStatus); }
  std::vector<uint8_t> data(uint64_t len, uint64_t gpa = kData) const {
    std::vector<uint8_t> v(len);
    mem().read(gpa, v);
    return v;
  }
  void fill(uint64_t gpa, const std::vector<uint8_t>& bytes) { mem().write(gpa, bytes); }
};

}  // namespace forkvm::testing
