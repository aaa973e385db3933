#include "devices/virtio/chain_io.hpp"

#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <vector>

#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm {
namespace {

using testing::VirtqBuilder;

DescriptorChain pop(VirtqBuilder& b, const std::vector<std::pair<uint32_t, bool>>& bufs) {
  EXPECT_TRUE(b.queue().validate(b.mem()));
  b.chain(0, bufs);
  b.publish(0);
  auto chain = b.queue().pop_chain(b.mem());
  EXPECT_TRUE(chain) << b.queue().error_reason();
  return chain ? *chain : DescriptorChain{};
}

TEST(ChainIo, ReaderCrossesSegmentBoundaries) {
  VirtqBuilder b;
  DescriptorChain chain = pop(b, {{3, false}, {5, false}, {4, true}});
  std::array<uint8_t, 3> a{1, 2, 3};
  std::array<uint8_t, 5> c{4, 5, 6, 7, 8};
  b.mem().write(VirtqBuilder::kData, a);
  b.mem().write(VirtqBuilder::kData + 0x10000, c);

  Reader r(b.mem(), chain);
  EXPECT_EQ(r.available(), 8u);
  std::array<uint8_t, 6> out{};
  EXPECT_EQ(r.read(out), 6u);
  EXPECT_EQ(out, (std::array<uint8_t, 6>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(r.available(), 2u);
  std::array<uint8_t, 4> more{};
  EXPECT_FALSE(r.read_exact(more));  // only 2 left: nothing consumed
  EXPECT_EQ(r.available(), 2u);
  EXPECT_EQ(r.read(more), 2u);
  EXPECT_EQ(more[0], 7);
  EXPECT_EQ(more[1], 8);
  EXPECT_EQ(r.read(more), 0u);
  EXPECT_EQ(r.bytes_read(), 8u);
}

TEST(ChainIo, ReadObjAcrossBoundaryAndShortfall) {
  VirtqBuilder b;
  DescriptorChain chain = pop(b, {{2, false}, {6, false}, {2, false}});
  const uint64_t value = 0x1122334455667788ull;
  std::array<uint8_t, 8> bytes{};
  std::memcpy(bytes.data(), &value, 8);
  b.mem().write(VirtqBuilder::kData, std::span<const uint8_t>(bytes).first(2));
  b.mem().write(VirtqBuilder::kData + 0x10000, std::span<const uint8_t>(bytes).subspan(2));
  Reader r(b.mem(), chain);
  EXPECT_EQ(r.read_obj<uint64_t>(), value);
  EXPECT_FALSE(r.read_obj<uint32_t>());
  EXPECT_EQ(r.read_obj<uint16_t>().has_value(), true);
  EXPECT_EQ(r.available(), 0u);
}

TEST(ChainIo, WriterRoundTripAndBytesWritten) {
  VirtqBuilder b;
  DescriptorChain chain = pop(b, {{4, false}, {3, true}, {0, true}, {7, true}});
  Writer w(b.mem(), chain);
  EXPECT_EQ(w.available(), 10u);
  std::vector<uint8_t> data(12);
  std::iota(data.begin(), data.end(), uint8_t{10});
  EXPECT_FALSE(w.write_all(data));  // too big: nothing written
  EXPECT_EQ(w.bytes_written(), 0u);
  EXPECT_TRUE(w.write_obj<uint32_t>(0xAABBCCDD));
  EXPECT_EQ(w.write(data), 6u);
  EXPECT_EQ(w.bytes_written(), 10u);
  EXPECT_EQ(w.available(), 0u);
  EXPECT_FALSE(w.write_obj<uint8_t>(1));

  // Read it back through guest memory: segment 1 is at kData + 0x10000, segment 3 at +0x30000.
  EXPECT_EQ(b.mem().read_obj<uint16_t>(VirtqBuilder::kData + 0x10000), 0xCCDD);
  EXPECT_EQ(b.mem().read_obj<uint8_t>(VirtqBuilder::kData + 0x10002), 0xBB);
  EXPECT_EQ(b.mem().read_obj<uint8_t>(VirtqBuilder::kData + 0x30000), 0xAA);
  EXPECT_EQ(b.mem().read_obj<uint8_t>(VirtqBuilder::kData + 0x30001), 10);
  EXPECT_EQ(b.mem().read_obj<uint8_t>(VirtqBuilder::kData + 0x30006), 15);

  ASSERT_TRUE(b.queue().add_used(b.mem(), chain.head(),
                                 static_cast<uint32_t>(w.bytes_written())));
  EXPECT_EQ(b.used_elem(0), (std::pair<uint32_t, uint32_t>{0, 10}));
}

TEST(ChainIo, ReaderAndWriterSplitTheChain) {
  VirtqBuilder b;
  DescriptorChain chain = pop(b, {{16, false}, {32, true}});
  Reader r(b.mem(), chain);
  Writer w(b.mem(), chain);
  EXPECT_EQ(r.available(), 16u);
  EXPECT_EQ(w.available(), 32u);
  EXPECT_EQ(r.skip(100), 16u);
  EXPECT_EQ(r.available(), 0u);
}

TEST(ChainIo, EmptyChainSidesAreEmpty) {
  VirtqBuilder b;
  DescriptorChain chain = pop(b, {{8, false}});
  Writer w(b.mem(), chain);
  std::array<uint8_t, 1> one{1};
  EXPECT_EQ(w.available(), 0u);
  EXPECT_EQ(w.write(one), 0u);
}

}  // namespace
}  // namespace forkvm
