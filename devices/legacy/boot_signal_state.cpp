#include "devices/legacy/boot_signal_state.hpp"

#include <string>

#include "base/json_reader.hpp"

namespace forkvm {

namespace {

constexpr std::string_view kBootSignalComponent = "boot_signal";

nlohmann::json signal_json(const BootSignalDevice::SignalState& s) {
  return {{"count", s.count}, {"first_arg", s.first_arg}, {"last_arg", s.last_arg}};
}

BootSignalDevice::SignalState signal_from_json(JsonReader& parent, const char* key) {
  JsonReader r = parent.object(key);
  BootSignalDevice::SignalState s;
  s.count = r.num<uint64_t>("count");
  s.first_arg = r.num<uint32_t>("first_arg", 0, BootSignalDevice::kMaxArg);
  s.last_arg = r.num<uint32_t>("last_arg", 0, BootSignalDevice::kMaxArg);
  r.finish();
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
  JsonReader r(j, std::string(kBootSignalComponent));
  BootSignalDevice::State s;
  s.agent_ready = signal_from_json(r, "agent_ready");
  s.power_off = signal_from_json(r, "power_off");
  s.fatal = signal_from_json(r, "fatal");
  s.malformed_writes = r.num<uint64_t>("malformed_writes");
  r.finish();
  BootSignalDevice::validate(s);  // a count of 0 with arguments; throws a SnapshotError
  return s;
}

}  // namespace forkvm
