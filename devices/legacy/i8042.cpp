#include "devices/legacy/i8042.hpp"

#include <string>

#include "devices/legacy/legacy_device_error.hpp"

namespace forkvm {
namespace {

// Status register bits (Intel 8042 / IBM PC AT Technical Reference, "Status Register"; the
// names are Linux's, include/linux/i8042.h).
constexpr uint8_t kStatusObf = 0x01;      // output buffer full: a byte waits at 0x60
constexpr uint8_t kStatusSys = 0x04;      // system flag, mirrors command byte bit 2
constexpr uint8_t kStatusCmd = 0x08;      // last write went to 0x64 (A2 = 1)
constexpr uint8_t kStatusKeylock = 0x10;  // inhibit switch: 1 = keyboard NOT inhibited
constexpr uint8_t kStatusAuxData = 0x20;  // the waiting byte came from the AUX device

// Command byte (controller RAM byte 0) bits.
constexpr uint8_t kCtrKbdInt = 0x01;  // IRQ 1 when keyboard data is in the output buffer
constexpr uint8_t kCtrSys = 0x04;
constexpr uint8_t kCtrKbdDis = 0x10;
constexpr uint8_t kCtrAuxDis = 0x20;
constexpr uint8_t kCtrXlate = 0x40;
/// After POST: keyboard interrupt on, system flag set, no translation. Firecracker starts its
/// i8042 with the same byte (CB_POST_OK | CB_KBD_INT); without XLATE Linux drives the keyboard
/// untranslated (i8042_direct), so injected scan codes are set 2 as written.
constexpr uint8_t kInitialCtr = kCtrKbdInt | kCtrSys;

// Output port bits (IBM PC AT Technical Reference, "Output Port").
constexpr uint8_t kOutResetDeasserted = 0x01;  // bit 0 low = CPU reset asserted
constexpr uint8_t kOutA20 = 0x02;
constexpr uint8_t kInitialOutputPort = kOutResetDeasserted | kOutA20;

// Controller commands written to 0x64.
constexpr uint8_t kCmdReadRamFirst = 0x20;   // 0x20-0x3f: read RAM byte (0x20 = command byte)
constexpr uint8_t kCmdReadRamLast = 0x3f;
constexpr uint8_t kCmdWriteRamFirst = 0x60;  // 0x60-0x7f: write RAM byte (0x60 = command byte)
constexpr uint8_t kCmdWriteRamLast = 0x7f;
constexpr uint8_t kCmdVersion = 0xa1;
constexpr uint8_t kCmdPasswordInstalled = 0xa4;
constexpr uint8_t kCmdAuxDisable = 0xa7;
constexpr uint8_t kCmdAuxEnable = 0xa8;
constexpr uint8_t kCmdAuxTest = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKbdTest = 0xab;
constexpr uint8_t kCmdDiagnosticDump = 0xac;
constexpr uint8_t kCmdKbdDisable = 0xad;
constexpr uint8_t kCmdKbdEnable = 0xae;
constexpr uint8_t kCmdReadInputPort = 0xc0;
constexpr uint8_t kCmdPollInputLow = 0xc1;
constexpr uint8_t kCmdPollInputHigh = 0xc2;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdWriteKbdBuffer = 0xd2;  // next data byte appears as keyboard data
constexpr uint8_t kCmdWriteAuxBuffer = 0xd3;  // next data byte appears as AUX data (loop test)
constexpr uint8_t kCmdWriteAux = 0xd4;        // next data byte goes to the AUX device
constexpr uint8_t kCmdReadTestInputs = 0xe0;
constexpr uint8_t kCmdPulseFirst = 0xf0;      // 0xf0-0xff: pulse output port bits 0-3 low

// Replies.
constexpr uint8_t kSelfTestOk = 0x55;
constexpr uint8_t kInterfaceOk = 0x00;
constexpr uint8_t kNoPassword = 0xf1;
/// Input port: bit 7 = keyboard not inhibited (IBM PC AT Technical Reference, "Input Port").
constexpr uint8_t kInputPort = 0x80;

// PS/2 keyboard commands (written to 0x60 with no controller command pending) and replies.
constexpr uint8_t kKbdSetLeds = 0xed;
constexpr uint8_t kKbdEcho = 0xee;
constexpr uint8_t kKbdScanCodeSet = 0xf0;
constexpr uint8_t kKbdGetId = 0xf2;
constexpr uint8_t kKbdSetTypematic = 0xf3;
constexpr uint8_t kKbdEnable = 0xf4;
constexpr uint8_t kKbdResendRequest = 0xfe;
constexpr uint8_t kKbdReset = 0xff;
constexpr uint8_t kKbdAck = 0xfa;
constexpr uint8_t kKbdResend = 0xfe;
constexpr uint8_t kKbdBatOk = 0xaa;
constexpr uint8_t kKbdIdFirst = 0xab;
constexpr uint8_t kKbdIdSecondTranslated = 0x41;  // MF2 keyboard, as seen through translation
constexpr uint8_t kKbdIdSecond = 0x83;            // MF2 keyboard

bool takes_data(uint8_t cmd) {
  return (cmd >= kCmdWriteRamFirst && cmd <= kCmdWriteRamLast) ||
         (cmd >= kCmdWriteOutputPort && cmd <= kCmdWriteAux);
}

bool takes_parameter(uint8_t kbd_cmd) {
  return kbd_cmd == kKbdSetLeds || kbd_cmd == kKbdScanCodeSet || kbd_cmd == kKbdSetTypematic;
}

}  // namespace

I8042::I8042(std::shared_ptr<IrqLine> kbd_irq, ResetCallback on_reset)
    : irq_(std::move(kbd_irq)), on_reset_(std::move(on_reset)), output_port_(kInitialOutputPort) {
  ram_[0] = kInitialCtr;
}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  // Guest-controlled: offset and size. The 8042's registers are one byte wide; anything else
  // keeps the bus's pre-filled bytes (Firecracker ignores such reads the same way).
  if (data.size() != 1 || (offset != kDataOffset && offset != kCommandOffset)) {
    ++counters_.ignored_accesses;
    return;
  }
  if (offset == kCommandOffset) {
    data[0] = status();
    return;
  }
  // Reading 0x60 empties the output buffer; the next queued byte (if any) moves in.
  if (const std::optional<OutputByte> byte = front()) {
    last_read_ = byte->value;
    if (!controller_queue_.empty()) {
      controller_queue_.pop_front();
    } else {
      keyboard_queue_.pop_front();
    }
    update_irq(true);
  }
  // With nothing queued the output buffer still holds the last byte, as on real hardware.
  data[0] = last_read_;
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  bool reset = false;
  {
    std::lock_guard lock(mutex_);
    // Guest-controlled: offset and size, as in read().
    if (data.size() != 1 || (offset != kDataOffset && offset != kCommandOffset)) {
      ++counters_.ignored_accesses;
      return;
    }
    last_write_was_command_ = offset == kCommandOffset;
    reset = last_write_was_command_ ? command(data[0]) : this->data(data[0]);
    if (reset) ++counters_.resets;
    update_irq(false);
  }
  // Outside the lock: the VMM's handler may take its own locks or query this device.
  if (reset && on_reset_) {
    try {
      on_reset_();
    } catch (...) {
      // The VMM's callback failing must not unwind into the vCPU loop.
    }
  }
}

