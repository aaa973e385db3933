// Where a proxied request wants to go, split from what the guest sent (RFC 9112 §3.2): the
// authority of a CONNECT ("host:port", "[v6]:port") and the absolute URI of a plain HTTP
// request ("http://host[:port]/path?query"). Everything here comes from the guest: the parsers
// accept only these forms and say what is wrong with anything else. The host part is split
// off as written; normalize_host() (egress_rules.hpp) checks it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace forkvm::net {

/// A destination as the guest asked for it.
struct ProxyTarget {
  std::string host;    ///< as written, without IPv6 brackets
  uint16_t port = 0;   ///< 1..65535
  std::string path;    ///< origin-form for the upstream ("/a/b?q"); empty for CONNECT
};

/// What is wrong with a target (for the 400 answer; printable).
struct TargetError {
  std::string what;
};

/// Parses a CONNECT request target: "host:port" or "[v6]:port", port required.
std::variant<ProxyTarget, TargetError> parse_connect_target(std::string_view target);

/// Parses a plain HTTP proxy request target: "http://authority[/path][?query]" (scheme case
/// insensitive, port 80 by default). No user info, no fragment; "https://" is refused (HTTPS
/// goes through CONNECT), and so is an origin-form "/path" (the guest did not talk to a proxy).
std::variant<ProxyTarget, TargetError> parse_absolute_target(std::string_view target);

}  // namespace forkvm::net
