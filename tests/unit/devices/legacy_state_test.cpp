// Snapshot state of the legacy devices: save -> restore into a fresh device -> save, directly
// and through JSON, and every malformed field of the JSON refused with a SnapshotError.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <vector>

#include "base/base64.hpp"
#include "contract/boot_signal.hpp"
#include "devices/legacy/boot_signal_state.hpp"
#include "devices/legacy/i8042_state.hpp"
#include "devices/legacy/serial_state.hpp"
#include "tests/support/state_codec_checks.hpp"
#include "tests/unit/devices/recording_irq_line.hpp"

namespace forkvm {
namespace {

void wr(BusDevice& d, uint64_t offset, uint8_t v) {
  const std::array<uint8_t, 1> b{v};
  d.write(offset, b);
}

/// A UART the way Linux leaves it, plus host input, scratch, divisor and a pending THRE.
Serial::State busy_serial_state() {
  Serial s(nullptr, {});
  wr(s, 3, 0x80);  // DLAB
  wr(s, 0, 0x01);
  wr(s, 1, 0x02);
  wr(s, 3, 0x03);  // 8N1
  wr(s, 2, 0xc7);  // FIFO on, trigger 14
  wr(s, 4, 0x0b);  // DTR RTS OUT2
  wr(s, 1, 0x07);
  wr(s, 7, 0x5a);
  const std::array<uint8_t, 5> in{'h', 'e', 'l', 'l', 'o'};
  s.enqueue_input(in);
  wr(s, 0, 'x');  // THRE interrupt pending
  return s.save_state();
}

TEST(SerialState, SaveRestoreSaveIdenticalDirectAndThroughJson) {
  const Serial::State saved = busy_serial_state();
  EXPECT_EQ(saved.rx_fifo.size(), 5u);
  auto irq = std::make_shared<test::RecordingIrqLine>();
  Serial restored(irq, {});
  restored.restore_state(saved);
  EXPECT_EQ(restored.save_state(), saved);
  EXPECT_TRUE(irq->level());

  const nlohmann::json j = to_json(saved);
  const Serial::State decoded = serial_state_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(decoded, saved);
  Serial again(nullptr, {});
  again.restore_state(decoded);
  EXPECT_EQ(to_json(again.save_state()), j);
}

TEST(SerialState, EveryMalformedFieldIsRefused) {
  const nlohmann::json good = to_json(busy_serial_state());
  test::expect_every_field_checked(good, serial_state_from_json, "serial");
  for (const char* reg : {"ier", "lcr", "mcr", "fcr", "lsr_errors", "msr_deltas", "scr", "dll",
                          "dlm"}) {
    test::expect_rejected(good, serial_state_from_json, reg, 256);
  }
  test::expect_rejected(good, serial_state_from_json, "thr_interrupt", 1);  // not a boolean
  test::expect_rejected(good, serial_state_from_json, "rx_fifo", "aGVsbG8");  // bad padding
  test::expect_rejected(good, serial_state_from_json, "rx_fifo", "!!!!");
  const std::vector<uint8_t> big(Serial::kFifoSize + 1, 'a');
  test::expect_rejected(good, serial_state_from_json, "rx_fifo", to_base64(big));
  // Register bits the 16550A lacks: the message names the register.
  for (const auto& [reg, value] : std::vector<std::pair<const char*, int>>{
           {"ier", 0x10}, {"mcr", 0x20}, {"fcr", 0x02}, {"lsr_errors", 0x01},
           {"msr_deltas", 0x10}}) {
    nlohmann::json bad = good;
    bad[reg] = value;
    EXPECT_THROW(serial_state_from_json(bad), SnapshotError) << reg;
  }
  // Two bytes held with FIFOs disabled (the receiver holds one).
  nlohmann::json bad = good;
  bad["fcr"] = 0;
  EXPECT_THROW(serial_state_from_json(bad), SnapshotError);
}

I8042::State busy_i8042_state() {
  I8042 dev(nullptr, {});
  wr(dev, I8042::kCommandOffset, 0x60);  // write the command byte
  wr(dev, I8042::kDataOffset, 0x47);
  wr(dev, I8042::kCommandOffset, 0xd3);  // AUX loop byte
  wr(dev, I8042::kDataOffset, 0x99);
  wr(dev, I8042::kCommandOffset, 0x20);  // read the command byte: queued answer
  wr(dev, I8042::kDataOffset, 0xf0);     // keyboard: scan-code set, parameter pending
  const std::array<uint8_t, 2> keys{0x1c, 0xf0};
  dev.enqueue_keyboard(keys);
  return dev.save_state();
}

TEST(I8042State, SaveRestoreSaveIdenticalDirectAndThroughJson) {
  const I8042::State saved = busy_i8042_state();
  EXPECT_EQ(saved.controller_queue.size(), 2u);
  EXPECT_EQ(saved.keyboard_pending, 0xf0);
  I8042 restored(nullptr, {});
  restored.restore_state(saved);
  EXPECT_EQ(restored.save_state(), saved);
  const nlohmann::json j = to_json(saved);
  const I8042::State decoded = i8042_state_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(decoded, saved);
  I8042 again(nullptr, {});
  again.restore_state(decoded);
  EXPECT_EQ(to_json(again.save_state()), j);
}

TEST(I8042State, EveryMalformedFieldIsRefused) {
  const nlohmann::json good = to_json(busy_i8042_state());
  test::expect_every_field_checked(good, i8042_state_from_json, "i8042");
  for (const char* f : {"output_port", "pending_command", "keyboard_pending", "scancode_set",
                        "last_read"}) {
    test::expect_rejected(good, i8042_state_from_json, f, 256);
  }
  test::expect_rejected(good, i8042_state_from_json, "ram", to_base64(std::vector<uint8_t>(31)));
  test::expect_rejected(good, i8042_state_from_json, "ram", to_base64(std::vector<uint8_t>(33)));
  test::expect_rejected(good, i8042_state_from_json, "keyboard_queue",
                        to_base64(std::vector<uint8_t>(I8042::kQueueSize + 1)));
  test::expect_rejected(good, i8042_state_from_json, "last_write_was_command", "yes");
  // Controller queue: too long, and malformed elements.
  nlohmann::json bad = good;
  bad["controller_queue"] = nlohmann::json::array();
  for (size_t i = 0; i <= I8042::kQueueSize; ++i) bad["controller_queue"].push_back({{"value", 1}, {"aux", false}});
  EXPECT_THROW(i8042_state_from_json(bad), SnapshotError);
  for (const nlohmann::json& elem :
       {nlohmann::json{{"value", 300}, {"aux", false}}, nlohmann::json{{"value", 1}},
        nlohmann::json{{"value", 1}, {"aux", 0}}, nlohmann::json{{"value", 1}, {"aux", true}, {"x", 1}},
        nlohmann::json(5)}) {
    bad = good;
    bad["controller_queue"][0] = elem;
    const std::string m = test::snapshot_error_of(i8042_state_from_json, bad);
    EXPECT_NE(m.find("controller_queue[0]"), std::string::npos) << elem.dump() << ": " << m;
  }
  // Values the state machine cannot be in.
  test::expect_rejected(good, i8042_state_from_json, "scancode_set", 0);
  EXPECT_THROW(i8042_state_from_json([&] { auto b = good; b["scancode_set"] = 4; return b; }()),
               SnapshotError);
  EXPECT_THROW(i8042_state_from_json([&] { auto b = good; b["pending_command"] = 0x20; return b; }()),
               SnapshotError);
  EXPECT_THROW(i8042_state_from_json([&] { auto b = good; b["keyboard_pending"] = 0xee; return b; }()),
               SnapshotError);
}

void signal(BootSignalDevice& dev, BootSignal code, uint32_t arg) {
  const uint32_t v = static_cast<uint32_t>(code) | (arg << 8);
  const std::array<uint8_t, 4> b{static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                                 static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
  dev.write(0, b);
}

TEST(BootSignalState, SaveRestoreSaveIdenticalDirectAndThroughJson) {
  BootSignalDevice dev;
  signal(dev, BootSignal::kAgentReady, 7);
  signal(dev, BootSignal::kAgentReady, 0xabcdef);
  signal(dev, BootSignal::kFatal, 1);
  wr(dev, 0, 1);  // malformed: one byte
  const BootSignalDevice::State saved = dev.save_state();
  EXPECT_EQ(saved.agent_ready.count, 2u);
  EXPECT_EQ(saved.agent_ready.first_arg, 7u);
  EXPECT_EQ(saved.agent_ready.last_arg, 0xabcdefu);
  EXPECT_EQ(saved.power_off.count, 0u);
  EXPECT_EQ(saved.malformed_writes, 1u);

  int observed = 0;
  BootSignalDevice restored([&observed](BootSignal, uint32_t, BootSignalDevice::Clock::time_point) {
    ++observed;
  });
  const auto at = BootSignalDevice::Clock::now();
  restored.restore_state(saved, at);
  EXPECT_EQ(restored.save_state(), saved);
  EXPECT_EQ(observed, 0) << "restored signals were already handled";
  ASSERT_TRUE(restored.first(BootSignal::kAgentReady));
  EXPECT_EQ(restored.first(BootSignal::kAgentReady)->at, at);
  EXPECT_EQ(restored.last(BootSignal::kAgentReady)->arg, 0xabcdefu);
  EXPECT_FALSE(restored.first(BootSignal::kPowerOff));

  const nlohmann::json j = to_json(saved);
  EXPECT_EQ(boot_signal_state_from_json(nlohmann::json::parse(j.dump())), saved);
}

TEST(BootSignalState, EveryMalformedFieldIsRefused) {
  BootSignalDevice dev;
  signal(dev, BootSignal::kPowerOff, 3);
  const nlohmann::json good = to_json(dev.save_state());
  test::expect_every_field_checked(good, boot_signal_state_from_json, "boot_signal");
  for (const char* code : {"agent_ready", "power_off", "fatal"}) {
    test::expect_every_field_checked(
        good[code], [&](const nlohmann::json& inner) {
          nlohmann::json whole = good;
          whole[code] = inner;
          return boot_signal_state_from_json(whole);
        },
        std::string("boot_signal.") + code);
  }
  nlohmann::json bad = good;
  bad["power_off"]["last_arg"] = 0x1000000;  // 25 bits
  EXPECT_THROW(boot_signal_state_from_json(bad), SnapshotError);
  bad = good;
  bad["fatal"]["first_arg"] = 5;  // never arrived, yet an argument
  EXPECT_THROW(boot_signal_state_from_json(bad), SnapshotError);
  EXPECT_THROW(BootSignalDevice().restore_state([] {
                 BootSignalDevice::State s;
                 s.fatal.last_arg = 1;
                 return s;
               }()),
               SnapshotError);
}

}  // namespace
}  // namespace forkvm
