#include "devices/virtio/net/net_state.hpp"

#include "base/json_reader.hpp"
#include "contract/protocol/field_rules.hpp"

namespace forkvm {

nlohmann::json to_json(const NetDevice::State& s) { return {{"mac", NetDevice::mac_text(s.mac)}}; }

NetDevice::State net_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, "net");
  NetDevice::State s;
  const std::string text = r.string("mac", 17);
  const std::optional<NetDevice::Mac> mac = protocol::parse_mac(text);
  if (!mac) r.fail("mac", "is not six hex bytes separated by colons");
  if (const std::string problem = NetDevice::mac_problem(*mac); !problem.empty()) {
    r.fail("mac", problem);
  }
  s.mac = *mac;
  r.finish();
  return s;
}

}  // namespace forkvm
