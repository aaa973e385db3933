// VirtioMmioTransport snapshots: quiesce -> save -> resume on the running VM, restore into a
// fresh transport that re-activates its device in DRIVER_OK without a handshake, re-kicks every
// queue and re-raises a pending interrupt; every malformed or inconsistent state refused.
#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <atomic>
#include <cstring>
#include <optional>

#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/mmio_transport_state.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "tests/unit/virtio/counting_trigger.hpp"
#include "tests/support/state_codec_checks.hpp"

namespace forkvm {
namespace {

namespace reg = virtio_mmio;
namespace st = virtio_status;

constexpr uint64_t kOfferedFeature = 1ull << 0;
constexpr uint32_t kDeviceId = 42;
constexpr uint64_t kMem = 16ull << 20;

/// A two-queue device that pops one chain from queue 0 at activation (progress to save) and
/// hands its queues back on quiesce().
class SnapDevice : public VirtioDevice {
 public:
  std::string name() const override { return "snap"; }
  uint32_t device_id() const noexcept override { return kDeviceId; }
  uint64_t device_features() const noexcept override {
    return virtio_feature::kVersion1 | kOfferedFeature;
  }
  std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
  void read_config(uint64_t, std::span<uint8_t>) const noexcept override {}
  void write_config(uint64_t, std::span<const uint8_t>) noexcept override {}
  void activate(VirtioActivation a) override {
    ++activations;
    if (pop_on_activate && a.queues[0].ready()) a.queues[0].pop(*a.memory);
    activation = std::move(a);
  }
  void reset() noexcept override {
    ++resets;
    activation.reset();
  }
  std::vector<Queue> quiesce() override {
    ++quiesces;
    std::vector<Queue> q = std::move(activation->queues);
    activation.reset();
    return q;
  }

  bool pop_on_activate = true;
  int activations = 0;
  int resets = 0;
  int quiesces = 0;
  std::optional<VirtioActivation> activation;
};

/// A device with no snapshot support (the VirtioDevice default quiesce()).
class PlainDevice : public SnapDevice {
 public:
  std::vector<Queue> quiesce() override { return VirtioDevice::quiesce(); }
};

using testing::CountingTrigger;

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/// One guest memory and a transport with its device, driven like a Linux driver.
struct Machine {
  explicit Machine(std::shared_ptr<SnapDevice> dev = std::make_shared<SnapDevice>())
      : mem(GuestMemory::create_anonymous(kMem)),
        device(std::move(dev)),
        trigger(std::make_shared<CountingTrigger>()),
        transport(device, mem, trigger) {}

