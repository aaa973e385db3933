#include "net/request_target.hpp"

#include <cctype>

namespace forkvm::net {
namespace {

// Longest target accepted (beside the header limit): a URI longer than this is refused.
constexpr std::size_t kMaxTargetBytes = 8192;

bool printable_without_space(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// "host:port" / "[v6]:port" / "host" (when the port may be absent).
std::variant<ProxyTarget, TargetError> split_authority(std::string_view authority,
                                                         bool port_required,
                                                         uint16_t default_port) {
  if (authority.empty()) return TargetError{"empty host"};
  if (authority.find('@') != std::string_view::npos) {
    return TargetError{"user info in the URI is not allowed"};
  }
  ProxyTarget out;
  std::string_view rest;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return TargetError{"unterminated IPv6 literal"};
    out.host = std::string(authority.substr(1, close - 1));
    rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return TargetError{"junk after an IPv6 literal"};
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(':') != colon) {
      return TargetError{"an IPv6 address must be in brackets"};
    }
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) rest = authority.substr(colon);
  }
  if (out.host.empty()) return TargetError{"empty host"};
  if (rest.empty()) {
    if (port_required) return TargetError{"the port is missing"};
    out.port = default_port;
    return out;
  }
  const std::string_view digits = rest.substr(1);
  if (digits.empty() || digits.size() > 5) return TargetError{"bad port"};
  uint32_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return TargetError{"bad port"};
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return TargetError{"port out of range"};
  out.port = static_cast<uint16_t>(port);
  return out;
}

}  // namespace

std::variant<ProxyTarget, TargetError> parse_connect_target(std::string_view target) {
  if (target.size() > kMaxTargetBytes) return TargetError{"target too long"};
  if (!printable_without_space(target)) return TargetError{"bad characters in the target"};
  if (target.find('/') != std::string_view::npos) {
    return TargetError{"CONNECT wants host:port, not a URI"};
  }
  return split_authority(target, true, 0);
}

std::variant<ProxyTarget, TargetError> parse_absolute_target(std::string_view target) {
  if (target.size() > kMaxTargetBytes) return TargetError{"target too long"};
  if (!printable_without_space(target)) return TargetError{"bad characters in the target"};
  if (!target.empty() && target.front() == '/') {
    return TargetError{"an origin-form target: this is a proxy, send the absolute URI"};
  }
  const auto scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return TargetError{"not an absolute http:// URI"};
  std::string scheme(target.substr(0, scheme_end));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "https") return TargetError{"https:// goes through CONNECT"};
  if (scheme != "http") return TargetError{"unsupported scheme " + scheme};
  std::string_view rest = target.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) return TargetError{"a fragment in the URI"};
  const auto path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  auto parsed = split_authority(authority, false, 80);
  if (auto* ok = std::get_if<ProxyTarget>(&parsed)) {
    if (path_start == std::string_view::npos) {
      ok->path = "/";
    } else if (rest[path_start] == '?') {
      ok->path = "/" + std::string(rest.substr(path_start));
    } else {
      ok->path = std::string(rest.substr(path_start));
    }
  }
  return parsed;
}

}  // namespace forkvm::net
