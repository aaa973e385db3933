// Queue::State: save -> restore -> save, progress carried over, undo_pop, and every malformed
// field of the JSON refused.
#include "devices/virtio/queue_state.hpp"

#include <gtest/gtest.h>

#include "forkvm/errors.hpp"
#include "tests/support/state_codec_checks.hpp"
#include "tests/unit/virtio/virtq_builder.hpp"

namespace forkvm {
namespace {

using testing::VirtqBuilder;

/// Three one-descriptor chains published; two popped, one of them returned.
Queue::State busy_queue(VirtqBuilder& b) {
  for (uint16_t i = 0; i < 3; ++i) {
    b.chain(i, {{64, true}});
    b.publish(i);
  }
  Queue& q = b.queue();
  EXPECT_TRUE(q.validate(b.mem()));
  EXPECT_EQ(q.pop(b.mem()), 0);
  EXPECT_EQ(q.pop(b.mem()), 1);
  EXPECT_TRUE(q.add_used(b.mem(), 0, 10));
  return q.save_state();
}

TEST(QueueState, SaveRestoreSaveIdenticalAndProgressContinues) {
  VirtqBuilder b;
  const Queue::State saved = busy_queue(b);
  EXPECT_TRUE(saved.ready);
  EXPECT_EQ(saved.next_avail, 2);
  EXPECT_EQ(saved.next_used, 1);
  EXPECT_EQ(saved.in_flight, 1);

  Queue restored(16);
  restored.restore_state(saved, b.mem(), "q");
  EXPECT_EQ(restored.save_state(), saved);
  // It carries on where the original was: the third chain, then the in-flight one returns.
  EXPECT_EQ(restored.pop(b.mem()), 2);
  EXPECT_TRUE(restored.add_used(b.mem(), 1, 0));
  EXPECT_EQ(b.used_idx(), 2);

  const nlohmann::json j = to_json(saved);
  const Queue::State decoded = queue_state_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(decoded, saved);
  Queue again(16);
  again.restore_state(decoded, b.mem(), "q");
  EXPECT_EQ(to_json(again.save_state()), j);
}

TEST(QueueState, BrokenQueueRestoresBroken) {
  VirtqBuilder b;
  b.queue().set_size(16);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  b.set_avail_idx(100);  // jumps by more than the size
  EXPECT_FALSE(b.queue().pop(b.mem()));
  const Queue::State saved = b.queue().save_state();
  EXPECT_EQ(saved.error, QueueError::kAvailIdxJump);
  EXPECT_FALSE(saved.ready);
  const Queue::State decoded = queue_state_from_json(to_json(saved));
  Queue restored(16);
  restored.restore_state(decoded, b.mem(), "q");
  EXPECT_TRUE(restored.broken());
  EXPECT_EQ(restored.error(), QueueError::kAvailIdxJump);
  EXPECT_EQ(restored.save_state(), saved);
}

TEST(QueueState, UndoPopGivesTheChainBack) {
  VirtqBuilder b;
  b.chain(0, {{8, true}});
  b.publish(0);
  ASSERT_TRUE(b.queue().validate(b.mem()));
  EXPECT_FALSE(b.queue().undo_pop());  // nothing in flight
  ASSERT_EQ(b.queue().pop(b.mem()), 0);
  EXPECT_TRUE(b.queue().undo_pop());
  EXPECT_EQ(b.queue().next_avail(), 0);
  EXPECT_EQ(b.queue().in_flight(), 0);
  EXPECT_EQ(b.queue().pop(b.mem()), 0);
  EXPECT_EQ(b.queue().driver_avail_idx(b.mem()), 1);
}

TEST(QueueState, InterruptWantedFollowsTheAvailFlags) {
  VirtqBuilder b;
  ASSERT_TRUE(b.queue().validate(b.mem()));
  EXPECT_TRUE(b.queue().interrupt_wanted(b.mem()));
  b.mem().write_obj<uint16_t>(VirtqBuilder::kAvail, 1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
  EXPECT_FALSE(b.queue().interrupt_wanted(b.mem()));
  b.mem().write_obj<uint16_t>(VirtqBuilder::kAvail, 0);
  EXPECT_TRUE(b.queue().interrupt_wanted(b.mem()));
  // A ring the flags cannot be read from: interrupt, rather than risk a lost wake-up.
  Queue outside;
  outside.set_size(8);
  outside.set_avail_ring(~0ull - 1);
  EXPECT_TRUE(outside.interrupt_wanted(b.mem()));
}

TEST(QueueState, EveryMalformedFieldIsRefused) {
  VirtqBuilder b;
  const nlohmann::json good = to_json(busy_queue(b));
  auto decode = [](const nlohmann::json& j) { return queue_state_from_json(j, "virtio queue"); };
  test::expect_every_field_checked(good, decode, "virtio queue");
  for (const char* f : {"size", "next_avail", "next_used", "in_flight"}) {
    test::expect_rejected(good, decode, f, 65536);
  }
  test::expect_rejected(good, decode, "desc_table", nlohmann::json(18446744073709551615.0));
  test::expect_rejected(good, decode, "error", "on_fire");
  test::expect_rejected(good, decode, "error", std::string(100, 'x'));
  test::expect_rejected(good, decode, "ready", "true");
  // Consistency (message names the component, not always one field).
  auto rejected = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json bad = good;
    bad[key] = v;
    EXPECT_THROW(decode(bad), SnapshotError) << key << " = " << v.dump();
  };
  rejected("size", 12);          // not a power of two
  rejected("size", 0);
  rejected("desc_table", 0x1008);  // 16-byte alignment
  rejected("avail_ring", 0x5001);
  rejected("used_ring", 0x6002);
  rejected("in_flight", 2);      // next_avail - next_used is 1
  rejected("next_used", 5);
  rejected("error", "avail_idx_jump");  // broken but ready
  nlohmann::json idle = good;
  idle["ready"] = false;  // progress on a queue that was never ready
  EXPECT_THROW(decode(idle), SnapshotError);
}

TEST(QueueState, RestoreChecksTheQueueAndMemory) {
  VirtqBuilder b;
  const Queue::State saved = busy_queue(b);
  Queue small(8);  // QueueNumMax 8 < 16
  EXPECT_THROW(small.restore_state(saved, b.mem(), "q"), SnapshotError);
  Queue::State outside = saved;
  outside.used_ring = VirtqBuilder::kMemBytes - 8;
  Queue q(16);
  try {
    q.restore_state(outside, b.mem(), "virtio-mmio[x].queues[0]");
    FAIL() << "a used ring past the end of RAM was accepted";
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find("virtio-mmio[x].queues[0]"), std::string::npos);
  }
  EXPECT_FALSE(q.ready());  // unchanged
  EXPECT_EQ(q.next_avail(), 0);
}

}  // namespace
}  // namespace forkvm
