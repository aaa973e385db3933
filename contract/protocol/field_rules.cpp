#include "contract/protocol/field_rules.hpp"

#include "contract/protocol/messages.hpp"

namespace forkvm::protocol {
namespace {

bool is_alpha(char c) noexcept { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

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