bool I8042::command(uint8_t cmd) {
  // Guest-controlled: any byte. A new command abandons one still waiting for its data byte.
  pending_command_ = 0;
  if (cmd >= kCmdReadRamFirst && cmd <= kCmdReadRamLast) {
    push_controller(ram_[cmd & 0x1f]);  // 0x20: the command byte Linux calls CTR
    return false;
  }
  if (takes_data(cmd)) {
    pending_command_ = cmd;
    return false;
  }
  if (cmd >= kCmdPulseFirst) {
    // Pulse output port bits 0-3 low for ~6 µs where the command's low nibble has a 0. Bit 0 is
    // the CPU reset line: 0xfe is the reset Linux's `reboot=k` sends.
    return (cmd & kOutResetDeasserted) == 0;
  }
  switch (cmd) {
    case kCmdSelfTest:
      // Self-test passes and sets the system flag. Linux only runs it with i8042.reset.
      ram_[0] |= kCtrSys;
      push_controller(kSelfTestOk);
      return false;
    case kCmdKbdTest:
    case kCmdAuxTest:
      push_controller(kInterfaceOk);  // clock and data lines fine
      return false;
    case kCmdKbdDisable:
      ram_[0] |= kCtrKbdDis;
      return false;
    case kCmdKbdEnable:
      ram_[0] &= static_cast<uint8_t>(~kCtrKbdDis);
      return false;
    case kCmdAuxDisable:
      ram_[0] |= kCtrAuxDis;
      return false;
    case kCmdAuxEnable:
      ram_[0] &= static_cast<uint8_t>(~kCtrAuxDis);
      return false;
    case kCmdPasswordInstalled:
      push_controller(kNoPassword);
      return false;
    case kCmdReadInputPort:
      push_controller(kInputPort);
      return false;
    case kCmdReadOutputPort:
      push_controller(output_port_);
      return false;
    case kCmdReadTestInputs:
      push_controller(0);
      return false;
    case kCmdVersion:
    case kCmdDiagnosticDump:
    case kCmdPollInputLow:
    case kCmdPollInputHigh:
      return false;  // vendor-specific or diagnostic; answered with nothing
    default:
      ++counters_.unknown_commands;
      return false;
  }
}

