#include "devices/virtio/queue.hpp"

#include <gtest/gtest.h>

#include <initializer_list>

#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm {
namespace {

using testing::VirtqBuilder;

TEST(VirtioQueue, ValidConfigurationBecomesReady) {
  VirtqBuilder b;
  EXPECT_TRUE(b.queue().validate(b.mem()));
  EXPECT_TRUE(b.queue().ready());
  EXPECT_FALSE(b.queue().broken());
  EXPECT_EQ(b.queue().error_reason(), "");
}

TEST(VirtioQueue, EmptyRingPopsNothing) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  EXPECT_FALSE(b.queue().pop(b.mem()));
  EXPECT_FALSE(b.queue().broken());
}

TEST(VirtioQueue, NotReadyQueuePopsNothing) {
  VirtqBuilder b;
  b.chain(0, {{8, false}});
  b.publish(0);
  EXPECT_FALSE(b.queue().pop(b.mem()));
}

TEST(VirtioQueue, PopAndAddUsedPublishIdx) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.chain(0, {{8, false}});
  b.chain(3, {{8, false}, {16, true}});
  b.publish(0);
  b.publish(3);
  auto h0 = b.queue().pop(b.mem());
  auto h1 = b.queue().pop(b.mem());
  ASSERT_TRUE(h0 && h1);
  EXPECT_EQ(*h0, 0);
  EXPECT_EQ(*h1, 3);
  EXPECT_FALSE(b.queue().pop(b.mem()));
  EXPECT_EQ(b.queue().in_flight(), 2);
  EXPECT_TRUE(b.queue().add_used(b.mem(), 3, 16));
  EXPECT_EQ(b.used_idx(), 1);
  EXPECT_EQ(b.used_elem(0), (std::pair<uint32_t, uint32_t>{3, 16}));
  EXPECT_TRUE(b.queue().add_used(b.mem(), 0, 0));
  EXPECT_EQ(b.used_idx(), 2);
  EXPECT_EQ(b.queue().in_flight(), 0);
}

TEST(VirtioQueue, IndicesWrapAround) {
  VirtqBuilder b(4);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.chain(0, {{8, true}});
  for (int i = 0; i < 70000; ++i) {
    b.publish(0);
    auto chain = b.queue().pop_chain(b.mem());
    ASSERT_TRUE(chain) << b.queue().error_reason();
    ASSERT_TRUE(b.queue().add_used(b.mem(), chain->head(), 8));
  }
  EXPECT_EQ(b.used_idx(), static_cast<uint16_t>(70000));
  EXPECT_FALSE(b.queue().broken());
}

TEST(VirtioQueue, AvailIdxJumpingPastSizeBreaks) {
  VirtqBuilder b(8);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.set_avail_idx(9);
  EXPECT_FALSE(b.queue().pop(b.mem()));
  EXPECT_EQ(b.queue().error(), QueueError::kAvailIdxJump);
  EXPECT_NE(b.queue().error_reason().find("avail idx 9"), std::string::npos);
  // Sticky: even a now-sane ring is not consumed.
  b.set_avail_idx(1);
  EXPECT_FALSE(b.queue().pop(b.mem()));
  EXPECT_TRUE(b.queue().broken());
  EXPECT_FALSE(b.queue().add_used(b.mem(), 0, 0));
}

TEST(VirtioQueue, AvailIdxExactlySizeIsFine) {
  VirtqBuilder b(8);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  for (uint16_t i = 0; i < 8; ++i) {
    b.chain(i, {{8, false}});
    b.publish(i);
  }
  for (uint16_t i = 0; i < 8; ++i) EXPECT_TRUE(b.queue().pop(b.mem()));
  EXPECT_FALSE(b.queue().broken());
}

TEST(VirtioQueue, HeadOutOfRangeBreaks) {
  VirtqBuilder b(8);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.publish(8);
  EXPECT_FALSE(b.queue().pop(b.mem()));
  EXPECT_EQ(b.queue().error(), QueueError::kHeadOutOfRange);
}

