// The 8042 controller: reset line, the probe sequence Linux 6.1 runs, the keyboard behind it.
#include "devices/legacy/i8042.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <stdexcept>
#include <vector>

#include "devices/legacy/legacy_device_error.hpp"
#include "tests/unit/devices/recording_irq_line.hpp"

namespace forkvm {
namespace {

constexpr uint64_t kData = I8042::kDataOffset;
constexpr uint64_t kCmd = I8042::kCommandOffset;
// Status bits and command-byte bits as in include/linux/i8042.h.
constexpr uint8_t kObf = 0x01, kIbf = 0x02, kSys = 0x04, kCmdDat = 0x08, kKeylock = 0x10,
                  kAuxData = 0x20;
constexpr uint8_t kCtrKbdInt = 0x01, kCtrKbdDis = 0x10, kCtrAuxDis = 0x20;

class I8042Test : public ::testing::Test {
 protected:
  I8042Test()
      : irq_(std::make_shared<test::RecordingIrqLine>()),
        dev_(irq_, [this] { ++resets_; }) {}

  uint8_t status() { return rd(kCmd); }
  uint8_t rd(uint64_t offset) {
    std::array<uint8_t, 1> b{0xff};
    dev_.read(offset, b);
    return b[0];
  }
  void wr(uint64_t offset, uint8_t value) {
    const std::array<uint8_t, 1> b{value};
    dev_.write(offset, b);
  }
  /// Linux's __i8042_command: command, parameters, then `replies` bytes polled via OBF.
  std::vector<uint8_t> command(uint8_t cmd, std::vector<uint8_t> params, size_t replies) {
    EXPECT_EQ(status() & kIbf, 0);
    wr(kCmd, cmd);
    for (uint8_t p : params) {
      EXPECT_EQ(status() & kIbf, 0);
      wr(kData, p);
    }
    std::vector<uint8_t> out;
    for (size_t i = 0; i < replies; ++i) {
      EXPECT_NE(status() & kObf, 0) << "reply " << i << " to command " << int{cmd};
      out.push_back(rd(kData));
    }
    return out;
  }

