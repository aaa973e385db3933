#include "net/compiled_rule.hpp"

#include <algorithm>

#include "forkvm/errors.hpp"
#include "net/http_text.hpp"
#include "net/request_path.hpp"

namespace forkvm::net {
namespace {

[[noreturn]] void fail(std::size_t index, const std::string& problem) {
  throw ConfigError("egress rule " + std::to_string(index) + ": " + problem);
}

bool is_method(std::string_view m) noexcept {
  if (!is_http_token(m)) return false;
  return std::none_of(m.begin(), m.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

bool is_path_prefix(std::string_view p) noexcept {
  if (p.empty() || p[0] != '/') return false;
  return std::all_of(p.begin(), p.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

}  // namespace

bool CompiledRule::applies(uint16_t port, std::string_view method, std::string_view path,
                           bool tunnel) const noexcept {
  if (!ports.empty() && std::none_of(ports.begin(), ports.end(), [port](const auto& range) {
        return port >= range.first && port <= range.second;
      })) {
    return false;
  }
  if (tunnel) return methods.empty() && path_prefix.empty();
  if (!methods.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
    return false;
  }
  if (path_prefix.empty()) return true;
  if (!is_plain_path(path)) return action == EgressAction::kDeny;  // conservative both ways
  return path.starts_with(path_prefix);
}

CompiledRule compile_rule(const EgressRule& rule, std::size_t index) {
  CompiledRule out;
  out.action = rule.action;
  PatternCheck host = parse_host_pattern(rule.host);
  if (!host.pattern) fail(index, "host " + in_quotes(rule.host) + ": " + host.error);
  out.host = std::move(*host.pattern);
  for (const auto& [lo, hi] : rule.ports) {
    const std::string range = std::to_string(lo) + "-" + std::to_string(hi);
    if (lo == 0 || hi == 0) fail(index, "port 0 in port range " + range);
    if (lo > hi) fail(index, "inverted port range " + range);
  }
  out.ports = rule.ports;
  for (const std::string& m : rule.methods) {
    if (!is_method(m)) fail(index, "method " + in_quotes(m) + " is not an upper-case HTTP token");
    if (m == "CONNECT") {
      fail(index, "method CONNECT: rules with methods never match a tunnel (leave methods "
                  "empty)");
    }
  }
  out.methods = rule.methods;
  if (!rule.path_prefix.empty() && !is_path_prefix(rule.path_prefix)) {
    fail(index, "path prefix " + in_quotes(rule.path_prefix) +
                    " must start with '/' and be printable ASCII without spaces");
  }
  out.path_prefix = rule.path_prefix;
  EgressRule normalized = rule;
  normalized.host = out.host.text;
  out.text = "rule " + std::to_string(index) + ": " + describe(normalized);
  return out;
}

}  // namespace forkvm::net
