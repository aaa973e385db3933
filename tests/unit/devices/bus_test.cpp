#include "devices/bus.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace forkvm {
namespace {

/// Records accesses; reads return the low byte of the offset in every byte.
class Recorder : public BusDevice {
 public:
  struct Access {
    bool write;
    uint64_t offset;
    size_t size;
  };
  void read(uint64_t offset, std::span<uint8_t> data) override {
    log.push_back({false, offset, data.size()});
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    log.push_back({true, offset, data.size()});
  }
  std::vector<Access> log;
};

TEST(Bus, DevicesSeeOffsets) {
  Bus bus("pio", 0xff);
  auto dev = std::make_shared<Recorder>();
  bus.insert(dev, 0x3f8, 8);
  std::array<uint8_t, 1> b{};
  EXPECT_TRUE(bus.read(0x3fd, b));
  EXPECT_EQ(b[0], 5);
  ASSERT_EQ(dev->log.size(), 1u);
  EXPECT_EQ(dev->log[0].offset, 5u);
}

TEST(Bus, RejectsEmptyOverflowingAndOverlappingRanges) {
  Bus bus("mmio", 0);
  auto dev = std::make_shared<Recorder>();
  EXPECT_THROW(bus.insert(dev, 0x1000, 0), BusError);
  EXPECT_THROW(bus.insert(dev, UINT64_MAX - 1, 3), BusError);
  EXPECT_NO_THROW(bus.insert(dev, UINT64_MAX - 1, 2));  // ends exactly at 2^64 - 1
  bus.insert(dev, 0x1000, 0x100);
  EXPECT_THROW(bus.insert(dev, 0x10ff, 1), BusError);   // last byte of the existing range
  EXPECT_THROW(bus.insert(dev, 0xf00, 0x101), BusError);  // first byte
  EXPECT_THROW(bus.insert(dev, 0x800, 0x1000), BusError); // covers it
  EXPECT_NO_THROW(bus.insert(dev, 0x1100, 1));            // adjacent is fine
  EXPECT_NO_THROW(bus.insert(dev, 0xfff, 1));
  EXPECT_THROW(bus.insert(nullptr, 0x5000, 1), BusError);
}

TEST(Bus, UnmappedAccessIsCountedAndFilled) {
  Bus pio("pio", 0xff);
  std::array<uint8_t, 4> b{};
  EXPECT_FALSE(pio.read(0x80, b));
  EXPECT_EQ(b[0], 0xff);
  EXPECT_EQ(b[3], 0xff);
  EXPECT_FALSE(pio.write(0x80, b));
  EXPECT_EQ(pio.unmapped_accesses(), 2u);

  Bus mmio("mmio", 0);
  b.fill(0x55);
  EXPECT_FALSE(mmio.read(0xd0000000, b));
  EXPECT_EQ(b[2], 0);
}

TEST(Bus, AccessStraddlingTheEndIsUnmapped) {
  Bus bus("pio", 0xff);
  auto dev = std::make_shared<Recorder>();
  bus.insert(dev, 0x60, 5);
  std::array<uint8_t, 4> b{};
  EXPECT_FALSE(bus.read(0x63, b));  // 0x63..0x66 leaves the range
  EXPECT_TRUE(bus.read(0x61, b));   // 0x61..0x64 fits
  EXPECT_TRUE(dev->log.size() == 1 && dev->log[0].offset == 1 && dev->log[0].size == 4);
}

}  // namespace
}  // namespace forkvm
