#include "devices/legacy/i8042_state.hpp"

#include <algorithm>
#include <string>

#include "devices/state_json.hpp"

namespace forkvm {

namespace {
constexpr std::string_view kComponent = "i8042";
}  // namespace

nlohmann::json to_json(const I8042::State& s) {
  nlohmann::json controller = nlohmann::json::array();
  for (const auto& b : s.controller_queue) controller.push_back({{"value", b.value}, {"aux", b.aux}});
  return {{"ram", state_json::blob(s.ram)},
          {"output_port", s.output_port},
          {"pending_command", s.pending_command},
          {"keyboard_pending", s.keyboard_pending},
          {"scancode_set", s.scancode_set},
          {"last_read", s.last_read},
          {"last_write_was_command", s.last_write_was_command},
          {"controller_queue", std::move(controller)},
          {"keyboard_queue", state_json::blob(s.keyboard_queue)}};
}

I8042::State i8042_state_from_json(const nlohmann::json& j) {
  using namespace state_json;
  expect_object(j, kComponent,
                {"ram", "output_port", "pending_command", "keyboard_pending", "scancode_set",
                 "last_read", "last_write_was_command", "controller_queue", "keyboard_queue"});
  I8042::State s;
  const std::vector<uint8_t> ram = get_blob(j, kComponent, "ram", s.ram.size());
  if (ram.size() != s.ram.size()) {
    fail(kComponent, "ram", std::to_string(ram.size()) + " bytes, expected " +
                                std::to_string(s.ram.size()));
  }
  std::copy(ram.begin(), ram.end(), s.ram.begin());
  s.output_port = get_uint<uint8_t>(j, kComponent, "output_port");
  s.pending_command = get_uint<uint8_t>(j, kComponent, "pending_command");
  s.keyboard_pending = get_uint<uint8_t>(j, kComponent, "keyboard_pending");
  s.scancode_set = get_uint<uint8_t>(j, kComponent, "scancode_set");
  s.last_read = get_uint<uint8_t>(j, kComponent, "last_read");
  s.last_write_was_command = get_bool(j, kComponent, "last_write_was_command");
  const nlohmann::json& controller =
      get_array(j, kComponent, "controller_queue", I8042::kQueueSize);
  for (size_t i = 0; i < controller.size(); ++i) {
    const std::string where = std::string(kComponent) + ".controller_queue[" + std::to_string(i) + "]";
    expect_object(controller[i], where, {"value", "aux"});
    s.controller_queue.push_back(
        {get_uint<uint8_t>(controller[i], where, "value"), get_bool(controller[i], where, "aux")});
  }
  s.keyboard_queue = get_blob(j, kComponent, "keyboard_queue", I8042::kQueueSize);
  I8042::validate(s);  // pending commands and the scan-code set; throws a SnapshotError
  return s;
}

}  // namespace forkvm
