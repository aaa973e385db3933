// The virtio-mmio transport driven register by register, as a Linux driver would (virtio 1.2
// §3.1.1, §4.2.3), against a small recording device and a fake guest memory. No KVM.
#include "devices/virtio/mmio_transport.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <atomic>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "tests/unit/virtio/counting_trigger.hpp"

namespace forkvm {
namespace {

namespace reg = virtio_mmio;
namespace st = virtio_status;

constexpr uint64_t kFeatureA = 1ull << 0;    // offered by the test device
constexpr uint64_t kFeatureB = 1ull << 40;   // offered by the test device
constexpr uint64_t kUnoffered = 1ull << 5;   // never offered
constexpr uint32_t kTestDeviceId = 42;

/// A device that records what the transport does to it.
class TestDevice : public VirtioDevice {
 public:
  std::string name() const override { return "test"; }
  uint32_t device_id() const noexcept override { return kTestDeviceId; }
  uint64_t device_features() const noexcept override { return features; }
  std::vector<uint16_t> queue_max_sizes() const override { return sizes; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const noexcept override {
    for (size_t i = 0; i < data.size(); ++i) {
      if (offset + i < config.size()) data[i] = config[offset + i];
    }
  }
  void write_config(uint64_t offset, std::span<const uint8_t> data) noexcept override {
    for (size_t i = 0; i < data.size(); ++i) {
      if (offset + i < config.size()) config[offset + i] = data[i];
    }
  }
  void activate(VirtioActivation a) override {
    ++activations;
    if (throw_on_activate) throw Error("backend unavailable");
    activation = std::move(a);
  }
  void reset() noexcept override {
    ++resets;
    activation.reset();
  }

  uint64_t features = virtio_feature::kVersion1 | kFeatureA | kFeatureB;
  std::vector<uint16_t> sizes{16, 8};
  std::array<uint8_t, 8> config{1, 2, 3, 4, 5, 6, 7, 8};
  bool throw_on_activate = false;
  int activations = 0;
  int resets = 0;
  std::optional<VirtioActivation> activation;
};

using testing::CountingTrigger;

/// Ring addresses of a valid queue `i` in the fake guest memory.
struct Rings {
  uint64_t desc, avail, used;
};
Rings rings_for(uint32_t i) {
  const uint64_t base = 0x10000 + 0x10000ull * i;
  return {base, base + 0x4000, base + 0x8000};
}

class MmioTransportTest : public ::testing::Test {
 protected:
  MmioTransportTest()
      : mem_(GuestMemory::create_anonymous(16ull << 20)),
        device_(std::make_shared<TestDevice>()),
        trigger_(std::make_shared<CountingTrigger>()) {}

