#include "contract/protocol/field_rules.hpp"

#include "contract/protocol/messages.hpp"

namespace forkvm::protocol {
namespace {

bool is_alpha(char c) noexcept { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
/// The value of hex digit `c`, or -1.
int hex_value(char c) noexcept {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool valid_env_key(std::string_view key) noexcept {
  if (key.empty() || is_digit(key.front())) return false;
  for (char c : key) {
    if (!is_alpha(c) && !is_digit(c) && c != '_') return false;
  }
  return true;
}

bool valid_env_value(std::string_view value) noexcept {
  return value.find_first_of(std::string_view("\0\n\r", 3)) == std::string_view::npos;
}

bool valid_secret_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxSecretNameBytes) return false;
  for (char c : name) {
    if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-') return false;
  }
  return true;
}

bool valid_hostname(std::string_view name) noexcept {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.') return false;
  }
  return true;
}

std::optional<MacAddress> parse_mac(std::string_view text) noexcept {
  constexpr size_t kLength = 17;  // 6 groups of 2 digits and 5 colons
  if (text.size() != kLength) return std::nullopt;
  MacAddress mac{};
  for (size_t i = 0; i < mac.size(); ++i) {
    const size_t at = i * 3;
    const int hi = hex_value(text[at]);
    const int lo = hex_value(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i + 1 < mac.size() && text[at + 2] != ':') return std::nullopt;
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return mac;
}

std::string format_mac(const MacAddress& mac) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i != 0) text += ':';
    text += kDigits[mac[i] >> 4];
    text += kDigits[mac[i] & 0xf];
  }
  return text;
}

bool valid_unicast_mac(const MacAddress& mac) noexcept {
  if ((mac[0] & 1) != 0) return false;
  for (uint8_t b : mac) {
    if (b != 0) return true;
  }
  return false;
}

std::optional<std::string> path_problem(std::string_view path) {
  if (path.empty()) return "the path is empty";
  if (path.front() != '/') return "the path is not absolute: " + std::string(path);
  if (path.size() > kMaxPathBytes) {
    return "the path is " + std::to_string(path.size()) + " bytes, over the limit of " +
           std::to_string(kMaxPathBytes);
  }
  if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
  return std::nullopt;
}

}  // namespace forkvm::protocol
