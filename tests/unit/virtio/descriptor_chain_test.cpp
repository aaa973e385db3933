#include "devices/virtio/descriptor_chain.hpp"

#include <gtest/gtest.h>

#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm {
namespace {

using testing::VirtqBuilder;

// Publishes `head`, pops it as a chain, and returns the queue's error (kNone on success).
QueueError pop_error(VirtqBuilder& b, uint16_t head) {
  if (!b.queue().validate(b.mem())) return b.queue().error();
  b.publish(head);
  auto chain = b.queue().pop_chain(b.mem());
  EXPECT_EQ(chain.has_value(), !b.queue().broken());
  return b.queue().error();
}

TEST(DescriptorChain, SingleDescriptor) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.chain(5, {{100, false}});
  b.publish(5);
  auto chain = b.queue().pop_chain(b.mem());
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->head(), 5);
  ASSERT_EQ(chain->segments().size(), 1u);
  EXPECT_EQ(chain->segments()[0].gpa, VirtqBuilder::kData);
  EXPECT_EQ(chain->readable_bytes(), 100u);
  EXPECT_EQ(chain->writable_bytes(), 0u);
}

TEST(DescriptorChain, ReadableThenWritable) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.chain(0, {{16, false}, {32, false}, {64, true}, {1, true}});
  b.publish(0);
  auto chain = b.queue().pop_chain(b.mem());
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->descriptor_count(), 4);
  EXPECT_EQ(chain->readable().size(), 2u);
  EXPECT_EQ(chain->writable().size(), 2u);
  EXPECT_EQ(chain->readable_bytes(), 48u);
  EXPECT_EQ(chain->writable_bytes(), 65u);
  EXPECT_TRUE(chain->writable()[0].writable);
}

TEST(DescriptorChain, ZeroLengthBuffersAreAllowedAndDropped) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.chain(0, {{0, false}, {8, false}, {0, true}});
  b.set_desc(0, 0xFFFF'FFFF'FFFF'0000ull, 0, kVirtqDescFNext, 1);  // address irrelevant
  b.publish(0);
  auto chain = b.queue().pop_chain(b.mem());
  ASSERT_TRUE(chain) << b.queue().error_reason();
  EXPECT_EQ(chain->descriptor_count(), 3);
  EXPECT_EQ(chain->segments().size(), 1u);
  EXPECT_EQ(chain->readable_bytes(), 8u);
}

TEST(DescriptorChain, LoopIsStoppedByTheHopLimit) {
  VirtqBuilder b;
  b.set_desc(0, VirtqBuilder::kData, 8, kVirtqDescFNext, 1);
  b.set_desc(1, VirtqBuilder::kData, 8, kVirtqDescFNext, 0);
  EXPECT_EQ(pop_error(b, 0), QueueError::kChainTooLong);
  EXPECT_NE(b.queue().error_reason().find("chain head 0"), std::string::npos);
}

TEST(DescriptorChain, SelfLoopOfZeroLengthIsStopped) {
  VirtqBuilder b(256);
  b.set_desc(7, VirtqBuilder::kData, 0, kVirtqDescFNext, 7);
  EXPECT_EQ(pop_error(b, 7), QueueError::kChainTooLong);
}

TEST(DescriptorChain, FullLengthChainIsAllowed) {
  VirtqBuilder b(8);
  std::vector<std::pair<uint32_t, bool>> bufs(8, {4, false});
  b.chain(0, bufs);
  EXPECT_EQ(pop_error(b, 0), QueueError::kNone);
}

TEST(DescriptorChain, NextOutOfRange) {
  VirtqBuilder b(16);
  b.set_desc(0, VirtqBuilder::kData, 8, kVirtqDescFNext, 16);
  EXPECT_EQ(pop_error(b, 0), QueueError::kNextOutOfRange);
}

TEST(DescriptorChain, AddressOutsideMemory) {
  VirtqBuilder b;
  b.set_desc(0, VirtqBuilder::kMemBytes - 4, 8, 0, 0);
  EXPECT_EQ(pop_error(b, 0), QueueError::kBufferOutOfMemory);
}

TEST(DescriptorChain, AddressPlusLengthOverflows) {
  VirtqBuilder b;
  b.set_desc(0, 0xFFFF'FFFF'FFFF'FFF0ull, 0x100, 0, 0);
  EXPECT_EQ(pop_error(b, 0), QueueError::kAddressOverflow);
}

TEST(DescriptorChain, LengthsAboveTheCapAreRejected) {
  VirtqBuilder b;
  // 5 x 15 MiB buffers stay within 16 MiB memory one by one, but total 75 MiB > 64 MiB.
  for (uint16_t i = 0; i < 5; ++i) {
    b.set_desc(i, 0x10000, 15u << 20, static_cast<uint16_t>(i < 4 ? kVirtqDescFNext : 0),
               static_cast<uint16_t>(i + 1));
  }
  EXPECT_EQ(pop_error(b, 0), QueueError::kRequestTooLarge);

  VirtqBuilder c;
  c.set_desc(0, 0, 0xFFFF'FFFFu, 0, 0);
  EXPECT_EQ(pop_error(c, 0), QueueError::kRequestTooLarge);
}

TEST(DescriptorChain, CapIsConfigurable) {
  GuestMemory mem = GuestMemory::create_anonymous(VirtqBuilder::kMemBytes);
  mem.write_obj(VirtqBuilder::kDesc, VirtqDesc{VirtqBuilder::kData, 4096, 0, 0});
  DescriptorChain chain;
  EXPECT_EQ(DescriptorChain::walk(mem, {VirtqBuilder::kDesc, 8, 4095}, 0, chain),
            QueueError::kRequestTooLarge);
  EXPECT_TRUE(chain.segments().empty());
  EXPECT_EQ(DescriptorChain::walk(mem, {VirtqBuilder::kDesc, 8, 4096}, 0, chain),
            QueueError::kNone);
}

TEST(DescriptorChain, WritableBeforeReadable) {
  VirtqBuilder b;
  b.chain(0, {{8, true}, {8, false}});
  EXPECT_EQ(pop_error(b, 0), QueueError::kReadableAfterWritable);
}

TEST(DescriptorChain, IndirectIsRejected) {
  VirtqBuilder b;
  b.set_desc(0, VirtqBuilder::kData, 32, kVirtqDescFIndirect, 0);
  EXPECT_EQ(pop_error(b, 0), QueueError::kIndirectNotSupported);
}

TEST(DescriptorChain, WalkReportsTheFaultingDescriptor) {
  GuestMemory mem = GuestMemory::create_anonymous(VirtqBuilder::kMemBytes);
  mem.write_obj(VirtqBuilder::kDesc, VirtqDesc{VirtqBuilder::kData, 8, kVirtqDescFNext, 1});
  mem.write_obj(VirtqBuilder::kDesc + 16, VirtqDesc{VirtqBuilder::kData, 8, kVirtqDescFNext, 9});
  DescriptorChain chain;
  uint16_t fault = 0;
  EXPECT_EQ(DescriptorChain::walk(mem, {VirtqBuilder::kDesc, 8, 1 << 20}, 0, chain, &fault),
            QueueError::kNextOutOfRange);
  EXPECT_EQ(fault, 9);
}

}  // namespace
}  // namespace forkvm