  VirtioMmioTransport& transport() {
    if (!transport_) transport_.emplace(device_, mem_, trigger_);
    return *transport_;
  }
  uint32_t r(uint64_t offset) {
    std::array<uint8_t, 4> b{};
    transport().read(offset, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  void w(uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> b;
    std::memcpy(b.data(), &value, 4);
    transport().write(offset, b);
  }
  void write_features(uint64_t features) {
    w(reg::kDriverFeaturesSel, 0);
    w(reg::kDriverFeatures, static_cast<uint32_t>(features));
    w(reg::kDriverFeaturesSel, 1);
    w(reg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
  }
  /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back.
  uint32_t negotiate(uint64_t features) {
    w(reg::kStatus, st::kAcknowledge);
    w(reg::kStatus, st::kAcknowledge | st::kDriver);
    write_features(features);
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
    return r(reg::kStatus);
  }
  void setup_queue(uint32_t i, uint32_t size, Rings rg) {
    w(reg::kQueueSel, i);
    w(reg::kQueueNum, size);
    w(reg::kQueueDescLow, static_cast<uint32_t>(rg.desc));
    w(reg::kQueueDescHigh, static_cast<uint32_t>(rg.desc >> 32));
    w(reg::kQueueDriverLow, static_cast<uint32_t>(rg.avail));
    w(reg::kQueueDriverHigh, static_cast<uint32_t>(rg.avail >> 32));
    w(reg::kQueueDeviceLow, static_cast<uint32_t>(rg.used));
    w(reg::kQueueDeviceHigh, static_cast<uint32_t>(rg.used >> 32));
    w(reg::kQueueReady, 1);
  }
  void driver_ok() {
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  }
  /// A full, valid bring-up of both queues.
  void bring_up() {
    ASSERT_EQ(negotiate(virtio_feature::kVersion1 | kFeatureA) & st::kFeaturesOk,
              st::kFeaturesOk);
    setup_queue(0, 16, rings_for(0));
    setup_queue(1, 8, rings_for(1));
    driver_ok();
  }
  static bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
  }

  GuestMemory mem_;
  std::shared_ptr<TestDevice> device_;
  std::shared_ptr<CountingTrigger> trigger_;
  std::optional<VirtioMmioTransport> transport_;
};

TEST_F(MmioTransportTest, IdentityRegisters) {
  EXPECT_EQ(r(reg::kMagicValue), 0x74726976u);
  EXPECT_EQ(r(reg::kVersion), 2u);
  EXPECT_EQ(r(reg::kDeviceId), kTestDeviceId);
  EXPECT_EQ(r(reg::kVendorId), reg::kForkvmVendorId);
  EXPECT_EQ(r(reg::kConfigGeneration), 0u);
  EXPECT_EQ(r(reg::kStatus), 0u);
  EXPECT_EQ(r(reg::kShmLenLow), 0xffffffffu);  // no shared memory regions
  EXPECT_EQ(r(reg::kShmLenHigh), 0xffffffffu);
}

TEST_F(MmioTransportTest, DeviceFeatureWindows) {
  w(reg::kDeviceFeaturesSel, 0);
  EXPECT_EQ(r(reg::kDeviceFeatures), static_cast<uint32_t>(kFeatureA));
  w(reg::kDeviceFeaturesSel, 1);
  EXPECT_EQ(r(reg::kDeviceFeatures),
            static_cast<uint32_t>((virtio_feature::kVersion1 | kFeatureB) >> 32));
  w(reg::kDeviceFeaturesSel, 2);
  EXPECT_EQ(r(reg::kDeviceFeatures), 0u);
  w(reg::kDeviceFeaturesSel, 0xffffffff);
  EXPECT_EQ(r(reg::kDeviceFeatures), 0u);
}

TEST_F(MmioTransportTest, FeaturesOkRefusedWithoutVersion1) {
  const uint64_t before = transport().ignored_accesses();
  EXPECT_EQ(negotiate(kFeatureA | kFeatureB), st::kAcknowledge | st::kDriver);
  EXPECT_GT(transport().ignored_accesses(), before);
  // DRIVER_OK cannot follow a refused FEATURES_OK.
  driver_ok();
  EXPECT_EQ(r(reg::kStatus) & st::kDriverOk, 0u);
  EXPECT_EQ(device_->activations, 0);
}

TEST_F(MmioTransportTest, AckedFeaturesMaskedToOffered) {
  ASSERT_EQ(negotiate(~0ull) & st::kFeaturesOk, st::kFeaturesOk);
  setup_queue(0, 16, rings_for(0));
  setup_queue(1, 8, rings_for(1));
  driver_ok();
  ASSERT_TRUE(device_->activation);
  EXPECT_EQ(device_->activation->acked_features, device_->features);
  EXPECT_EQ(device_->activation->acked_features & kUnoffered, 0u);
}

TEST_F(MmioTransportTest, DriverFeaturesOnlyWhileNegotiating) {
  // Before DRIVER: ignored.
  w(reg::kStatus, st::kAcknowledge);
  write_features(virtio_feature::kVersion1);
  w(reg::kStatus, st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);  // nothing was accepted
  // Window 2 and above do not exist.
  w(reg::kDriverFeaturesSel, 2);
  w(reg::kDriverFeatures, 0xffffffff);
  write_features(virtio_feature::kVersion1);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  ASSERT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  // After FEATURES_OK: ignored.
  write_features(virtio_feature::kVersion1 | kFeatureA);
  setup_queue(0, 16, rings_for(0));
  driver_ok();
  ASSERT_TRUE(device_->activation);
  EXPECT_EQ(device_->activation->acked_features, virtio_feature::kVersion1);
}

TEST_F(MmioTransportTest, StatusTransitionsFollowTheSpecOrder) {
  w(reg::kStatus, st::kDriver);  // DRIVER before ACKNOWLEDGE
  EXPECT_EQ(r(reg::kStatus), 0u);
  w(reg::kStatus, st::kAcknowledge);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge);
  w(reg::kStatus, st::kAcknowledge | st::kFeaturesOk);  // skips DRIVER
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge);
  w(reg::kStatus, st::kAcknowledge | st::kDriver);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kDriver);  // clearing a bit without a reset
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kDeviceNeedsReset);  // device's bit
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | 0x10);  // undefined bit
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFailed);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFailed);
  // Nothing advances after FAILED, until a reset.
  write_features(virtio_feature::kVersion1);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFailed | st::kFeaturesOk);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFailed);
  w(reg::kStatus, 0);
  EXPECT_EQ(r(reg::kStatus), 0u);
  EXPECT_EQ(negotiate(virtio_feature::kVersion1),
            st::kAcknowledge | st::kDriver | st::kFeaturesOk);
}