TEST(VirtioQueue, AddUsedRejectsBadHeadAndUnpoppedChains) {
  VirtqBuilder b(8);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  EXPECT_FALSE(b.queue().add_used(b.mem(), 0, 0));  // nothing in flight
  EXPECT_EQ(b.queue().error(), QueueError::kUsedHeadInvalid);

  VirtqBuilder c(8);
  ASSERT_TRUE(c.queue().validate(c.mem()));
  c.chain(0, {{8, false}});
  c.publish(0);
  ASSERT_TRUE(c.queue().pop(c.mem()));
  EXPECT_FALSE(c.queue().add_used(c.mem(), 8, 0));
  EXPECT_EQ(c.queue().error(), QueueError::kUsedHeadInvalid);
  EXPECT_EQ(c.used_idx(), 0);
}

TEST(VirtioQueue, SizeMustBeAPowerOfTwoWithinMax) {
  for (uint16_t size : std::initializer_list<uint16_t>{0, 3, 12, 255, 512, 1024}) {
    VirtqBuilder b;
    b.queue().set_size(size);
    EXPECT_FALSE(b.queue().validate(b.mem())) << size;
    EXPECT_EQ(b.queue().error(), QueueError::kSizeInvalid) << size;
    EXPECT_FALSE(b.queue().ready());
  }
  for (uint16_t size : std::initializer_list<uint16_t>{1, 2, 128, 256}) {
    VirtqBuilder b;
    b.queue().set_size(size);
    EXPECT_TRUE(b.queue().validate(b.mem())) << size;
  }
}

TEST(VirtioQueue, RingsMustBeAligned) {
  {
    VirtqBuilder b;
    b.queue().set_desc_table(VirtqBuilder::kDesc + 8);
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kDescTableMisaligned);
  }
  {
    VirtqBuilder b;
    b.queue().set_avail_ring(VirtqBuilder::kAvail + 1);
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kAvailRingMisaligned);
  }
  {
    VirtqBuilder b;
    b.queue().set_used_ring(VirtqBuilder::kUsed + 2);
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kUsedRingMisaligned);
  }
}

TEST(VirtioQueue, RingsMustBeInsideMemoryToTheLastByte) {
  const uint64_t end = VirtqBuilder::kMemBytes;
  const uint16_t n = 16;
  {
    VirtqBuilder b(n);
    b.queue().set_desc_table(end - Queue::desc_table_bytes(n));
    EXPECT_TRUE(b.queue().validate(b.mem()));
  }
  {
    VirtqBuilder b(n);
    b.queue().set_desc_table(end - Queue::desc_table_bytes(n) + 16);
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kDescTableOutOfMemory);
  }
  {
    // The avail ring's trailing used_event field counts: 6 + 2 * size bytes.
    VirtqBuilder b(n);
    b.queue().set_avail_ring(end - Queue::avail_ring_bytes(n) + 2);
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kAvailRingOutOfMemory);
  }
  {
    // The used ring's trailing avail_event field counts: 6 + 8 * size bytes.
    VirtqBuilder b(n);
    b.queue().set_used_ring(end - Queue::used_ring_bytes(n) + 2);  // 4-aligned, 2 bytes short
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kUsedRingOutOfMemory);
  }
  {
    VirtqBuilder b(n);
    b.queue().set_used_ring(0xFFFF'FFFF'FFFF'FFF0ull);  // would wrap if summed naively
    EXPECT_FALSE(b.queue().validate(b.mem()));
    EXPECT_EQ(b.queue().error(), QueueError::kUsedRingOutOfMemory);
  }
}

TEST(VirtioQueue, ResetClearsBrokenState) {
  VirtqBuilder b(8);
  b.queue().set_size(3);
  EXPECT_FALSE(b.queue().validate(b.mem()));
  b.queue().reset();
  EXPECT_FALSE(b.queue().broken());
  EXPECT_EQ(b.queue().size(), Queue::kDefaultMaxSize);
  EXPECT_EQ(b.queue().error_reason(), "");
}

}  // namespace
}  // namespace forkvm
