// Fuzz target: the virtio-blk request path over in-memory guest RAM. The input is one flags
// byte (bit 0: a read-only disk, bit 1: DISCARD and WRITE_ZEROES offered) and then a
// QueueInput (fuzz_input.hpp) for the request queue. As the device's worker does, every chain
// popped is handled by blk::handle_request (header, direction, lengths, sector range, status
// byte, the reads and writes against a real 64 KiB disk image file) and returned with the
// length it reports, which can never exceed what the chain offers for writing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/block/disk_image.hpp"
#include "devices/virtio/block/request.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/support/temp_dir.hpp"

using namespace forkvm;

namespace {

// Two 64 KiB images (128 sectors), one opened read-write, one read-only (each image is
// locked for its use).
struct Disk {
  Disk() {
    for (const std::string& path : {dir / "rw.img", dir / "ro.img"}) {
      std::ofstream(path, std::ios::binary).write(std::string(64 * 1024, 'd').data(), 64 * 1024);
    }
    rw.emplace(DiskImage::open(dir / "rw.img", false));
    ro.emplace(DiskImage::open(dir / "ro.img", true));
  }
  test::TempDir dir{"fvblk"};
  std::optional<DiskImage> rw, ro;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GuestMemory mem = GuestMemory::create_anonymous(fuzz::kGuestRamBytes);
  static Disk disk;
  fuzz::ByteReader in(data, size);
  const uint8_t flags = in.u8();
  const fuzz::QueueInput qi = fuzz::read_queue_input(in, mem);
  Queue queue = fuzz::make_queue(qi);
  if (!queue.validate(mem)) return 0;

  blk::RequestCounters counters;
  blk::RequestContext ctx;
  ctx.memory = &mem;
  ctx.disk = (flags & 1) != 0 ? &*disk.ro : &*disk.rw;
  ctx.id = "fuzz-disk";
  ctx.discard = ctx.write_zeroes = (flags & 2) != 0 && ctx.disk->can_punch_holes();
  ctx.counters = &counters;
  // Bounded: a read may land on the available ring and publish more chains (virtqueue_fuzz).
  for (int pops = 0; pops < 4 * queue.size() + 8; ++pops) {
    auto chain = queue.pop_chain(mem);
    if (!chain) break;
    const uint32_t len = blk::handle_request(ctx, *chain);
    if (len > chain->writable_bytes()) {
      std::fprintf(stderr, "block_request_fuzz: used len %u > writable %llu\n", len,
                   static_cast<unsigned long long>(chain->writable_bytes()));
      std::abort();
    }
    if (!queue.add_used(mem, chain->head(), len)) break;
  }
  return 0;
}