bool I8042::data(uint8_t value) {
  const uint8_t cmd = pending_command_;
  pending_command_ = 0;
  if (cmd == 0) {
    // No controller command waiting: the byte goes to the keyboard. Like QEMU, sending data to
    // the keyboard re-enables the keyboard interface.
    ram_[0] &= static_cast<uint8_t>(~kCtrKbdDis);
    keyboard_write(value);
    return false;
  }
  if (cmd >= kCmdWriteRamFirst && cmd <= kCmdWriteRamLast) {
    ram_[cmd & 0x1f] = value;  // 0x60: Linux's i8042_command(&ctr, I8042_CMD_CTL_WCTR)
    return false;
  }
  switch (cmd) {
    case kCmdWriteOutputPort:
      output_port_ = value;
      // Bit 0 drives the CPU reset line, active low (QEMU's outport_write resets the same way).
      return (value & kOutResetDeasserted) == 0;
    case kCmdWriteKbdBuffer:
      push_controller(value, false);
      return false;
    case kCmdWriteAuxBuffer:
      push_controller(value, true);
      return false;
    case kCmdWriteAux:
    default:
      return false;  // no AUX device is attached: the byte goes nowhere
  }
}

void I8042::keyboard_write(uint8_t value) {
  if (keyboard_pending_ != 0) {
    // The parameter byte of a two-byte keyboard command.
    const uint8_t cmd = keyboard_pending_;
    keyboard_pending_ = 0;
    push_keyboard(kKbdAck);
    if (cmd == kKbdScanCodeSet) {
      if (value == 0) {
        push_keyboard(scancode_set_);  // 0 asks which set is in use
      } else if (value <= 3) {
        scancode_set_ = value;
      }
    }
    return;  // LED and typematic settings have no effect on a keyboard without keys
  }
  if (takes_parameter(value)) {
    keyboard_pending_ = value;
    push_keyboard(kKbdAck);
    return;
  }
  switch (value) {
    case kKbdEcho:
      push_keyboard(kKbdEcho);
      return;
    case kKbdGetId:
      push_keyboard(kKbdAck);
      push_keyboard(kKbdIdFirst);
      push_keyboard((ram_[0] & kCtrXlate) ? kKbdIdSecondTranslated : kKbdIdSecond);
      return;
    case kKbdReset:
      keyboard_queue_.clear();
      scancode_set_ = 2;
      push_keyboard(kKbdAck);
      push_keyboard(kKbdBatOk);  // basic assurance test passed
      return;
    case kKbdResendRequest:
    default:
      if (value >= kKbdEnable) {
        push_keyboard(kKbdAck);  // enable/disable scanning, defaults, typematic modes
      } else {
        push_keyboard(kKbdResend);  // not a command this keyboard knows
      }
      return;
  }
}

void I8042::push_controller(uint8_t value, bool aux) {
  if (controller_queue_.size() >= kQueueSize) {
    ++counters_.dropped_bytes;  // the guest keeps issuing commands without reading answers
    return;
  }
  controller_queue_.push_back(OutputByte{value, aux});
}

void I8042::push_keyboard(uint8_t value) {
  if (keyboard_queue_.size() >= kQueueSize) {
    ++counters_.dropped_bytes;
    return;
  }
  keyboard_queue_.push_back(value);
}

