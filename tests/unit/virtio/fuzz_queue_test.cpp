// Seeded fuzz-like sweep: random descriptor tables and ring indices must never crash, hang or
// produce a chain that violates its invariants.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "devices/virtio/chain_io.hpp"
#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm {
namespace {

using testing::VirtqBuilder;

uint64_t random_addr(std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0: return rng();                                            // anywhere
    case 1: return VirtqBuilder::kMemBytes - (rng() % 0x2000);       // near the end
    default: return VirtqBuilder::kData + (rng() % 0x80000);         // plausible
  }
}

TEST(VirtioFuzz, RandomDescriptorTablesNeverCrash) {
  std::mt19937_64 rng(0xF0C4'5EEDull);
  VirtqBuilder b(16);
  std::vector<uint8_t> buf(4096);
  int broken = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Queue& q = b.queue();
    q.reset();
    q.set_size(16);
    q.set_desc_table(VirtqBuilder::kDesc);
    q.set_avail_ring(VirtqBuilder::kAvail);
    q.set_used_ring(VirtqBuilder::kUsed);
    for (uint16_t i = 0; i < 16; ++i) {
      const uint16_t flags = static_cast<uint16_t>(rng() % 8);
      const uint32_t len = (rng() % 4 == 0) ? static_cast<uint32_t>(rng())
                                            : static_cast<uint32_t>(rng() % 0x3000);
      const auto next = static_cast<uint16_t>(rng() % 20);
      b.set_desc(i, random_addr(rng), len, flags, next);
    }
    for (uint16_t s = 0; s < 16; ++s) {
      b.mem().write_obj<uint16_t>(VirtqBuilder::kAvail + 4 + 2u * s,
                                  static_cast<uint16_t>(rng() % 18));
    }
    b.set_avail_idx(static_cast<uint16_t>(rng() % 20));
    b.mem().write_obj<uint16_t>(VirtqBuilder::kUsed + 2, 0);
    ASSERT_TRUE(q.validate(b.mem()));

    int pops = 0;
    while (auto chain = q.pop_chain(b.mem())) {
      ASSERT_LE(++pops, 16);  // bounded: never more than size entries
      ASSERT_LE(chain->segments().size(), 16u);
      ASSERT_LE(chain->readable_bytes() + chain->writable_bytes(), Queue::kDefaultMaxRequestBytes);
      Reader r(b.mem(), *chain);
      while (r.read(buf) > 0) {
      }
      Writer w(b.mem(), *chain);
      while (w.write(buf) > 0) {
      }
      ASSERT_EQ(w.bytes_written(), chain->writable_bytes());
      ASSERT_TRUE(q.add_used(b.mem(), chain->head(), static_cast<uint32_t>(w.bytes_written())));
    }
    if (q.broken()) {
      ++broken;
      EXPECT_FALSE(q.error_reason().empty());
    }
  }
  // The sweep must exercise both outcomes.
  EXPECT_GT(broken, 0);
  EXPECT_LT(broken, 3000);
}

}  // namespace
}  // namespace forkvm
