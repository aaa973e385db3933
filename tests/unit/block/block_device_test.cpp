// unit tier: BlockDevice serves its queue on its own thread: config space and features as the
// driver sees them, requests answered through the used ring with an interrupt, a broken queue
// reported through needs_reset, and quiesce() returning the queue with nothing in flight.
#include "devices/virtio/block/block_device.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/fd.hpp"
#include "tests/unit/block/block_test_util.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using testing::BlkDriver;

struct CountingTrigger : InterruptTrigger {
  std::atomic<int> count{0};
  void trigger() noexcept override { ++count; }
};

class BlockDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = testing::make_image(dir_, "disk.img", 1 << 20); }

  VirtioActivation activation() {
    VirtioActivation a;
    a.memory = &drv_.mem();
    a.acked_features = dev_->device_features();
    Queue q(BlockDevice::kQueueSize);
    q.set_size(BlkDriver::kSize);
    q.set_desc_table(BlkDriver::kDesc);
    q.set_avail_ring(BlkDriver::kAvail);
    q.set_used_ring(BlkDriver::kUsed);
    EXPECT_TRUE(q.validate(drv_.mem()));
    a.queues.push_back(std::move(q));
    a.queue_events.push_back(event_.get());
    a.interrupt = std::make_shared<VirtioInterrupt>(trigger_);
    a.needs_reset = [this](const std::string& r) {
      reason_ = r;
      needs_reset_ = true;
    };
    return a;
  }
  /// Puts chain `head` in the available ring and notifies.
  void publish(uint16_t head) {
    drv_.publish(head);
    const uint64_t one = 1;
    ASSERT_EQ(::write(event_.get(), &one, sizeof one), 8);
  }
  /// Polls `done` for up to 5 s.
  template <typename F>
  bool wait_until(F done) {
    for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
      if (done()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  bool wait_used(uint16_t idx) { return wait_until([&] { return drv_.used_idx() == idx; }); }

  test::TempDir dir_{"fvblk"};
  std::string path_;
  BlkDriver drv_;
  Fd event_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::shared_ptr<CountingTrigger> trigger_ = std::make_shared<CountingTrigger>();
  std::unique_ptr<BlockDevice> dev_;
  std::atomic<bool> needs_reset_{false};
  std::string reason_;
};

TEST_F(BlockDeviceTest, ConfigSpaceAndFeatures) {
  dev_ = std::make_unique<BlockDevice>(DiskImage::open(path_, true), "ro-disk");
  EXPECT_EQ(dev_->device_id(), virtio_id::kBlock);
  const uint64_t f = dev_->device_features();
  EXPECT_NE(f & virtio_feature::kVersion1, 0u);
  EXPECT_NE(f & blk::feature::kRo, 0u);
  EXPECT_NE(f & blk::feature::kFlush, 0u);
  EXPECT_EQ(f & blk::feature::kDiscard, 0u);  // never on a read-only disk
  uint8_t cfg[64];
  std::memset(cfg, 0xee, sizeof cfg);
  dev_->read_config(0, cfg);
  uint64_t capacity = 0;
  std::memcpy(&capacity, cfg, 8);
  EXPECT_EQ(capacity, 2048u);
  uint32_t seg_max = 0, blk_size = 0;
  std::memcpy(&seg_max, cfg + 12, 4);
  std::memcpy(&blk_size, cfg + 20, 4);
  EXPECT_EQ(seg_max, BlockDevice::kSegMax);
  EXPECT_EQ(blk_size, 512u);
  EXPECT_EQ(cfg[60], 0xee);  // past the config structure: left alone
  // Guest-chosen offsets past the end or straddling it.
  uint8_t tail[8];
  std::memset(tail, 0xee, sizeof tail);
  dev_->read_config(56, tail);
  EXPECT_EQ(tail[4], 0xee);
  dev_->read_config(UINT64_MAX, tail);
  EXPECT_THROW(BlockDevice(DiskImage::open(path_, true), std::string(21, 'x')), ConfigError);
  EXPECT_THROW(BlockDevice(DiskImage::open(path_, true), "has space"), ConfigError);
}

TEST_F(BlockDeviceTest, ServesRequestsAndQuiescesWithNothingInFlight) {
  dev_ = std::make_unique<BlockDevice>(DiskImage::open(path_, false), "d0");
  dev_->activate(activation());
  drv_.simple(blk::type::kIn, 4, 2048);
  publish(0);
  ASSERT_TRUE(wait_used(1));
  EXPECT_EQ(drv_.status(), blk::status::kOk);
  EXPECT_EQ(drv_.data(2048), testing::image_bytes(4 * 512, 2048));
  EXPECT_EQ(drv_.mem().read_obj<uint32_t>(BlkDriver::kUsed + 8), 2049u);  // used len
  // The worker publishes the used entry first and raises the interrupt after it.
  EXPECT_TRUE(wait_until([&] { return trigger_->count.load() >= 1; })) << "no interrupt";
  // A write, then quiesce: it has completed and the queue says so.
  drv_.fill(BlkDriver::kData, std::vector<uint8_t>(512, 0x5a));
  drv_.simple(blk::type::kOut, 0, 512);
  publish(0);
  ASSERT_TRUE(wait_used(2));
  auto queues = dev_->quiesce();
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_EQ(queues[0].next_used(), 2);
  EXPECT_EQ(queues[0].in_flight(), 0);
  EXPECT_EQ(testing::file_bytes(path_)[0], 0x5a);
  EXPECT_EQ(dev_->counters().reads, 1u);
  EXPECT_EQ(dev_->counters().writes, 1u);
  EXPECT_FALSE(needs_reset_.load());
}

TEST_F(BlockDeviceTest, ABrokenQueueAsksForAResetAndTheDeviceStops) {
  dev_ = std::make_unique<BlockDevice>(DiskImage::open(path_, false), "d0");
  dev_->activate(activation());
  // A head past the queue size breaks the queue (virtio 1.2 §2.7.6).
  publish(200);
  for (int i = 0; i < 500 && !needs_reset_.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(needs_reset_.load());
  dev_->reset();  // joins the parked worker
  EXPECT_THROW(dev_->quiesce(), SnapshotError);
}

}  // namespace
}  // namespace forkvm
