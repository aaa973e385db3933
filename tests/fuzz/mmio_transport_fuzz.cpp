// Fuzz target: the virtio-mmio register file (devices/virtio/mmio_transport.hpp) driven by a
// guest, in front of a real virtio-blk device on a 64 KiB image file. The input is u16 n, then
// n bytes of guest RAM (at guest-physical 0; rings and buffers the driver may point the queue
// at), then register accesses of 7 bytes each: u8 op (bit 0: write; bits 1-2: width 1, 2, 4 or
// 8 bytes), u16 offset into the 4 KiB window (config space from 0x100), u32 value. Feature
// negotiation, the status state machine, queue configuration, DRIVER_OK with its queue
// validation and device activation, QueueNotify (the device's worker then serves the queue),
// InterruptACK and config space reads and writes are all reached; the transport is reset and
// destroyed after each input, which joins the worker.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/block/disk_image.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "memory/guest_memory.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/support/temp_dir.hpp"

using namespace forkvm;

namespace {

// The interrupt line: the VMM's is an irqfd; here the edges are only counted.
class CountingTrigger : public InterruptTrigger {
 public:
  void trigger() noexcept override { count.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<uint64_t> count{0};
};

struct Image {
  Image() {
    std::ofstream(path, std::ios::binary).write(std::string(64 * 1024, 'd').data(), 64 * 1024);
  }
  test::TempDir dir{"fvmmio"};
  std::string path = dir / "disk.img";
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GuestMemory mem = GuestMemory::create_anonymous(fuzz::kGuestRamBytes);
  static Image image;
  fuzz::ByteReader in(data, size);
  const auto ram = mem.slice_for_write(0, fuzz::kGuestRamBytes);
  const auto bytes = in.bytes(in.u16());
  std::memcpy(ram.data(), bytes.data(), bytes.size());
  std::memset(ram.data() + bytes.size(), 0, ram.size() - bytes.size());

  auto device = std::make_shared<BlockDevice>(DiskImage::open(image.path, false), "fuzz-disk");
  VirtioMmioTransport transport(device, mem, std::make_shared<CountingTrigger>());
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const uint16_t offset = in.u16() & 0x1ff;
    const uint32_t value = in.u32();
    const size_t width = size_t{1} << ((op >> 1) & 3);
    uint8_t buf[8] = {};
    std::memcpy(buf, &value, sizeof value);
    if ((op & 1) != 0) {
      transport.write(offset, std::span<const uint8_t>(buf, width));
    } else {
      transport.read(offset, std::span<uint8_t>(buf, width));
    }
  }
  (void)transport.status();
  (void)transport.needs_reset_reason();
  transport.reset_device();
  return 0;
}