TEST_F(MmioTransportTest, SeveralBitsInOneWriteAreAppliedInOrder) {
  w(reg::kStatus, st::kAcknowledge | st::kDriver);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
}

TEST_F(MmioTransportTest, ActivationHandsOverValidatedQueues) {
  bring_up();
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  EXPECT_TRUE(transport().activated());
  ASSERT_EQ(device_->activations, 1);
  ASSERT_TRUE(device_->activation);
  const VirtioActivation& a = *device_->activation;
  EXPECT_EQ(a.memory, &mem_);
  EXPECT_EQ(a.acked_features, virtio_feature::kVersion1 | kFeatureA);
  ASSERT_EQ(a.queues.size(), 2u);
  EXPECT_TRUE(a.queues[0].ready());
  EXPECT_EQ(a.queues[0].size(), 16);
  EXPECT_EQ(a.queues[0].desc_table(), rings_for(0).desc);
  EXPECT_EQ(a.queues[0].avail_ring(), rings_for(0).avail);
  EXPECT_EQ(a.queues[0].used_ring(), rings_for(0).used);
  EXPECT_TRUE(a.queues[1].ready());
  EXPECT_EQ(a.queues[1].size(), 8);
  ASSERT_EQ(a.queue_events.size(), 2u);
  EXPECT_EQ(a.queue_events[0], transport().queue_event(0));
  EXPECT_EQ(a.queue_events[1], transport().queue_event(1));
  EXPECT_EQ(a.interrupt, transport().interrupt());
  EXPECT_TRUE(a.needs_reset);
  EXPECT_EQ(trigger_->count.load(), 0);
}

TEST_F(MmioTransportTest, QueueNotEnabledIsPassedButNotReady) {
  ASSERT_EQ(negotiate(virtio_feature::kVersion1) & st::kFeaturesOk, st::kFeaturesOk);
  setup_queue(0, 16, rings_for(0));
  driver_ok();
  ASSERT_TRUE(device_->activation);
  ASSERT_EQ(device_->activation->queues.size(), 2u);
  EXPECT_TRUE(device_->activation->queues[0].ready());
  EXPECT_FALSE(device_->activation->queues[1].ready());
}

struct BadQueue {
  const char* name;
  uint32_t size;
  Rings rings;
};

class MmioTransportBadQueue : public MmioTransportTest,
                              public ::testing::WithParamInterface<BadQueue> {};

