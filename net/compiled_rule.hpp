// One EgressRule, checked and parsed once (by CompiledPolicy's constructor), and the parts of
// matching that do not depend on the host: port, method and path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forkvm/egress.hpp"
#include "net/host_pattern.hpp"

namespace forkvm::net {

/// A validated EgressRule.
struct CompiledRule {
  EgressAction action = EgressAction::kAllow;
  HostPattern host;
  std::vector<std::pair<uint16_t, uint16_t>> ports;  ///< inclusive, each 1..65535, lo <= hi
  std::vector<std::string> methods;                  ///< upper-case tokens, never "CONNECT"
  std::string path_prefix;                           ///< "" or starting with '/'
  std::string text;  ///< "rule <index>: " + describe(the rule with its host normalized)

  /// Whether the rule's port, method and path conditions hold for a request. `tunnel` is an
  /// HTTPS CONNECT: a rule with methods or a path prefix never matches one. `path` is the
  /// request path without its query (see request_path.hpp for paths that are not plain).
  bool applies(uint16_t port, std::string_view method, std::string_view path,
               bool tunnel) const noexcept;
};

/// Checks `rule` and parses it; throws ConfigError "egress rule <index>: <problem>" when:
/// - the host is not a valid pattern (host_pattern.hpp: empty, bad name, "*." with nothing
///   after, a numeric trick, a CIDR prefix out of range or with host bits set, ...);
/// - a port range has a 0 in it or is inverted (first > second);
/// - a method is not an upper-case HTTP token, or is "CONNECT" (rules with methods never match
///   a tunnel: leave methods empty to allow CONNECT);
/// - the path prefix does not start with '/' or holds a space, a control or a non-ASCII byte.
CompiledRule compile_rule(const EgressRule& rule, std::size_t index);

}  // namespace forkvm::net
