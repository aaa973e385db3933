// Legacy ports that Linux touches on a PC but that forkvm does not emulate. Claiming them with a
// no-op device gives each a defined read value and keeps them out of the bus's "unmapped access"
// counter and log, so that counter only shows accesses nobody expected. Every range is listed
// with the reason it is here; ports KVM emulates in the kernel are listed separately and must
// never be put on the user-space bus (their exits never reach it, and a claim would only hide a
// misconfigured irqchip/PIT).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "devices/bus.hpp"

namespace forkvm {

/// One range of legacy I/O ports and what reading it returns.
struct StubPortRange {
  uint16_t base;    ///< First port.
  uint16_t length;  ///< Number of ports.
  /// Byte every read returns; std::nullopt leaves the port bus's 0xFF fill ("nothing here").
  std::optional<uint8_t> read_value;
  std::string_view name;    ///< Short name for logs, e.g. "cmos".
  std::string_view reason;  ///< Why the range is claimed (or, for in-kernel ranges, who owns it).
};

/// The ranges insert_legacy_stub_ports() claims, in ascending port order.
std::span<const StubPortRange> legacy_stub_port_ranges() noexcept;

/// Ranges KVM emulates in the kernel once KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (with
/// KVM_PIT_SPEAKER_DUMMY) have run: the 8259 PICs and their ELCR, the 8254 PIT and port 0x61.
/// None of them may appear on the user-space port bus. For documentation and tests.
std::span<const StubPortRange> in_kernel_port_ranges() noexcept;

/// A BusDevice that ignores writes and answers reads with a fixed byte (or the bus fill).
/// Stateless apart from two counters, so it needs no lock and no snapshot state.
class StubPorts final : public BusDevice {
 public:
  /// `read_value` as in StubPortRange::read_value.
  explicit StubPorts(std::optional<uint8_t> read_value) : read_value_(read_value) {}

  /// BusDevice: fills every byte with the read value (any offset or size), or leaves the fill.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  /// BusDevice: discards the write.
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// Reads seen so far.
  uint64_t reads() const noexcept { return reads_.load(std::memory_order_relaxed); }
  /// Writes seen so far.
  uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }

 private:
  std::optional<uint8_t> read_value_;
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> writes_{0};
};

/// Creates one StubPorts per entry of legacy_stub_port_ranges() and inserts it into `bus`.
/// Throws BusError if one of the ranges is already taken (e.g. a COM2 UART was registered).
void insert_legacy_stub_ports(Bus& bus);

}  // namespace forkvm
