// The boot-signal port: decoding, timestamps, malformed writes.
#include "devices/legacy/boot_signal.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <stdexcept>
#include <vector>

namespace forkvm {
namespace {

using Clock = BootSignalDevice::Clock;

struct Seen {
  BootSignal code;
  uint32_t arg;
  Clock::time_point at;
};

std::array<uint8_t, 4> le(uint32_t v) {
  return {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 24)};
}

class BootSignalTest : public ::testing::Test {
 protected:
  BootSignalTest()
      : dev_([this](BootSignal code, uint32_t arg, Clock::time_point at) {
          seen_.push_back({code, arg, at});
        }) {}

  void signal(BootSignal code, uint32_t arg) { dev_.write(0, le(encode_boot_signal(code, arg))); }

  std::vector<Seen> seen_;
  BootSignalDevice dev_;
};

TEST_F(BootSignalTest, DecodesCodeAndArgumentAndStampsArrival) {
  const Clock::time_point before = Clock::now();
  signal(BootSignal::kPowerOff, 0x123456);
  const Clock::time_point after = Clock::now();
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].code, BootSignal::kPowerOff);
  EXPECT_EQ(seen_[0].arg, 0x123456u);
  EXPECT_GE(seen_[0].at, before);
  EXPECT_LE(seen_[0].at, after);
  const auto first = dev_.first(BootSignal::kPowerOff);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->arg, 0x123456u);
  EXPECT_EQ(first->at, seen_[0].at);
  EXPECT_EQ(dev_.count(BootSignal::kPowerOff), 1u);
  EXPECT_FALSE(dev_.first(BootSignal::kAgentReady).has_value());
  EXPECT_EQ(dev_.malformed_writes(), 0u);
}

TEST_F(BootSignalTest, KeepsFirstAndLastArrivalInOrder) {
  signal(BootSignal::kAgentReady, 1);
  signal(BootSignal::kAgentReady, 2);
  signal(BootSignal::kFatal, 0xffffff);  // the largest argument
  const auto first = dev_.first(BootSignal::kAgentReady);
  const auto last = dev_.last(BootSignal::kAgentReady);
  ASSERT_TRUE(first && last);
  EXPECT_EQ(first->arg, 1u);
  EXPECT_EQ(last->arg, 2u);
  EXPECT_LE(first->at, last->at);
  EXPECT_EQ(dev_.count(BootSignal::kAgentReady), 2u);
  EXPECT_EQ(dev_.last(BootSignal::kFatal)->arg, 0xffffffu);
  ASSERT_EQ(seen_.size(), 3u);
  EXPECT_LE(seen_[1].at, seen_[2].at);
  dev_.reset();
  EXPECT_FALSE(dev_.first(BootSignal::kAgentReady).has_value());
  EXPECT_EQ(dev_.count(BootSignal::kFatal), 0u);
}

TEST_F(BootSignalTest, MalformedWritesAreCountedAndIgnored) {
  const auto ready = le(encode_boot_signal(BootSignal::kAgentReady, 0));
  dev_.write(0, std::span(ready).first(1));  // outb
  dev_.write(0, std::span(ready).first(2));  // outw
  dev_.write(0, std::span<const uint8_t>());
  const std::array<uint8_t, 8> wide{1, 0, 0, 0, 0, 0, 0, 0};
  dev_.write(0, wide);
  for (uint64_t offset = 1; offset < 4; ++offset) dev_.write(offset, ready);
  dev_.write(UINT64_MAX, ready);
  for (uint32_t code : {0u, 4u, 0x80u, 0xffu}) dev_.write(0, le(code | 0x100u));
  EXPECT_EQ(dev_.malformed_writes(), 4u + 3u + 1u + 4u);
  EXPECT_TRUE(seen_.empty());
  EXPECT_FALSE(dev_.first(BootSignal::kAgentReady).has_value());
}

TEST_F(BootSignalTest, ReadsLeaveTheFill) {
  std::array<uint8_t, 4> b{0xff, 0xff, 0xff, 0xff};
  signal(BootSignal::kAgentReady, 7);
  dev_.read(0, b);
  EXPECT_EQ(b, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
}

TEST(BootSignal, ObserverMayQueryTheDeviceAndMayThrow) {
  std::shared_ptr<BootSignalDevice> dev;
  uint64_t count_seen = 0;
  dev = std::make_shared<BootSignalDevice>([&](BootSignal code, uint32_t, Clock::time_point) {
    count_seen = dev->count(code);  // would deadlock if called under the record lock
    throw std::runtime_error("observer failed");
  });
  const auto v = le(encode_boot_signal(BootSignal::kAgentReady, 0));
  EXPECT_NO_THROW(dev->write(0, v));
  EXPECT_EQ(count_seen, 1u);
}

TEST(BootSignal, WorksThroughThePortBus) {
  Bus bus("pio", 0xff);
  auto dev = std::make_shared<BootSignalDevice>();
  bus.insert(dev, kBootSignalPort, BootSignalDevice::kPortCount);
  EXPECT_TRUE(bus.write(kBootSignalPort, le(encode_boot_signal(BootSignal::kPowerOff, 3))));
  EXPECT_EQ(dev->last(BootSignal::kPowerOff)->arg, 3u);
  const auto zero = le(0);
  EXPECT_TRUE(bus.write(kBootSignalPort + 2, std::span(zero).first(2)));
  EXPECT_EQ(dev->malformed_writes(), 1u);
}

}  // namespace
}  // namespace forkvm
