#include "devices/legacy/boot_signal.hpp"

#include <string>

#include "devices/legacy/legacy_device_error.hpp"

namespace forkvm {

// records_ is indexed by code - 1; the codes must stay 1, 2, 3.
static_assert(static_cast<uint8_t>(BootSignal::kAgentReady) == 1);
static_assert(static_cast<uint8_t>(BootSignal::kPowerOff) == 2);
static_assert(static_cast<uint8_t>(BootSignal::kFatal) == 3);

BootSignalDevice::BootSignalDevice(Observer observer) : observer_(std::move(observer)) {}

std::optional<size_t> BootSignalDevice::slot(uint8_t code) {
  switch (static_cast<BootSignal>(code)) {
    case BootSignal::kAgentReady:
    case BootSignal::kPowerOff:
    case BootSignal::kFatal:
      return static_cast<size_t>(code) - 1;
  }
  return std::nullopt;
}

void BootSignalDevice::read(uint64_t /*offset*/, std::span<uint8_t> /*data*/) {
  // Write-only register: reads keep the port bus's 0xFF fill.
}

void BootSignalDevice::write(uint64_t offset, std::span<const uint8_t> data) {
  // Stamp first, before any lock, so contention does not skew the boot timeline.
  const Clock::time_point at = Clock::now();
  // Guest-controlled: offset, size and value. The protocol is exactly one `outl` at the base.
  if (offset != 0 || data.size() != 4) {
    std::lock_guard lock(mutex_);
    ++malformed_;
    return;
  }
  // Port I/O data is little-endian (x86): byte 0 is the code.
  const uint32_t value = static_cast<uint32_t>(data[0]) | (static_cast<uint32_t>(data[1]) << 8) |
                         (static_cast<uint32_t>(data[2]) << 16) |
                         (static_cast<uint32_t>(data[3]) << 24);
  const uint8_t code = static_cast<uint8_t>(value & 0xff);
  const uint32_t arg = value >> 8;
  const std::optional<size_t> index = slot(code);
  {
    std::lock_guard lock(mutex_);
    if (!index) {
      ++malformed_;
      return;
    }
    Record& record = records_[*index];
    if (!record.first) record.first = Arrival{arg, at};
    record.last = Arrival{arg, at};
    ++record.count;
  }
  if (!observer_) return;
  std::lock_guard observer_lock(observer_mutex_);
  try {
    observer_(static_cast<BootSignal>(code), arg, at);
  } catch (...) {
    // The VMM's observer failing must not unwind into the vCPU loop.
  }
}

std::optional<BootSignalDevice::Arrival> BootSignalDevice::first(BootSignal code) const {
  const std::optional<size_t> index = slot(static_cast<uint8_t>(code));
  if (!index) return std::nullopt;
  std::lock_guard lock(mutex_);
  return records_[*index].first;
}

std::optional<BootSignalDevice::Arrival> BootSignalDevice::last(BootSignal code) const {
  const std::optional<size_t> index = slot(static_cast<uint8_t>(code));
  if (!index) return std::nullopt;
  std::lock_guard lock(mutex_);
  return records_[*index].last;
}

uint64_t BootSignalDevice::count(BootSignal code) const {
  const std::optional<size_t> index = slot(static_cast<uint8_t>(code));
  if (!index) return 0;
  std::lock_guard lock(mutex_);
  return records_[*index].count;
}

uint64_t BootSignalDevice::malformed_writes() const {
  std::lock_guard lock(mutex_);
  return malformed_;
}

void BootSignalDevice::reset() {
  std::lock_guard lock(mutex_);
  records_ = {};
}

namespace {

void check_signal(const BootSignalDevice::SignalState& s, const char* name) {
  auto reject = [name](const std::string& what) {
    throw LegacyDeviceError(std::string("boot signal: invalid state: ") + name + ": " + what);
  };
  if (s.first_arg > BootSignalDevice::kMaxArg) reject("first_arg has more than 24 bits");
  if (s.last_arg > BootSignalDevice::kMaxArg) reject("last_arg has more than 24 bits");
  if (s.count == 0 && (s.first_arg != 0 || s.last_arg != 0)) {
    reject("arguments recorded for a signal that never arrived");
  }
}

}  // namespace

void BootSignalDevice::validate(const State& state) {
  check_signal(state.agent_ready, "agent_ready");
  check_signal(state.power_off, "power_off");
  check_signal(state.fatal, "fatal");
}

BootSignalDevice::State BootSignalDevice::save_state() const {
  std::lock_guard lock(mutex_);
  auto one = [](const Record& r) {
    SignalState s;
    s.count = r.count;
    s.first_arg = r.first ? r.first->arg : 0;
    s.last_arg = r.last ? r.last->arg : 0;
    return s;
  };
  State st;
  st.agent_ready = one(records_[0]);
  st.power_off = one(records_[1]);
  st.fatal = one(records_[2]);
  st.malformed_writes = malformed_;
  return st;
}

void BootSignalDevice::restore_state(const State& state, Clock::time_point now) {
  validate(state);
  auto one = [now](const SignalState& s) {
    Record r;
    r.count = s.count;
    if (s.count > 0) {
      r.first = Arrival{s.first_arg, now};
      r.last = Arrival{s.last_arg, now};
    }
    return r;
  };
  std::lock_guard lock(mutex_);
  records_[0] = one(state.agent_ready);
  records_[1] = one(state.power_off);
  records_[2] = one(state.fatal);
  malformed_ = state.malformed_writes;
}

}  // namespace forkvm
