// The no-op legacy port claims: values, and that the list stays clear of real devices.
#include "devices/legacy/stub_ports.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>

#include "devices/legacy/boot_signal.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

bool overlaps(uint32_t a, uint32_t a_len, uint32_t b, uint32_t b_len) {
  return a < b + b_len && b < a + a_len;
}

TEST(StubPorts, FixedValueFillsEveryByteAndWritesAreIgnored) {
  StubPorts zero(uint8_t{0});
  std::array<uint8_t, 4> b{0xff, 0xff, 0xff, 0xff};
  zero.read(1, b);
  EXPECT_EQ(b, (std::array<uint8_t, 4>{0, 0, 0, 0}));
  zero.write(0, b);
  zero.write(UINT64_MAX, std::span<const uint8_t>());
  EXPECT_EQ(zero.reads(), 1u);
  EXPECT_EQ(zero.writes(), 2u);

  StubPorts absent(std::nullopt);
  b.fill(0xff);
  absent.read(0, b);
  EXPECT_EQ(b, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
}

TEST(StubPorts, RangesAreSortedDisjointAndDocumented) {
  const auto ranges = legacy_stub_port_ranges();
  ASSERT_FALSE(ranges.empty());
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_GT(ranges[i].length, 0);
    EXPECT_FALSE(ranges[i].name.empty());
    EXPECT_FALSE(ranges[i].reason.empty());
    if (i > 0) {
      EXPECT_GE(ranges[i].base, ranges[i - 1].base + ranges[i - 1].length) << ranges[i].name;
    }
  }
}

TEST(StubPorts, NoRangeShadowsAnInKernelOrEmulatedDevice) {
  for (const StubPortRange& stub : legacy_stub_port_ranges()) {
    for (const StubPortRange& kernel : in_kernel_port_ranges()) {
      EXPECT_FALSE(overlaps(stub.base, stub.length, kernel.base, kernel.length))
          << stub.name << " overlaps in-kernel " << kernel.name;
    }
    EXPECT_FALSE(overlaps(stub.base, stub.length, layout::kCom1Port, Serial::kRegisterCount))
        << stub.name;
    EXPECT_FALSE(overlaps(stub.base, stub.length, layout::kI8042Port, I8042::kPortCount))
        << stub.name;
    EXPECT_FALSE(
        overlaps(stub.base, stub.length, kBootSignalPort, BootSignalDevice::kPortCount))
        << stub.name;
  }
}

TEST(StubPorts, TheValuesLinuxDependsOn) {
  Bus bus("pio", 0xff);
  insert_legacy_stub_ports(bus);
  std::array<uint8_t, 1> b{};
  // CMOS register A: UIP must read clear or mc146818_get_time() polls for a second.
  const std::array<uint8_t, 1> reg_a{0x0a};
  EXPECT_TRUE(bus.write(0x70, reg_a));
  EXPECT_TRUE(bus.read(0x71, b));
  EXPECT_EQ(b[0], 0x00);
  // DMA page 0: 0xff means "no 8237" to i8237A_init_ops().
  EXPECT_TRUE(bus.read(0x87, b));
  EXPECT_EQ(b[0], 0xff);
  // COM2-4 absent: IER reads back 0xff, failing the 8250 autoconfig() existence test.
  for (uint64_t com : {0x2f8u, 0x3e8u, 0x2e8u}) {
    EXPECT_TRUE(bus.read(com + 1, b));
    EXPECT_EQ(b[0], 0xff);
  }
  // io_delay writes are claimed.
  EXPECT_TRUE(bus.write(0x80, reg_a));
  EXPECT_TRUE(bus.write(0xed, reg_a));
  EXPECT_EQ(bus.unmapped_accesses(), 0u);
  // A second registration collides.
  EXPECT_THROW(insert_legacy_stub_ports(bus), BusError);
}

TEST(StubPorts, CoexistWithTheRealLegacyDevices) {
  Bus bus("pio", 0xff);
  insert_legacy_stub_ports(bus);
  EXPECT_NO_THROW(bus.insert(std::make_shared<Serial>(nullptr, Serial::OutputSink{}),
                             layout::kCom1Port, Serial::kRegisterCount));
  EXPECT_NO_THROW(bus.insert(std::make_shared<I8042>(nullptr, I8042::ResetCallback{}),
                             layout::kI8042Port, I8042::kPortCount));
  EXPECT_NO_THROW(bus.insert(std::make_shared<BootSignalDevice>(), kBootSignalPort,
                             BootSignalDevice::kPortCount));
}

}  // namespace
}  // namespace forkvm