TEST_P(MmioTransportBadQueue, SetsNeedsResetAndRaisesConfigInterrupt) {
  ASSERT_EQ(negotiate(virtio_feature::kVersion1) & st::kFeaturesOk, st::kFeaturesOk);
  setup_queue(0, 16, rings_for(0));
  setup_queue(1, GetParam().size, GetParam().rings);
  driver_ok();
  EXPECT_EQ(device_->activations, 0);
  EXPECT_FALSE(transport().activated());
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, st::kDeviceNeedsReset);
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kConfigChange);
  EXPECT_EQ(trigger_->count.load(), 1);
  EXPECT_NE(transport().needs_reset_reason().find("queue 1"), std::string::npos)
      << transport().needs_reset_reason();
  // Only a reset clears it.
  w(reg::kStatus, 0);
  EXPECT_EQ(r(reg::kStatus), 0u);
  EXPECT_EQ(r(reg::kInterruptStatus), 0u);
  EXPECT_EQ(transport().needs_reset_reason(), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MmioTransportBadQueue,
    ::testing::Values(BadQueue{"size_zero", 0, rings_for(1)},
                      BadQueue{"size_not_power_of_two", 6, rings_for(1)},
                      BadQueue{"size_above_max", 16, rings_for(1)},
                      BadQueue{"size_past_16_bits", 0x10008, rings_for(1)},
                      BadQueue{"desc_misaligned", 8, {rings_for(1).desc + 8, rings_for(1).avail,
                                                      rings_for(1).used}},
                      BadQueue{"used_outside_ram", 8, {rings_for(1).desc, rings_for(1).avail,
                                                       (16ull << 20) - 8}},
                      BadQueue{"desc_above_4g", 8, {rings_for(1).desc | (1ull << 40),
                                                    rings_for(1).avail, rings_for(1).used}}),
    [](const auto& p) { return std::string(p.param.name); });

TEST_F(MmioTransportTest, ActivateThrowingSetsNeedsReset) {
  device_->throw_on_activate = true;
  bring_up();
  EXPECT_EQ(device_->activations, 1);
  EXPECT_EQ(device_->resets, 1);  // a half-done activation is undone
  EXPECT_FALSE(transport().activated());
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, st::kDeviceNeedsReset);
  EXPECT_NE(transport().needs_reset_reason().find("backend unavailable"), std::string::npos);
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kConfigChange);
}

TEST_F(MmioTransportTest, DeviceNeedsResetCallback) {
  bring_up();
  ASSERT_TRUE(device_->activation);
  auto needs_reset = device_->activation->needs_reset;
  needs_reset("backend closed");
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, st::kDeviceNeedsReset);
  EXPECT_EQ(r(reg::kInterruptStatus) & VirtioInterrupt::kConfigChange,
            VirtioInterrupt::kConfigChange);
  EXPECT_EQ(trigger_->count.load(), 1);
  EXPECT_EQ(transport().needs_reset_reason(), "backend closed");
  needs_reset("again");  // already set: no second interrupt
  EXPECT_EQ(trigger_->count.load(), 1);

  // A callback kept from before a reset does nothing to the next activation.
  w(reg::kStatus, 0);
  EXPECT_EQ(device_->resets, 1);
  bring_up();
  EXPECT_EQ(device_->activations, 2);
  needs_reset("stale");
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, 0u);
  EXPECT_EQ(trigger_->count.load(), 1);
}

// A device whose worker throws reports it through VirtioActivation::fail(): with a failure
// handler (a VM's transports have one, which stops the VM) the handler gets the reason; without
// one the device falls back to DEVICE_NEEDS_RESET. Either way the process lives on.
TEST_F(MmioTransportTest, DeviceFailureReachesTheFailureHandler) {
  std::string reported;
  int calls = 0;
  transport().set_failure_handler([&](const std::string& reason) {
    reported = reason;
    ++calls;
  });
  bring_up();
  ASSERT_TRUE(device_->activation);
  const VirtioActivation& a = *device_->activation;
  std::thread worker([&a] {
    try {
      throw std::runtime_error("backend exploded");
    } catch (const std::exception& e) {
      a.fail(std::string("test: worker stopped: ") + e.what());
    }
  });
  worker.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reported, "test: worker stopped: backend exploded");
  // The VM stops instead; the driver is not asked to reset the device.
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, 0u);
}