  void w(uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> b;
    std::memcpy(b.data(), &value, 4);
    transport.write(offset, b);
  }
  uint32_t r(uint64_t offset) {
    std::array<uint8_t, 4> b{};
    transport.read(offset, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  static uint64_t desc(uint32_t q) { return 0x10000 + 0x10000ull * q; }
  void setup_queue(uint32_t i, uint32_t size) {
    w(reg::kQueueSel, i);
    w(reg::kQueueNum, size);
    w(reg::kQueueDescLow, static_cast<uint32_t>(desc(i)));
    w(reg::kQueueDriverLow, static_cast<uint32_t>(desc(i) + 0x4000));
    w(reg::kQueueDeviceLow, static_cast<uint32_t>(desc(i) + 0x8000));
    w(reg::kQueueReady, 1);
  }
  /// Handshake up to FEATURES_OK.
  void negotiate() {
    w(reg::kStatus, st::kAcknowledge);
    w(reg::kStatus, st::kAcknowledge | st::kDriver);
    w(reg::kDriverFeaturesSel, 0);
    w(reg::kDriverFeatures, static_cast<uint32_t>(kOfferedFeature));
    w(reg::kDriverFeaturesSel, 1);
    w(reg::kDriverFeatures, static_cast<uint32_t>(virtio_feature::kVersion1 >> 32));
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  }
  /// Full bring-up with one chain published on queue 0 (the device pops it at activation).
  void bring_up() {
    negotiate();
    setup_queue(0, 16);
    setup_queue(1, 8);
    mem.write_obj(desc(0), VirtqDesc{0x100000, 64, kVirtqDescFWrite, 0});
    mem.write_obj<uint16_t>(desc(0) + 0x4000 + 4, 0);  // avail ring[0] = head 0
    mem.write_obj<uint16_t>(desc(0) + 0x4000 + 2, 1);  // avail idx = 1
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  }
  void drain_queue_events() {
    for (size_t q = 0; q < transport.queue_count(); ++q) {
      uint64_t v;
      while (::read(transport.queue_event(q), &v, sizeof v) > 0) {
      }
    }
  }

  GuestMemory mem;
  std::shared_ptr<SnapDevice> device;
  std::shared_ptr<CountingTrigger> trigger;
  VirtioMmioTransport transport;
};

TEST(MmioTransportSnapshot, QuiesceSaveResumeOnTheRunningVm) {
  Machine m;
  m.bring_up();
  ASSERT_TRUE(m.transport.activated());
  EXPECT_THROW(m.transport.save_state(), SnapshotError) << "saved under a running device";
  m.drain_queue_events();
  m.transport.quiesce();
  EXPECT_TRUE(m.transport.quiesced());
  EXPECT_EQ(m.device->quiesces, 1);
  m.transport.quiesce();  // idempotent
  EXPECT_EQ(m.device->quiesces, 1);
  const VirtioMmioTransport::State s = m.transport.save_state();
  EXPECT_EQ(s.device_id, kDeviceId);
  EXPECT_TRUE(s.activated);
  EXPECT_EQ(s.status, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  EXPECT_EQ(s.driver_features, virtio_feature::kVersion1 | kOfferedFeature);
  ASSERT_EQ(s.queues.size(), 2u);
  EXPECT_TRUE(s.queues[0].enabled);
  EXPECT_TRUE(s.queues[0].queue.ready);
  EXPECT_EQ(s.queues[0].queue.next_avail, 1);  // the device's progress, not the config copy
  EXPECT_EQ(s.queues[0].queue.in_flight, 1);
  EXPECT_EQ(s.queues[1].queue.size, 8);

  m.transport.resume();
  EXPECT_FALSE(m.transport.quiesced());
  EXPECT_EQ(m.device->activations, 2);
  ASSERT_TRUE(m.device->activation);
  EXPECT_EQ(m.device->activation->queues[0].next_avail(), 1) << "resumed with the same queues";
  EXPECT_TRUE(readable(m.transport.queue_event(0)));  // re-kicked
  EXPECT_TRUE(readable(m.transport.queue_event(1)));
}

TEST(MmioTransportSnapshot, RestoredDriverOkTransportReactivatesWithoutHandshake) {
  Machine a;
  a.bring_up();
  a.transport.quiesce();
  VirtioMmioTransport::State saved = a.transport.save_state();
  saved.interrupt_status = VirtioInterrupt::kUsedBuffer;  // an interrupt the guest had not taken
  const nlohmann::json j = nlohmann::json::parse(to_json(saved).dump());

  Machine b;
  b.device->pop_on_activate = false;
  b.mem.write(0, std::span<const uint8_t>(a.mem.slice(0, kMem).data(), kMem));  // "memory file"
  b.transport.restore_state(mmio_transport_state_from_json(j, "virtio-mmio[snap]"));
  EXPECT_TRUE(b.transport.activated());
  EXPECT_EQ(b.device->activations, 1);
  ASSERT_TRUE(b.device->activation);
  const VirtioActivation& act = *b.device->activation;
  EXPECT_EQ(act.acked_features, virtio_feature::kVersion1 | kOfferedFeature);
  ASSERT_EQ(act.queues.size(), 2u);
  EXPECT_TRUE(act.queues[0].ready());
  EXPECT_EQ(act.queues[0].next_avail(), 1);
  EXPECT_EQ(act.queues[0].in_flight(), 1);
  EXPECT_EQ(act.queues[1].size(), 8);
  EXPECT_EQ(act.queue_events.size(), 2u);
  EXPECT_EQ(b.r(reg::kStatus), st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  EXPECT_EQ(b.r(reg::kInterruptStatus), VirtioInterrupt::kUsedBuffer);
  EXPECT_GE(b.trigger->count.load(), 1) << "pending interrupt not raised again";
  EXPECT_TRUE(readable(b.transport.queue_event(0)));  // every queue re-kicked
  EXPECT_TRUE(readable(b.transport.queue_event(1)));
  // Queue registers stay frozen after DRIVER_OK, as on the original.
  b.w(reg::kQueueSel, 0);
  b.w(reg::kQueueNum, 4);
  b.w(reg::kQueueSel, 1);  // QueueSel itself is writable: put back what was saved
  // Save again: identical.
  b.transport.quiesce();
  EXPECT_EQ(b.transport.save_state(), saved);
  EXPECT_EQ(to_json(b.transport.save_state()), j);
  // A driver reset still reaches the device.
  b.w(reg::kStatus, 0);
  EXPECT_FALSE(b.transport.activated());
}

TEST(MmioTransportSnapshot, MidHandshakeStateRestoresAndTheDriverFinishes) {
  Machine a;
  a.negotiate();
  a.setup_queue(0, 16);
  const VirtioMmioTransport::State saved = a.transport.save_state();
  EXPECT_FALSE(saved.activated);
  Machine b;
  b.transport.restore_state(saved);
  EXPECT_EQ(b.device->activations, 0);
  EXPECT_EQ(b.transport.save_state(), saved);
  b.setup_queue(1, 8);
  b.w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  EXPECT_TRUE(b.transport.activated());
  EXPECT_EQ(b.device->activations, 1);
}

TEST(MmioTransportSnapshot, DeviceWithoutSnapshotSupportKeepsRunning) {
  Machine m(std::make_shared<PlainDevice>());
  m.bring_up();
  EXPECT_THROW(m.transport.quiesce(), SnapshotError);
  EXPECT_FALSE(m.transport.quiesced());
  EXPECT_TRUE(m.device->activation) << "the device was stopped";
}

TEST(MmioTransportSnapshot, InconsistentStatesAreRefusedBeforeAnythingChanges) {
  Machine a;
  a.bring_up();
  a.transport.quiesce();
  const VirtioMmioTransport::State good = a.transport.save_state();
  auto refused = [&](const char* what, auto mutate) {
    VirtioMmioTransport::State s = good;
    mutate(s);
    Machine b;
    EXPECT_THROW(b.transport.restore_state(s), SnapshotError) << what;
    EXPECT_EQ(b.device->activations, 0) << what;
    EXPECT_EQ(b.r(reg::kStatus), 0u) << what;
  };
  using S = VirtioMmioTransport::State;
  refused("device id", [](S& s) { s.device_id = 19; });
  refused("queue count", [](S& s) { s.queues.pop_back(); });
  refused("skipped step", [](S& s) { s.status = st::kAcknowledge | st::kFeaturesOk; });
  refused("needs-reset bit", [](S& s) { s.status |= st::kDeviceNeedsReset; });
  refused("unoffered feature", [](S& s) { s.driver_features |= 1ull << 7; });
  refused("no VERSION_1", [](S& s) { s.driver_features = kOfferedFeature; });
  refused("activated w/o DRIVER_OK", [](S& s) {
    s.status = st::kAcknowledge | st::kDriver | st::kFeaturesOk;
  });
  refused("reason without flag", [](S& s) { s.needs_reset_reason = "x"; });
  refused("interrupt bits", [](S& s) { s.interrupt_status = 4; });
  refused("ring outside RAM", [](S& s) { s.queues[0].queue.used_ring = kMem - 4; });
  refused("size above max", [](S& s) { s.queues[1].queue.size = 16; });
  refused("enabled queue not ready", [](S& s) {
    s.queues[1].queue.ready = false;
  });
  refused("ready queue never activated", [](S& s) {
    s.activated = false;
    s.status &= ~st::kDriverOk;
  });
  // And restoring into a transport a driver already touched.
  Machine used;
  used.negotiate();
  EXPECT_THROW(used.transport.restore_state(good), SnapshotError);
}

TEST(MmioTransportSnapshot, EveryMalformedJsonFieldIsRefused) {
  Machine a;
  a.bring_up();
  a.transport.quiesce();
  const nlohmann::json good = to_json(a.transport.save_state());
  auto decode = [](const nlohmann::json& j) {
    return mmio_transport_state_from_json(j, "virtio-mmio[snap]");
  };
  test::expect_every_field_checked(good, decode, "virtio-mmio[snap]");
  test::expect_rejected(good, decode, "status", 256);
  test::expect_rejected(good, decode, "interrupt_status", 4);
  test::expect_rejected(good, decode, "device_id", 1ull << 32);
  test::expect_rejected(good, decode, "queue_sel", 1ull << 32);
  test::expect_rejected(good, decode, "needs_reset_reason", "set without the flag");
  test::expect_rejected(good, decode, "needs_reset_reason",
                        std::string(VirtioMmioTransport::kMaxReasonBytes + 1, 'x'));
  test::expect_rejected(good, decode, "queues", nlohmann::json::array());
  nlohmann::json bad = good;
  bad["queues"][1] = {{"enabled", true}};
  EXPECT_NE(test::snapshot_error_of(decode, bad).find("queues[1]"), std::string::npos);
  bad = good;
  bad["queues"][0]["queue"]["size"] = 3;
  EXPECT_NE(test::snapshot_error_of(decode, bad).find("queues[0]"), std::string::npos);
  bad = good;
  bad["queues"][0]["enabled"] = "yes";
  EXPECT_NE(test::snapshot_error_of(decode, bad).find("enabled"), std::string::npos);
}

}  // namespace
}  // namespace forkvm
