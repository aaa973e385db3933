// Enough of an Intel 8042 keyboard controller (and the PS/2 keyboard behind it) for Linux to
// probe it quickly and to reboot through it. The controller is one port range of 5 at 0x60: the
// data port at offset 0 (0x60) and the status/command port at offset 4 (0x64). Offsets 1-3
// (0x61-0x63) are not the 8042's: 0x61 belongs to KVM's in-kernel PIT (speaker/NMI status) and
// never exits to user space; accesses that reach this device there are ignored.
//
// What matters for a VMM:
//   * `reboot=k` makes Linux write 0xFE ("pulse output port bit 0", the CPU reset line) to 0x64;
//     that invokes the reset callback, which the VMM uses to stop the VM. Writing the output
//     port (command 0xD1) with bit 0 clear asserts the same line and does the same.
//   * Linux 6.1's i8042 probe (drivers/input/serio/i8042.c) reads the status register and drains
//     the output buffer (i8042_flush: at most 16 reads while OBF is set), reads the command byte
//     twice until two reads agree (i8042_controller_init, command 0x20), writes it back (0x60),
//     and with `i8042.noaux i8042.nomux i8042.dumbkbd` does little else. Every command gets its
//     answer at once, so none of its 500 ms polling loops (I8042_CTL_TIMEOUT) ever waits.
//
// The keyboard has no keys; the host can inject scan codes with enqueue_keyboard() (e.g. a
// Ctrl-Alt-Del sequence, as Firecracker's SendCtrlAltDel does). Scan-code translation (command
// byte bit 6) is stored but not performed: injected bytes are delivered as given. There is no
// mouse; the AUX port only answers the controller's own loop-back command 0xD3.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "devices/bus.hpp"
#include "devices/irq_line.hpp"

namespace forkvm {

/// The 8042 keyboard controller at ports 0x60-0x64, keyboard interrupt on IRQ 1.
///
/// Thread safety: all methods may be called from any thread; one mutex guards the state. The
/// IrqLine is driven while it is held (so levels arrive in order; set_level must not call back
/// into this device). The reset callback is called after the mutex is released.
class I8042 final : public BusDevice {
 public:
  /// Called when the guest pulses the CPU reset line. Linux writes 0xFE up to 10 times in a row
  /// (native_machine_emergency_restart, BOOT_KBD), so the callback must be idempotent. It runs on
  /// the vCPU thread that wrote the command and should only request the stop, not wait for it.
  using ResetCallback = std::function<void()>;

  /// Offset of the data port (0x60) in the device's range.
  static constexpr uint64_t kDataOffset = 0;
  /// Offset of the status (read) / command (write) port (0x64).
  static constexpr uint64_t kCommandOffset = 4;
  /// Length of the port range starting at 0x60.
  static constexpr uint64_t kPortCount = 5;
  /// Bytes the controller and the keyboard can each hold for the guest (a PS/2 keyboard buffers
  /// 16 bytes; the controller needs at most 3 for one command's answer).
  static constexpr size_t kQueueSize = 16;

  /// One byte waiting for the guest, and whether it came from the AUX (mouse) side.
  struct OutputByte {
    uint8_t value = 0;  ///< The byte the guest will read from port 0x60.
    bool aux = false;   ///< Delivered with status bit 5 (AUX data) set.
    /// Field equality.
    bool operator==(const OutputByte&) const = default;
  };

  /// Snapshot state.
  struct State {
    std::array<uint8_t, 32> ram{};      ///< Controller RAM; byte 0 is the command byte (CTR).
    uint8_t output_port = 0;            ///< Output port (bit 0 = reset line, active low).
    uint8_t pending_command = 0;        ///< Controller command awaiting its data byte, or 0.
    uint8_t keyboard_pending = 0;       ///< Keyboard command awaiting its parameter, or 0.
    uint8_t scancode_set = 2;           ///< Keyboard scan-code set (1-3).
    uint8_t last_read = 0;              ///< What port 0x60 returns when nothing is queued.
    bool last_write_was_command = false;  ///< Status bit 3 (A2 of the last write).
    std::vector<OutputByte> controller_queue;  ///< Controller answers, oldest first.
    std::vector<uint8_t> keyboard_queue;       ///< Keyboard bytes, oldest first.
    /// Field equality.
    bool operator==(const State&) const = default;
  };

  /// Running totals, for metrics.
  struct Counters {
    uint64_t resets = 0;            ///< Times the reset line was pulsed.
    uint64_t unknown_commands = 0;  ///< Controller commands this model does not know.
    uint64_t dropped_bytes = 0;     ///< Output bytes lost because a queue was full.
    uint64_t ignored_accesses = 0;  ///< Accesses at offsets 1-3 or wider than one byte.
  };

  /// Creates a controller as firmware leaves it after POST: self-test passed, keyboard enabled
  /// with its interrupt on, no translation (command byte 0x05, Firecracker's default too), A20
  /// and the reset line deasserted. `kbd_irq` may be null; `on_reset` may be empty.
  I8042(std::shared_ptr<IrqLine> kbd_irq, ResetCallback on_reset);

  /// BusDevice: offset 0 reads the output buffer, offset 4 the status register. Accesses that
  /// are not one byte at offset 0 or 4 leave the pre-filled bytes alone.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  /// BusDevice: offset 0 writes data (to a command's parameter or to the keyboard), offset 4
  /// writes a controller command. Other offsets and sizes are ignored.
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// Queues scan codes as if typed on the keyboard. Returns how many leading bytes fit.
  size_t enqueue_keyboard(std::span<const uint8_t> bytes);

  /// A copy of the counters.
  Counters counters() const;

  /// Captures the controller and keyboard state.
  State save_state() const;
  /// Replaces the state with `state` and re-drives IRQ 1. Throws LegacyDeviceError, leaving the
  /// device unchanged, when validate() refuses `state`.
  void restore_state(const State& state);
  /// Checks a State from a snapshot without a device: throws LegacyDeviceError (a SnapshotError)
  /// when a queue is longer than kQueueSize, a pending controller command takes no data byte, a
  /// pending keyboard command takes no parameter, or the scan-code set is not 1-3.
  static void validate(const State& state);

 private:
  /// Returns true when the command pulses the reset line.
  bool command(uint8_t cmd);
  /// Returns true when the data byte asserts the reset line (output port bit 0 cleared).
  bool data(uint8_t value);
  void keyboard_write(uint8_t value);
  void push_controller(uint8_t value, bool aux = false);
  void push_keyboard(uint8_t value);
  uint8_t status() const;
  /// The byte the guest would read next, if any.
  std::optional<OutputByte> front() const;
  bool keyboard_enabled() const;
  bool irq_output() const;
  /// Recomputes IRQ 1; with `new_byte`, lowers and re-raises it so an edge-triggered interrupt
  /// controller sees one edge per byte.
  void update_irq(bool new_byte);

  mutable std::mutex mutex_;
  std::shared_ptr<IrqLine> irq_;
  bool irq_level_ = false;
  ResetCallback on_reset_;

  std::array<uint8_t, 32> ram_{};
  uint8_t output_port_ = 0;
  uint8_t pending_command_ = 0;
  uint8_t keyboard_pending_ = 0;
  uint8_t scancode_set_ = 2;
  uint8_t last_read_ = 0;
  bool last_write_was_command_ = false;
  std::deque<OutputByte> controller_queue_;
  std::deque<uint8_t> keyboard_queue_;
  Counters counters_;
};

}  // namespace forkvm
