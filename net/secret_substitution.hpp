// The secrets of an egress policy (SecretBinding), checked once, and their substitution into
// the headers of plain HTTP requests.
//
// On a request to a host that one of a binding's `hosts` patterns matches (the same matching
// as a rule's names: exact or "*.suffix"; never an IP literal):
// 1. every occurrence of a bound placeholder in every header value is replaced by the value.
//    One pass, left to right, the longest placeholder first at each position: a placeholder
//    that is a prefix of another ("forkvm-secret-A", "forkvm-secret-AB") never cuts into it,
//    a placeholder of a binding not bound to this host is copied unchanged, and the values put
//    in are never searched again;
// 2. then, for a binding with a `header`, every header of that name (case-insensitive) is
//    removed and one is set to the value, where the first one was (else at the end).
// Requests to any other host are untouched.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forkvm/egress.hpp"
#include "net/host_pattern.hpp"

namespace forkvm::net {

/// A validated SecretBinding.
struct CompiledSecret {
  std::string name;                ///< the guest's environment variable
  std::vector<HostPattern> hosts;  ///< kExact or kSuffix only
  std::string header;              ///< "" or an HTTP token
  std::string placeholder;         ///< never empty ("forkvm-secret-<name>" by default)
  std::string value;               ///< the real value (host memory only)

  /// Whether a normalized host name is one of `hosts`.
  bool bound_to(std::string_view host_name) const noexcept;
};

/// The secrets of one policy, immutable once built.
class SecretSet {
 public:
  /// No secrets.
  SecretSet() = default;
  /// Checks every binding and throws ConfigError "egress secret <index> (<name>): <problem>"
  /// (never showing the value) when:
  /// - the name is not 1..64 of [A-Za-z0-9_] or starts with a digit, or repeats another's;
  /// - there are no hosts, or a host is not a name or "*.suffix" ("*", addresses and CIDR
  ///   blocks are refused: a secret must go to hosts known by name);
  /// - the header is set but is not an HTTP token, or is one the proxy owns (Host,
  ///   Content-Length, Transfer-Encoding, Connection, Upgrade, TE, Trailer, Keep-Alive,
  ///   Proxy-Connection), or another binding sets the same header for an overlapping host;
  /// - the value or the placeholder holds CR, LF or NUL, or the placeholder repeats another's.
  explicit SecretSet(const std::vector<SecretBinding>& bindings);

  /// Substitutes the secrets bound to `host` (as requested; normalized here, an IP literal or
  /// an invalid host gets none) into `headers`, (name, value) in order, names as the guest
  /// sent them (see the top of this file). Returns the names of
  /// the bindings whose value was put in (a header set or a placeholder replaced), in binding
  /// order.
  std::vector<std::string> apply(std::string_view host,
                                 std::vector<std::pair<std::string, std::string>>& headers) const;

  /// Whether some binding is bound to `host` (as requested; normalized here; an IP literal or
  /// an invalid host never is): apply() would put a value in for it.
  bool binds(std::string_view host) const;

  /// (name, placeholder) of every binding, in order: what the guest's environment gets.
  std::vector<std::pair<std::string, std::string>> placeholders() const;

 private:
  std::vector<CompiledSecret> secrets_;
};

}  // namespace forkvm::net
