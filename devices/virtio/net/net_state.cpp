#include "devices/virtio/net/net_state.hpp"

#include "base/json_reader.hpp"

namespace forkvm {
namespace {

/// The value of one hex digit, or -1.
int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<NetDevice::Mac> parse_mac(const std::string& text) {
  constexpr size_t kTextBytes = 17;  // "aa:bb:cc:dd:ee:ff"
  if (text.size() != kTextBytes) return std::nullopt;
  NetDevice::Mac mac{};
  for (size_t i = 0; i < mac.size(); ++i) {
    const size_t at = i * 3;
    const int hi = hex_digit(text[at]);
    const int lo = hex_digit(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i + 1 < mac.size() && text[at + 2] != ':') return std::nullopt;
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return mac;
}

nlohmann::json to_json(const NetDevice::State& s) { return {{"mac", NetDevice::mac_text(s.mac)}}; }

NetDevice::State net_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, "net");
  NetDevice::State s;
  const std::string text = r.string("mac", 17);
  const std::optional<NetDevice::Mac> mac = parse_mac(text);
  if (!mac) r.fail("mac", "is not six hex bytes separated by colons");
  if (const std::string problem = NetDevice::mac_problem(*mac); !problem.empty()) {
    r.fail("mac", problem);
  }
  s.mac = *mac;
  r.finish();
  return s;
}

}  // namespace forkvm
