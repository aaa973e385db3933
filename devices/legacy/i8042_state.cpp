#include "devices/legacy/i8042_state.hpp"

#include <algorithm>
#include <string>

#include "base/json_reader.hpp"

namespace forkvm {

namespace {
constexpr std::string_view kI8042Component = "i8042";
}  // namespace

nlohmann::json to_json(const I8042::State& s) {
  nlohmann::json controller = nlohmann::json::array();
  for (const auto& b : s.controller_queue) controller.push_back({{"value", b.value}, {"aux", b.aux}});
  return {{"ram", json_blob(s.ram)},
          {"output_port", s.output_port},
          {"pending_command", s.pending_command},
          {"keyboard_pending", s.keyboard_pending},
          {"scancode_set", s.scancode_set},
          {"last_read", s.last_read},
          {"last_write_was_command", s.last_write_was_command},
          {"controller_queue", std::move(controller)},
          {"keyboard_queue", json_blob(s.keyboard_queue)}};
}

I8042::State i8042_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, std::string(kI8042Component));
  I8042::State s;
  const std::vector<uint8_t> ram = r.blob("ram", s.ram.size(), s.ram.size());
  std::copy(ram.begin(), ram.end(), s.ram.begin());
  s.output_port = r.num<uint8_t>("output_port");
  s.pending_command = r.num<uint8_t>("pending_command");
  s.keyboard_pending = r.num<uint8_t>("keyboard_pending");
  s.scancode_set = r.num<uint8_t>("scancode_set");
  s.last_read = r.num<uint8_t>("last_read");
  s.last_write_was_command = r.boolean("last_write_was_command");
  const nlohmann::json& controller = r.array("controller_queue", I8042::kQueueSize);
  for (size_t i = 0; i < controller.size(); ++i) {
    JsonReader e(controller[i], r.path("controller_queue[" + std::to_string(i) + "]"));
    s.controller_queue.push_back({e.num<uint8_t>("value"), e.boolean("aux")});
    e.finish();
  }
  s.keyboard_queue = r.blob("keyboard_queue", 0, I8042::kQueueSize);
  r.finish();
  I8042::validate(s);  // pending commands and the scan-code set; throws a SnapshotError
  return s;
}

}  // namespace forkvm