TEST_F(MmioTransportTest, DeviceFailureWithoutAHandlerSetsNeedsReset) {
  bring_up();
  ASSERT_TRUE(device_->activation);
  device_->activation->fail("test: worker stopped: out of memory");
  EXPECT_EQ(r(reg::kStatus) & st::kDeviceNeedsReset, st::kDeviceNeedsReset);
  EXPECT_EQ(transport().needs_reset_reason(), "test: worker stopped: out of memory");
}

TEST_F(MmioTransportTest, ResetForgetsEverything) {
  bring_up();
  device_->activation->interrupt->signal_used_buffer();
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kUsedBuffer);
  w(reg::kQueueNotify, 0);
  w(reg::kStatus, 0);
  EXPECT_EQ(device_->resets, 1);
  EXPECT_FALSE(device_->activation);
  EXPECT_FALSE(transport().activated());
  EXPECT_EQ(r(reg::kStatus), 0u);
  EXPECT_EQ(r(reg::kInterruptStatus), 0u);
  EXPECT_FALSE(readable(transport().queue_event(0)));  // stale notification dropped
  for (uint32_t i = 0; i < 2; ++i) {
    w(reg::kQueueSel, i);
    EXPECT_EQ(r(reg::kQueueReady), 0u);
    EXPECT_EQ(r(reg::kQueueNumMax), device_->sizes[i]);
  }
  // Acked features were dropped: a driver that acks nothing now cannot get FEATURES_OK.
  w(reg::kStatus, st::kAcknowledge);
  w(reg::kStatus, st::kAcknowledge | st::kDriver);
  w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver);
  // A second reset of an idle device does not call the device again.
  w(reg::kStatus, 0);
  transport().reset_device();
  EXPECT_EQ(device_->resets, 1);
}

TEST_F(MmioTransportTest, DestructionResetsAnActiveDevice) {
  bring_up();
  transport_.reset();
  EXPECT_EQ(device_->resets, 1);
  EXPECT_FALSE(device_->activation);
}

TEST_F(MmioTransportTest, QueueNotifySignalsThatQueuesEventfd) {
  const int e0 = transport().queue_event(0);
  const int e1 = transport().queue_event(1);
  ASSERT_GE(e0, 0);
  ASSERT_GE(e1, 0);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(transport().queue_event(2), -1);
  EXPECT_FALSE(readable(e0));
  w(reg::kQueueNotify, 1);
  EXPECT_FALSE(readable(e0));
  EXPECT_TRUE(readable(e1));
  uint64_t v = 0;
  ASSERT_EQ(::read(e1, &v, sizeof v), static_cast<ssize_t>(sizeof v));
  EXPECT_EQ(v, 1u);
  const uint64_t before = transport().ignored_accesses();
  w(reg::kQueueNotify, 2);  // no such queue
  w(reg::kQueueNotify, 0xffffffff);
  EXPECT_EQ(transport().ignored_accesses(), before + 2);
  EXPECT_FALSE(readable(e0));
  EXPECT_FALSE(readable(e1));
}

TEST_F(MmioTransportTest, InterruptStatusAndAck) {
  bring_up();
  auto irq = device_->activation->interrupt;
  irq->signal_used_buffer();
  EXPECT_EQ(trigger_->count.load(), 1);
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kUsedBuffer);
  irq->signal_config_change();
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kUsedBuffer | VirtioInterrupt::kConfigChange);
  w(reg::kInterruptAck, VirtioInterrupt::kUsedBuffer);
  EXPECT_EQ(r(reg::kInterruptStatus), VirtioInterrupt::kConfigChange);
  w(reg::kInterruptAck, 0xffffffff);
  EXPECT_EQ(r(reg::kInterruptStatus), 0u);
  // InterruptStatus is read-only.
  w(reg::kInterruptStatus, 3);
  EXPECT_EQ(r(reg::kInterruptStatus), 0u);
}

