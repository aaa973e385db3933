// The host side of the boot-signal port (contract/boot_signal.hpp): the guest agent writes one
// 32-bit value with `outl` to kBootSignalPort, and this device timestamps it on arrival, keeps
// the first and latest arrival of each code, and tells an observer (the VMM's boot state
// machine). It is forkvm's equivalent of Firecracker's boot-timer device, on a port instead of
// MMIO so the agent needs no /dev/mem mapping.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "contract/boot_signal.hpp"
#include "devices/bus.hpp"

namespace forkvm {

/// The 4-port device at kBootSignalPort.
///
/// Thread safety: all methods may be called from any thread. The record is guarded by one
/// mutex; the observer is called after it is released, under a second mutex of its own, so
/// observer calls never overlap and the observer may query this device.
class BootSignalDevice final : public BusDevice {
 public:
  /// The clock every arrival is stamped with.
  using Clock = std::chrono::steady_clock;
  /// Told about every well-formed signal, on the vCPU thread that wrote it. Must not block for
  /// long (the vCPU waits) and must not write to this device.
  using Observer = std::function<void(BootSignal code, uint32_t arg, Clock::time_point at)>;

  /// Number of ports the device decodes (one 32-bit register).
  static constexpr uint64_t kPortCount = 4;

  /// One arrival of a signal.
  struct Arrival {
    uint32_t arg = 0;      ///< Bits 8-31 of the written value.
    Clock::time_point at;  ///< When the write reached the device.
    /// Field equality.
    bool operator==(const Arrival&) const = default;
  };

  /// Snapshot state of one signal code. Arrival times are not saved: they are steady_clock
  /// points of the process that took the snapshot and mean nothing in another one. A restored
  /// device stamps the arrivals it restores with the time of the restore.
  struct SignalState {
    uint64_t count = 0;      ///< How many times the code arrived (0: never, args are 0).
    uint32_t first_arg = 0;  ///< Argument of the first arrival (24 bits).
    uint32_t last_arg = 0;   ///< Argument of the latest arrival (24 bits).
    /// Field equality.
    bool operator==(const SignalState&) const = default;
  };

  /// Snapshot state: what arrived, per code, and the malformed-write counter.
  struct State {
    SignalState agent_ready;    ///< BootSignal::kAgentReady
    SignalState power_off;      ///< BootSignal::kPowerOff
    SignalState fatal;          ///< BootSignal::kFatal
    uint64_t malformed_writes = 0;  ///< Writes ignored so far.
    /// Field equality.
    bool operator==(const State&) const = default;
  };

  /// Largest argument a signal can carry (bits 8-31 of the written value).
  static constexpr uint32_t kMaxArg = 0x00ff'ffff;

  /// `observer` may be empty (signals are only recorded).
  explicit BootSignalDevice(Observer observer = {});

  /// BusDevice: the agent never reads the port; the pre-filled 0xFF bytes are left as they are.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  /// BusDevice: a 4-byte write at offset 0 is decoded (little-endian, bits 0-7 the code, 8-31
  /// the argument). Anything else, and unknown codes, are counted in malformed_writes().
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// The first arrival of `code` since construction or reset(), if any.
  std::optional<Arrival> first(BootSignal code) const;
  /// The most recent arrival of `code`, if any.
  std::optional<Arrival> last(BootSignal code) const;
  /// How many times `code` arrived.
  uint64_t count(BootSignal code) const;
  /// How many writes were ignored: wrong size or offset, or an unknown code.
  uint64_t malformed_writes() const;
  /// Forgets every arrival (e.g. when a restored VM starts a new boot); keeps the counter of
  /// malformed writes.
  void reset();

  /// Captures what arrived (without times; see SignalState).
  State save_state() const;
  /// Replaces the record with `state`; every restored arrival is stamped `now`. The observer is
  /// not told (these signals were already handled before the snapshot). Throws
  /// LegacyDeviceError (a SnapshotError), leaving the device unchanged, when validate() refuses.
  void restore_state(const State& state, Clock::time_point now = Clock::now());
  /// Checks a State without a device: arguments fit in 24 bits, and a code that never arrived
  /// (count 0) has zero arguments.
  static void validate(const State& state);

 private:
  /// Slot of a known code, or nullopt.
  static std::optional<size_t> slot(uint8_t code);

  struct Record {
    std::optional<Arrival> first;
    std::optional<Arrival> last;
    uint64_t count = 0;
  };

  mutable std::mutex mutex_;
  std::array<Record, 3> records_{};  // indexed by code - 1 (kAgentReady, kPowerOff, kFatal)
  uint64_t malformed_ = 0;

  std::mutex observer_mutex_;  // serializes observer calls; never held together with mutex_
  Observer observer_;
};

}  // namespace forkvm
