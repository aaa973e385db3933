// Random offsets, sizes and values into every legacy device: nothing may crash or throw, the
// invariants the guest relies on hold throughout, and save → restore → save is stable after.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "devices/legacy/boot_signal.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/legacy/stub_ports.hpp"
#include "tests/unit/devices/recording_irq_line.hpp"

namespace forkvm {
namespace {

constexpr int kIterations = 5000;

/// A random access: mostly in range and one byte wide (what guests do), sometimes not.
struct Access {
  uint64_t offset;
  std::vector<uint8_t> data;
  bool write;
};

Access random_access(std::mt19937_64& rng, uint64_t range) {
  std::uniform_int_distribution<int> pick(0, 99);
  Access a;
  const int kind = pick(rng);
  a.offset = kind < 90 ? rng() % range : (kind < 95 ? rng() % (range + 8) : rng());
  static constexpr size_t kSizes[] = {1, 1, 1, 1, 2, 4, 8, 0, 3};
  const size_t size = kSizes[rng() % std::size(kSizes)];
  a.data.resize(size);
  for (auto& b : a.data) b = static_cast<uint8_t>(rng());
  a.write = pick(rng) < 50;
  return a;
}

void apply(BusDevice& dev, Access& a) {
  if (a.write) {
    dev.write(a.offset, a.data);
  } else {
    dev.read(a.offset, a.data);
  }
}

TEST(LegacyFuzz, Serial) {
  std::mt19937_64 rng(0x16550a);
  auto irq = std::make_shared<test::RecordingIrqLine>();
  uint64_t sunk = 0;
  Serial serial(irq, [&](std::span<const uint8_t> bytes) { sunk += bytes.size(); });
  for (int i = 0; i < kIterations; ++i) {
    Access a = random_access(rng, Serial::kRegisterCount);
    ASSERT_NO_THROW(apply(serial, a));
    if (rng() % 8 == 0) {
      std::vector<uint8_t> in(rng() % 80, 'k');
      ASSERT_LE(serial.enqueue_input(in), in.size());
    }
    std::array<uint8_t, 1> lsr{};
    serial.read(5, lsr);
    ASSERT_EQ(lsr[0] & 0x60, 0x60) << "THRE and TEMT are always set";
    ASSERT_LE(serial.rx_space(), Serial::kFifoSize);
  }
  EXPECT_EQ(sunk, serial.counters().tx_bytes);
  const Serial::State state = serial.save_state();
  Serial copy(nullptr, {});
  ASSERT_NO_THROW(copy.restore_state(state));
  EXPECT_EQ(copy.save_state(), state);
}

TEST(LegacyFuzz, I8042) {
  std::mt19937_64 rng(0x8042);
  auto irq = std::make_shared<test::RecordingIrqLine>();
  uint64_t resets = 0;
  I8042 dev(irq, [&] { ++resets; });
  for (int i = 0; i < kIterations; ++i) {
    Access a = random_access(rng, I8042::kPortCount);
    ASSERT_NO_THROW(apply(dev, a));
    if (rng() % 16 == 0) {
      std::vector<uint8_t> keys(rng() % 20, 0x1c);
      ASSERT_LE(dev.enqueue_keyboard(keys), keys.size());
    }
    std::array<uint8_t, 1> status{};
    dev.read(I8042::kCommandOffset, status);
    ASSERT_EQ(status[0] & 0x02, 0) << "the input buffer is never busy";
    ASSERT_NE(status[0], 0xff);
  }
  EXPECT_EQ(resets, dev.counters().resets);
  const I8042::State state = dev.save_state();
  I8042 copy(nullptr, {});
  ASSERT_NO_THROW(copy.restore_state(state));
  EXPECT_EQ(copy.save_state(), state);
}

TEST(LegacyFuzz, BootSignal) {
  std::mt19937_64 rng(0x440);
  uint64_t observed = 0;
  BootSignalDevice dev([&](BootSignal, uint32_t, BootSignalDevice::Clock::time_point) {
    ++observed;
  });
  for (int i = 0; i < kIterations; ++i) {
    Access a = random_access(rng, BootSignalDevice::kPortCount);
    ASSERT_NO_THROW(apply(dev, a));
  }
  const uint64_t recorded = dev.count(BootSignal::kAgentReady) +
                            dev.count(BootSignal::kPowerOff) + dev.count(BootSignal::kFatal);
  EXPECT_EQ(observed, recorded);
}

TEST(LegacyFuzz, StubPorts) {
  std::mt19937_64 rng(0x80);
  for (const StubPortRange& range : legacy_stub_port_ranges()) {
    StubPorts dev(range.read_value);
    for (int i = 0; i < kIterations / 10; ++i) {
      Access a = random_access(rng, range.length);
      ASSERT_NO_THROW(apply(dev, a));
      if (!a.write && range.read_value) {
        for (uint8_t b : a.data) ASSERT_EQ(b, *range.read_value);
      }
    }
  }
}

}  // namespace
}  // namespace forkvm