bool I8042::keyboard_enabled() const { return (ram_[0] & kCtrKbdDis) == 0; }

std::optional<I8042::OutputByte> I8042::front() const {
  // Controller answers come first: the guest is polling for them right after its command.
  // Keyboard bytes wait while the keyboard interface is disabled (command 0xad / CTR bit 4).
  if (!controller_queue_.empty()) return controller_queue_.front();
  if (keyboard_enabled() && !keyboard_queue_.empty()) {
    return OutputByte{keyboard_queue_.front(), false};
  }
  return std::nullopt;
}

uint8_t I8042::status() const {
  const std::optional<OutputByte> byte = front();
  uint8_t s = kStatusKeylock;  // IBF is never set: every write is consumed at once
  if (byte) s |= kStatusObf;
  if (byte && byte->aux) s |= kStatusAuxData;
  if (ram_[0] & kCtrSys) s |= kStatusSys;
  if (last_write_was_command_) s |= kStatusCmd;
  return s;
}

bool I8042::irq_output() const {
  // IRQ 1 is raised while keyboard-side data is in the output buffer and command byte bit 0
  // allows it. AUX data would raise IRQ 12, which is not wired (there is no mouse).
  const std::optional<OutputByte> byte = front();
  return (ram_[0] & kCtrKbdInt) && byte && !byte->aux;
}

void I8042::update_irq(bool new_byte) {
  const bool level = irq_output();
  // ISA IRQ 1 is edge-triggered at the IOAPIC (MP spec default for ISA), so each byte that
  // moves into the output buffer needs its own rising edge even when the line was already up.
  if (new_byte && level && irq_level_) {
    if (irq_) irq_->set_level(false);
    irq_level_ = false;
  }
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_->set_level(level);
}

size_t I8042::enqueue_keyboard(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t accepted = 0;
  while (accepted < bytes.size() && keyboard_queue_.size() < kQueueSize) {
    keyboard_queue_.push_back(bytes[accepted++]);
  }
  update_irq(false);
  return accepted;
}

I8042::Counters I8042::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

I8042::State I8042::save_state() const {
  std::lock_guard lock(mutex_);
  State s;
  s.ram = ram_;
  s.output_port = output_port_;
  s.pending_command = pending_command_;
  s.keyboard_pending = keyboard_pending_;
  s.scancode_set = scancode_set_;
  s.last_read = last_read_;
  s.last_write_was_command = last_write_was_command_;
  s.controller_queue.assign(controller_queue_.begin(), controller_queue_.end());
  s.keyboard_queue.assign(keyboard_queue_.begin(), keyboard_queue_.end());
  return s;
}

void I8042::validate(const State& state) {
  auto reject = [](const std::string& what) {
    throw LegacyDeviceError("i8042: invalid state: " + what);
  };
  if (state.controller_queue.size() > kQueueSize) reject("controller queue too long");
  if (state.keyboard_queue.size() > kQueueSize) reject("keyboard queue too long");
  if (state.pending_command != 0 && !takes_data(state.pending_command)) {
    reject("pending command " + std::to_string(state.pending_command) + " takes no data");
  }
  if (state.keyboard_pending != 0 && !takes_parameter(state.keyboard_pending)) {
    reject("keyboard command " + std::to_string(state.keyboard_pending) + " takes no parameter");
  }
  if (state.scancode_set < 1 || state.scancode_set > 3) {
    reject("scancode_set " + std::to_string(state.scancode_set) + " is not a scan code set (1-3)");
  }
}

void I8042::restore_state(const State& state) {
  validate(state);  // before touching anything: a bad state leaves the device as it was
  std::lock_guard lock(mutex_);
  ram_ = state.ram;
  output_port_ = state.output_port;
  pending_command_ = state.pending_command;
  keyboard_pending_ = state.keyboard_pending;
  scancode_set_ = state.scancode_set;
  last_read_ = state.last_read;
  last_write_was_command_ = state.last_write_was_command;
  controller_queue_.assign(state.controller_queue.begin(), state.controller_queue.end());
  keyboard_queue_.assign(state.keyboard_queue.begin(), state.keyboard_queue.end());
  // Drive IRQ 1 unconditionally: the level it had before the restore is stale.
  irq_level_ = irq_output();
  if (irq_) irq_->set_level(irq_level_);
}

}  // namespace forkvm
