// The network options of `forkvm run`: --allow-host, --deny-host, --secret and -p. Parsed
// without touching the network or KVM, so usage errors are cheap and testable; the policy
// itself is checked by the sandbox (net/egress_rules.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "forkvm/egress.hpp"

namespace forkvm::cli {

/// Parses --allow-host/--deny-host PATTERN[:PORT] into a rule: PATTERN is an
/// EgressRule::host pattern (a name, "*.suffix", "*", an address or a CIDR block; an IPv6 one
/// in brackets when a port follows, "[::1]:8080"). Throws UsageError.
EgressRule parse_host_rule(const std::string& option, const std::string& value,
                           EgressAction action);

/// Parses --secret NAME@HOST[:HEADER][,file=PATH]: the guest sees a placeholder in $NAME, and
/// requests to HOST (a name or "*.suffix") get the real value (in HEADER, when given, and
/// wherever the placeholder appears in a header). The value is read from the file, else from
/// the host environment variable NAME (`getenv`), never from the command line. Throws
/// UsageError when it is missing.
SecretBinding parse_secret_option(const std::string& value,
                                  const std::function<std::optional<std::string>(
                                      const std::string& name)>& getenv_fn);

/// One -p: where the host listens (a TCP port on 127.0.0.1, or a Unix socket) and the guest port.
struct PublishedPort {
  uint16_t host_port = 0;   ///< 0 with unix_path, or for any free port
  std::string unix_path;    ///< "" for a TCP port
  uint16_t guest_port = 0;
  bool operator==(const PublishedPort&) const = default;
};

/// Parses -p HOSTPORT:GUESTPORT (HOSTPORT 0: any free port) or -p unix:PATH:GUESTPORT (PATH
/// may hold ':'; the guest port is after the last one). Throws UsageError.
PublishedPort parse_publish_option(const std::string& value);

}  // namespace forkvm::cli
