// A Bus maps address ranges to devices; devices see offsets into their own range, never
// absolute addresses (the shape of Firecracker's vstate/bus.rs). One Bus serves port I/O and
// one serves MMIO. Ranges are half-open [base, base + len), checked for overflow and overlap
// when inserted. An access nobody claims is counted and otherwise ignored: a guest probing
// empty ports or addresses is normal, never fatal.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "forkvm/errors.hpp"

namespace forkvm {

/// A device on a Bus. read/write receive the offset from the start of the device's range and
/// the access width as the span's size (1, 2, 4 or 8; more for rep string I/O done one element
/// at a time by the caller). Implementations must not throw on any offset or size: both come
/// from the guest. One that throws anyway (the host out of memory, a bug) stops its VM: the
/// exception goes through Bus::read/write to the vCPU thread, which stops the VM with
/// StopReason::kDeviceError (vmm/vcpu_thread.cpp).
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  /// Fills `data` for a read at `offset`. `data` arrives pre-filled (0xFF on the port bus, 0 on
  /// the MMIO bus), so a device may leave bytes it does not implement untouched.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  /// Handles a write of `data` at `offset`.
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

/// Thrown by Bus::insert for an empty, overflowing or overlapping range.
class BusError : public Error {
 public:
  using Error::Error;
};

/// Address-range to device map. Insertions happen while the machine is assembled; lookups
/// happen concurrently from vCPU threads and need no lock because the map no longer changes.
class Bus {
 public:
  /// `fill` is the value unclaimed reads return in every byte (0xFF for ports, 0 for MMIO).
  explicit Bus(std::string name, uint8_t fill) : name_(std::move(name)), fill_(fill) {}

  /// Maps [base, base + len) to `device`. Throws BusError when len is 0, the range wraps past
  /// 2^64, or it overlaps a range already mapped.
  void insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);

  /// Performs a read; `data` is pre-filled with the fill byte first. Returns false (and counts
  /// it) when no device claims the whole access. Throws only what the device throws (see
  /// BusDevice).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  /// Performs a write. Returns false (and counts it) when no device claims the whole access.
  /// Throws only what the device throws (see BusDevice).
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

  /// How many accesses no device claimed.
  uint64_t unmapped_accesses() const noexcept { return unmapped_.load(std::memory_order_relaxed); }
  /// Name used in errors and logs ("pio", "mmio").
  const std::string& name() const noexcept { return name_; }

 private:
  struct Entry {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  /// Finds the device whose range holds all of [addr, addr + size); sets `offset`.
  BusDevice* find(uint64_t addr, uint64_t size, uint64_t& offset) const noexcept;
  void count_unmapped(bool is_write, uint64_t addr, uint64_t size) const noexcept;

  std::string name_;
  uint8_t fill_;
  std::map<uint64_t, Entry> ranges_;  // keyed by base
  mutable std::atomic<uint64_t> unmapped_{0};
};

}  // namespace forkvm