TEST_F(MmioTransportTest, OutOfRangeQueueSel) {
  ASSERT_EQ(negotiate(virtio_feature::kVersion1) & st::kFeaturesOk, st::kFeaturesOk);
  w(reg::kQueueSel, 0);
  EXPECT_EQ(r(reg::kQueueNumMax), 16u);
  w(reg::kQueueSel, 1);
  EXPECT_EQ(r(reg::kQueueNumMax), 8u);
  for (uint32_t sel : {2u, 0xffffu, 0xffffffffu}) {
    w(reg::kQueueSel, sel);
    EXPECT_EQ(r(reg::kQueueNumMax), 0u);
    const uint64_t before = transport().ignored_accesses();
    w(reg::kQueueNum, 4);
    w(reg::kQueueReady, 1);
    w(reg::kQueueDescLow, 0x1000);
    EXPECT_EQ(transport().ignored_accesses(), before + 3);
    EXPECT_EQ(r(reg::kQueueReady), 0u);
  }
  setup_queue(0, 16, rings_for(0));
  driver_ok();
  ASSERT_TRUE(device_->activation);
  EXPECT_FALSE(device_->activation->queues[1].ready());
}

TEST_F(MmioTransportTest, QueueConfigFrozenAfterDriverOk) {
  bring_up();
  w(reg::kQueueSel, 0);
  const uint64_t before = transport().ignored_accesses();
  w(reg::kQueueReady, 0);
  w(reg::kQueueNum, 2);
  w(reg::kQueueDescLow, 0x3);
  EXPECT_EQ(transport().ignored_accesses(), before + 3);
  EXPECT_EQ(r(reg::kQueueReady), 1u);
  EXPECT_EQ(device_->activation->queues[0].size(), 16);
}

TEST_F(MmioTransportTest, WrongWidthsAreIgnored) {
  ASSERT_EQ(negotiate(virtio_feature::kVersion1) & st::kFeaturesOk, st::kFeaturesOk);
  const uint64_t before = transport().ignored_accesses();
  for (size_t size : {1u, 2u, 8u}) {
    std::vector<uint8_t> buf(size, 0xAA);
    transport().read(reg::kMagicValue, buf);
    EXPECT_EQ(buf, std::vector<uint8_t>(size, 0)) << size;
    std::vector<uint8_t> zero(size, 0);
    transport().write(reg::kStatus, zero);  // would reset if taken
  }
  std::array<uint8_t, 4> b{0xAA, 0xAA, 0xAA, 0xAA};
  transport().read(reg::kMagicValue + 2, b);  // misaligned
  EXPECT_EQ(b, (std::array<uint8_t, 4>{}));
  transport().write(reg::kStatus + 1, std::array<uint8_t, 4>{});
  EXPECT_EQ(transport().ignored_accesses(), before + 8);
  EXPECT_EQ(r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFeaturesOk);
}

TEST_F(MmioTransportTest, ConfigSpaceAnyWidthGoesToTheDevice) {
  std::array<uint8_t, 1> b1{};
  transport().read(reg::kConfig + 3, b1);
  EXPECT_EQ(b1[0], 4);
  std::array<uint8_t, 2> b2{};
  transport().read(reg::kConfig + 1, b2);
  EXPECT_EQ(b2, (std::array<uint8_t, 2>{2, 3}));
  std::array<uint8_t, 8> b8{};
  transport().read(reg::kConfig, b8);
  EXPECT_EQ(b8, device_->config);
  std::array<uint8_t, 4> past{};
  transport().read(reg::kConfig + 6, past);  // half of it past the config
  EXPECT_EQ(past, (std::array<uint8_t, 4>{7, 8, 0, 0}));
  transport().write(reg::kConfig + 2, std::array<uint8_t, 2>{0xee, 0xff});
  EXPECT_EQ(device_->config[2], 0xee);
  EXPECT_EQ(device_->config[3], 0xff);
}

TEST(MmioTransportConstruction, RejectsUnusableDevices) {
  GuestMemory mem = GuestMemory::create_anonymous(16ull << 20);
  auto trigger = std::make_shared<CountingTrigger>();
  EXPECT_THROW(VirtioMmioTransport(nullptr, mem, trigger), VirtioTransportError);
  auto legacy = std::make_shared<TestDevice>();
  legacy->features = kFeatureA;
  EXPECT_THROW(VirtioMmioTransport(legacy, mem, trigger), VirtioTransportError);
  auto no_queues = std::make_shared<TestDevice>();
  no_queues->sizes.clear();
  EXPECT_THROW(VirtioMmioTransport(no_queues, mem, trigger), VirtioTransportError);
  auto zero_queue = std::make_shared<TestDevice>();
  zero_queue->sizes = {16, 0};
  EXPECT_THROW(VirtioMmioTransport(zero_queue, mem, trigger), VirtioTransportError);
}

