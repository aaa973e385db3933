#include "devices/legacy/boot_signal_state.hpp"

#include <string>

#include "devices/state_json.hpp"

namespace forkvm {

namespace {

constexpr std::string_view kComponent = "boot_signal";

nlohmann::json signal_json(const BootSignalDevice::SignalState& s) {
  return {{"count", s.count}, {"first_arg", s.first_arg}, {"last_arg", s.last_arg}};
}

BootSignalDevice::SignalState signal_from_json(const nlohmann::json& parent, std::string_view key) {
  using namespace state_json;
  const std::string where = std::string(kComponent) + "." + std::string(key);
  const nlohmann::json& j = field(parent, kComponent, key);
  expect_object(j, where, {"count", "first_arg", "last_arg"});
  BootSignalDevice::SignalState s;
  s.count = get_uint<uint64_t>(j, where, "count");
  s.first_arg = get_uint<uint32_t>(j, where, "first_arg", BootSignalDevice::kMaxArg);
  s.last_arg = get_uint<uint32_t>(j, where, "last_arg", BootSignalDevice::kMaxArg);
  return s;
}

}  // namespace

nlohmann::json to_json(const BootSignalDevice::State& s) {
  return {{"agent_ready", signal_json(s.agent_ready)},
          {"power_off", signal_json(s.power_off)},
          {"fatal", signal_json(s.fatal)},
          {"malformed_writes", s.malformed_writes}};
}

BootSignalDevice::State boot_signal_state_from_json(const nlohmann::json& j) {
  using namespace state_json;
  expect_object(j, kComponent, {"agent_ready", "power_off", "fatal", "malformed_writes"});
  BootSignalDevice::State s;
  s.agent_ready = signal_from_json(j, "agent_ready");
  s.power_off = signal_from_json(j, "power_off");
  s.fatal = signal_from_json(j, "fatal");
  s.malformed_writes = get_uint<uint64_t>(j, kComponent, "malformed_writes");
  BootSignalDevice::validate(s);  // a count of 0 with arguments; throws a SnapshotError
  return s;
}

}  // namespace forkvm
