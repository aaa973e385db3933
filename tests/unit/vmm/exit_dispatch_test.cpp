#include "vmm/exit_dispatch.hpp"

#include <linux/kvm.h>
#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace forkvm {
namespace {

class Sink : public BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(0x40 + offset + reads++);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    for (auto b : data) bytes.push_back(b);
    offsets.push_back(offset);
  }
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> offsets;
  int reads = 0;
};

struct Fixture {
  Bus pio{"pio", 0xff};
  Bus mmio{"mmio", 0};
  std::shared_ptr<Sink> port = std::make_shared<Sink>();
  std::shared_ptr<Sink> mem = std::make_shared<Sink>();
  Fixture() {
    pio.insert(port, 0x3f8, 8);
    mmio.insert(mem, 0xd0000000, 0x1000);
  }
};

TEST(ExitDispatch, RepOutsIsOneAccessPerElement) {
  Fixture f;
  std::array<uint8_t, 6> data{'a', 'b', 'c', 'd', 'e', 'f'};
  IoOut out{0x3f8, 2, 3, data};
  EXPECT_EQ(dispatch(out, f.pio, f.mmio), ExitAction::kContinue);
  EXPECT_EQ(f.port->bytes, std::vector<uint8_t>(data.begin(), data.end()));
  EXPECT_EQ(f.port->offsets.size(), 3u);
}

TEST(ExitDispatch, RepInsFillsEveryElement) {
  Fixture f;
  std::array<uint8_t, 4> data{};
  IoIn in{0x3f9, 1, 4, data};
  EXPECT_EQ(dispatch(in, f.pio, f.mmio), ExitAction::kContinue);
  EXPECT_EQ(data[0], 0x41);
  EXPECT_EQ(data[3], 0x44);
}

TEST(ExitDispatch, MmioReachesDeviceWithOffset) {
  Fixture f;
  std::array<uint8_t, 4> data{1, 2, 3, 4};
  EXPECT_EQ(dispatch(MmioWrite{0xd0000010, data}, f.pio, f.mmio),
            ExitAction::kContinue);
  ASSERT_EQ(f.mem->offsets.size(), 1u);
  EXPECT_EQ(f.mem->offsets[0], 0x10u);
}

TEST(ExitDispatch, UnmappedPortReadsAllOnes) {
  Fixture f;
  std::array<uint8_t, 2> data{};
  EXPECT_EQ(dispatch(IoIn{0x1234, 2, 1, data}, f.pio, f.mmio), ExitAction::kContinue);
  EXPECT_EQ(data[0], 0xff);
  EXPECT_EQ(f.pio.unmapped_accesses(), 1u);
}

TEST(ExitDispatch, NonIoExitsBecomeActions) {
  Fixture f;
  EXPECT_EQ(dispatch(Interrupted{}, f.pio, f.mmio), ExitAction::kInterrupted);
  EXPECT_EQ(dispatch(Shutdown{}, f.pio, f.mmio), ExitAction::kGuestReset);
  EXPECT_EQ(dispatch(SystemEvent{KVM_SYSTEM_EVENT_RESET}, f.pio, f.mmio), ExitAction::kGuestReset);
  EXPECT_EQ(dispatch(SystemEvent{KVM_SYSTEM_EVENT_SHUTDOWN}, f.pio, f.mmio), ExitAction::kGuestHalt);
  EXPECT_EQ(dispatch(FailEntry{0x80000021}, f.pio, f.mmio), ExitAction::kFatal);
  EXPECT_EQ(dispatch(InternalError{1}, f.pio, f.mmio), ExitAction::kFatal);
  EXPECT_EQ(dispatch(RunFailed{EFAULT}, f.pio, f.mmio), ExitAction::kFatal);
  EXPECT_EQ(dispatch(UnknownExit{999}, f.pio, f.mmio), ExitAction::kFatal);
  EXPECT_EQ(dispatch(Hlt{}, f.pio, f.mmio), ExitAction::kContinue);
  EXPECT_NE(describe(FailEntry{0x80000021}).find("0x80000021"), std::string::npos);
}

}  // namespace
}  // namespace forkvm