  std::shared_ptr<test::RecordingIrqLine> irq_;
  int resets_ = 0;
  I8042 dev_;
};

TEST_F(I8042Test, StatusAfterPostHasNoDataAndIsNeverAllOnes) {
  EXPECT_EQ(status(), kKeylock | kSys);
  EXPECT_FALSE(irq_->level());
}

TEST_F(I8042Test, PulseResetLineInvokesTheCallback) {
  wr(kCmd, 0xfe);
  EXPECT_EQ(resets_, 1);
  EXPECT_EQ(dev_.counters().resets, 1u);
  // Linux's BOOT_KBD loop writes it up to ten times; each one is reported.
  wr(kCmd, 0xfe);
  EXPECT_EQ(resets_, 2);
  wr(kCmd, 0xff);  // pulses nothing
  wr(kCmd, 0xf1);  // pulses bits 1-3, not the reset line
  EXPECT_EQ(resets_, 2);
  wr(kCmd, 0xf0);  // pulses bits 0-3, reset included
  EXPECT_EQ(resets_, 3);
}

TEST_F(I8042Test, WritingTheOutputPortWithBitZeroClearResets) {
  wr(kCmd, 0xd1);
  wr(kData, 0xdf);  // A20 on, reset deasserted: the classic A20 enable
  EXPECT_EQ(resets_, 0);
  EXPECT_EQ(command(0xd0, {}, 1), std::vector<uint8_t>{0xdf});
  wr(kCmd, 0xd1);
  wr(kData, 0xde);
  EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, SelfTestAndInterfaceTestsPass) {
  EXPECT_EQ(command(0xaa, {}, 1), std::vector<uint8_t>{0x55});
  EXPECT_EQ(status() & kObf, 0);
  EXPECT_EQ(command(0xab, {}, 1), std::vector<uint8_t>{0x00});
  EXPECT_EQ(command(0xa9, {}, 1), std::vector<uint8_t>{0x00});
  EXPECT_EQ(command(0xa4, {}, 1), std::vector<uint8_t>{0xf1});  // no password
}

TEST_F(I8042Test, CommandByteReadsAndWrites) {
  EXPECT_EQ(command(0x20, {}, 1), std::vector<uint8_t>{0x05});
  command(0x60, {0x47}, 0);
  EXPECT_EQ(command(0x20, {}, 1), std::vector<uint8_t>{0x47});
  command(0x7f, {0x99}, 0);  // the rest of the controller RAM behaves the same
  EXPECT_EQ(command(0x3f, {}, 1), std::vector<uint8_t>{0x99});
  EXPECT_EQ(status() & kCmdDat, kCmdDat);  // last write went to 0x64
  wr(kCmd, 0x60);
  wr(kData, 0x01);  // clears the system flag
  EXPECT_EQ(status() & (kCmdDat | kSys), 0);
}

TEST_F(I8042Test, Linux61ProbeSequenceGetsSaneAnswers) {
  // i8042_controller_check -> i8042_flush: drain while OBF, at most 16 bytes.
  int flushed = 0;
  while ((status() & kObf) && flushed < 16) {
    rd(kData);
    ++flushed;
  }
  EXPECT_EQ(flushed, 0);
  // i8042_controller_init: read the CTR until two reads agree.
  const uint8_t ctr0 = command(0x20, {}, 1)[0];
  const uint8_t ctr1 = command(0x20, {}, 1)[0];
  EXPECT_EQ(ctr0, ctr1);
  EXPECT_NE(status() & kKeylock, 0);  // keylock inactive: no "Keylock active" warning
  // Disable the keyboard and its interrupt, write back, flush.
  uint8_t ctr = static_cast<uint8_t>((ctr0 | kCtrKbdDis) & ~kCtrKbdInt);
  command(0x60, {ctr}, 0);
  EXPECT_EQ(status() & kObf, 0);
  // i8042_enable_kbd_port.
  ctr = static_cast<uint8_t>((ctr & ~kCtrKbdDis) | kCtrKbdInt);
  command(0x60, {ctr}, 0);
  EXPECT_EQ(command(0x20, {}, 1), std::vector<uint8_t>{ctr});
  EXPECT_EQ(dev_.counters().unknown_commands, 0u);
  EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, DisableAndEnableCommandsToggleTheCommandByte) {
  wr(kCmd, 0xad);
  EXPECT_EQ(command(0x20, {}, 1)[0] & kCtrKbdDis, kCtrKbdDis);
  wr(kCmd, 0xae);
  EXPECT_EQ(command(0x20, {}, 1)[0] & kCtrKbdDis, 0);
  wr(kCmd, 0xa7);
  EXPECT_EQ(command(0x20, {}, 1)[0] & kCtrAuxDis, kCtrAuxDis);
  wr(kCmd, 0xa8);
  EXPECT_EQ(command(0x20, {}, 1)[0] & kCtrAuxDis, 0);
}

TEST_F(I8042Test, KeyboardAnswersWithOneInterruptEdgePerByte) {
  irq_->clear_history();
  wr(kData, 0xf2);  // GET ID
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(rd(kData), 0xfa);
  EXPECT_EQ(rd(kData), 0xab);
  EXPECT_EQ(rd(kData), 0x83);  // MF2, untranslated
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(irq_->rising_edges(), 3u);
  EXPECT_EQ(status() & kObf, 0);
  EXPECT_EQ(rd(kData), 0x83);  // an empty output buffer keeps its last byte
}

TEST_F(I8042Test, KeyboardCommandsWithParameters) {
  wr(kData, 0xed);  // set LEDs
  EXPECT_EQ(rd(kData), 0xfa);
  wr(kData, 0x07);
  EXPECT_EQ(rd(kData), 0xfa);
  wr(kData, 0xf0);  // scan code set: query
  wr(kData, 0x00);
  EXPECT_EQ(rd(kData), 0xfa);
  EXPECT_EQ(rd(kData), 0xfa);
  EXPECT_EQ(rd(kData), 0x02);
  wr(kData, 0xff);  // reset: ACK, then BAT passed
  EXPECT_EQ(rd(kData), 0xfa);
  EXPECT_EQ(rd(kData), 0xaa);
  wr(kData, 0xee);  // echo
  EXPECT_EQ(rd(kData), 0xee);
  wr(kData, 0x12);  // not a command
  EXPECT_EQ(rd(kData), 0xfe);
}

TEST_F(I8042Test, ControllerRepliesComeBeforeKeyboardBytes) {
  const std::array<uint8_t, 2> keys{0x14, 0x11};
  EXPECT_EQ(dev_.enqueue_keyboard(keys), 2u);
  wr(kCmd, 0x20);
  EXPECT_EQ(rd(kData), 0x05);
  EXPECT_EQ(rd(kData), 0x14);
  EXPECT_EQ(rd(kData), 0x11);
}

TEST_F(I8042Test, KeyboardBytesWaitWhileTheInterfaceIsDisabled) {
  wr(kCmd, 0xad);
  const std::array<uint8_t, 1> key{0x1c};
  dev_.enqueue_keyboard(key);
  EXPECT_EQ(status() & kObf, 0);
  EXPECT_FALSE(irq_->level());
  wr(kCmd, 0xae);
  EXPECT_EQ(status() & kObf, kObf);
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(rd(kData), 0x1c);
}

TEST_F(I8042Test, InterruptFollowsTheCommandByte) {
  command(0x60, {0x04}, 0);  // KBDINT off
  const std::array<uint8_t, 1> key{0x1c};
  dev_.enqueue_keyboard(key);
  EXPECT_FALSE(irq_->level());
  command(0x60, {0x05}, 0);
  EXPECT_TRUE(irq_->level());
  rd(kData);
  EXPECT_FALSE(irq_->level());
}

TEST_F(I8042Test, KeyboardQueueIsBounded) {
  const std::vector<uint8_t> many(40, 0x1c);
  EXPECT_EQ(dev_.enqueue_keyboard(many), I8042::kQueueSize);
  for (int i = 0; i < 40; ++i) wr(kCmd, 0x20);  // answers nobody reads
  EXPECT_EQ(dev_.counters().dropped_bytes, 40u - I8042::kQueueSize);
}

TEST_F(I8042Test, AuxLoopbackIsFlaggedAsAuxDataWithoutIrq1) {
  irq_->clear_history();
  wr(kCmd, 0xd3);
  wr(kData, 0x5a);
  EXPECT_EQ(status() & (kObf | kAuxData), kObf | kAuxData);
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(rd(kData), 0x5a);
  wr(kCmd, 0xd4);
  wr(kData, 0xf4);  // to the absent mouse: goes nowhere
  EXPECT_EQ(status() & kObf, 0);
}

TEST_F(I8042Test, NoCrashOnEveryCommandByteAndOffset) {
  for (int cmd = 0; cmd < 256; ++cmd) {
    int resets = 0;
    I8042 dev(irq_, [&] { ++resets; });
    const std::array<uint8_t, 1> c{static_cast<uint8_t>(cmd)};
    dev.write(kCmd, c);
    for (int value : {0x00, 0x5a, 0xfe, 0xff}) {
      const std::array<uint8_t, 1> v{static_cast<uint8_t>(value)};
      dev.write(kData, v);
    }
    for (uint64_t offset = 0; offset < 8; ++offset) {
      for (size_t size : {0u, 1u, 2u, 4u, 8u}) {
        std::vector<uint8_t> buf(size, 0xff);
        dev.read(offset, buf);
        dev.write(offset, buf);
        if (offset != kData && offset != kCmd && size > 0) {
          EXPECT_EQ(buf[0], 0xff) << "offset " << offset;  // not the 8042's ports
        }
      }
    }
    std::array<uint8_t, 1> s{};
    dev.read(kCmd, s);
    EXPECT_NE(s[0], 0xff);
    EXPECT_EQ(s[0] & kIbf, 0);
    // Only pulse commands with bit 0 clear (0xf0, 0xf2, ..., 0xfe) reset, plus the output-port
    // write 0xd1 followed by data with bit 0 clear (0x00 is the first data byte written).
    const bool expect_reset = (cmd >= 0xf0 && (cmd & 1) == 0) || cmd == 0xd1;
    EXPECT_EQ(resets > 0, expect_reset) << "command " << cmd;
  }
}

TEST_F(I8042Test, UnknownCommandsAreCountedAndIgnored) {
  wr(kCmd, 0x00);
  wr(kCmd, 0xb5);
  EXPECT_EQ(dev_.counters().unknown_commands, 2u);
  EXPECT_EQ(status() & kObf, 0);
}

TEST_F(I8042Test, SaveRestoreRoundTrip) {
  command(0x60, {0x45}, 0);
  wr(kCmd, 0xd1);  // pending data byte
  const std::array<uint8_t, 3> keys{0xe0, 0x71, 0xf0};
  dev_.enqueue_keyboard(keys);
  const I8042::State saved = dev_.save_state();
  EXPECT_EQ(saved.pending_command, 0xd1);
  EXPECT_EQ(saved.keyboard_queue.size(), 3u);

  auto irq = std::make_shared<test::RecordingIrqLine>();
  I8042 restored(irq, {});
  restored.restore_state(saved);
  EXPECT_EQ(restored.save_state(), saved);
  EXPECT_TRUE(irq->level());
  I8042::State bad = saved;
  bad.keyboard_queue.assign(I8042::kQueueSize + 1, 0);
  EXPECT_THROW(restored.restore_state(bad), LegacyDeviceError);
  bad = saved;
  bad.pending_command = 0x20;
  EXPECT_THROW(restored.restore_state(bad), LegacyDeviceError);
  bad = saved;
  bad.scancode_set = 0;
  EXPECT_THROW(restored.restore_state(bad), LegacyDeviceError);
  EXPECT_EQ(restored.save_state(), saved);
}

TEST(I8042, AThrowingResetCallbackDoesNotEscape) {
  I8042 dev(nullptr, [] { throw std::runtime_error("vm gone"); });
  const std::array<uint8_t, 1> b{0xfe};
  EXPECT_NO_THROW(dev.write(I8042::kCommandOffset, b));
  EXPECT_EQ(dev.counters().resets, 1u);
}

}  // namespace
}  // namespace forkvm