TEST_F(MmioTransportTest, RandomRegisterAccessesNeverBreakTheInvariants) {
  std::mt19937_64 rng(0x5eed);
  constexpr std::array<uint64_t, 22> kRegs{
      reg::kMagicValue, reg::kDeviceFeatures, reg::kDeviceFeaturesSel, reg::kDriverFeatures,
      reg::kDriverFeaturesSel, reg::kQueueSel, reg::kQueueNumMax, reg::kQueueNum,
      reg::kQueueReady, reg::kQueueNotify, reg::kInterruptStatus, reg::kInterruptAck,
      reg::kStatus, reg::kQueueDescLow, reg::kQueueDescHigh, reg::kQueueDriverLow,
      reg::kQueueDriverHigh, reg::kQueueDeviceLow, reg::kQueueDeviceHigh, reg::kShmSel,
      reg::kConfigGeneration, reg::kConfig};
  constexpr std::array<size_t, 4> kSizes{1, 2, 4, 8};
  constexpr uint32_t kKnownStatus = st::kAcknowledge | st::kDriver | st::kFeaturesOk |
                                    st::kDriverOk | st::kDeviceNeedsReset | st::kFailed;
  int activations_seen = 0;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t pick = rng();
    if ((pick & 0xf00) == 0) {
      // Now and then a well-formed driver step, so the random accesses also hit a device
      // that is negotiating, configured or running.
      switch (rng() % 4) {
        case 0: w(reg::kStatus, r(reg::kStatus) << 1 | 1); break;  // next status bit, roughly
        case 1: write_features(virtio_feature::kVersion1 | rng()); break;
        case 2: setup_queue(static_cast<uint32_t>(rng() % 2), 8, rings_for(rng() % 2)); break;
        default: negotiate(virtio_feature::kVersion1); driver_ok(); break;
      }
      continue;
    }
    uint64_t offset = (pick & 3) == 0 ? (rng() % 0x1000) : kRegs[rng() % kRegs.size()];
    size_t size = (pick & 0x30) == 0 ? kSizes[rng() % kSizes.size()] : 4;
    if (offset + size > 0x1000) offset = 0x1000 - size;  // the bus keeps accesses in the slot
    uint64_t value = rng();
    // Bias towards values a driver would write, so activation really happens now and then.
    switch (rng() % 6) {
      case 0: value &= 0xff; break;
      case 1: value = st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk; break;
      case 2: value = rings_for(static_cast<uint32_t>(rng() % 2)).desc; break;
      case 3: value = 0; break;
      default: break;
    }
    std::array<uint8_t, 8> buf{};
    std::memcpy(buf.data(), &value, 8);
    if (rng() & 1) {
      transport().write(offset, std::span<const uint8_t>(buf.data(), size));
    } else {
      transport().read(offset, std::span<uint8_t>(buf.data(), size));
    }
    if (device_->activation) {
      ++activations_seen;
      for (const Queue& q : device_->activation->queues) {
        if (q.ready()) {
          EXPECT_GT(q.size(), 0);
          EXPECT_LE(q.size(), q.max_size());
        }
      }
    }
    if (i % 1000 == 0) {
      const uint32_t s = r(reg::kStatus);
      ASSERT_EQ(s & ~kKnownStatus, 0u) << std::hex << s;
      ASSERT_EQ(transport().activated(), (s & st::kDriverOk) != 0 &&
                                             (s & st::kDeviceNeedsReset) == 0 &&
                                             device_->activation.has_value());
    }
  }
  // The loop must have driven the device through activation at least once; otherwise it
  // only exercised the early states.
  EXPECT_GT(device_->activations, 0);
  EXPECT_GT(activations_seen, 0);
}

}  // namespace
}  // namespace forkvm
