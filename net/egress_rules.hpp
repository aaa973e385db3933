// The compiled egress policy: an EgressPolicy checked once, then asked, per request, whether
// it may go out and with which secrets.
//
// How a request is decided (first match wins; no match denies):
// 1. The proxy normalizes the host (host_name.hpp) and builds a RequestTarget.
// 2. decide_by_name() runs before DNS. For an IP literal it is final. For a name it is either
//    a definitive deny (a deny rule matching by name, or no rule that could match: no DNS
//    lookup then), or kNeedsAddress: an IP/CIDR rule comes first (only the address can say),
//    or a rule allows the name (the address may still be special, see 4).
// 3. The proxy resolves the name and calls decide() with each address it is about to connect
//    to; only an allowed address is connected.
// 4. decide() walks the rules in order. A name rule (exact, "*.suffix", "*") matches by name;
//    an IP/CIDR rule matches when the address is in its block; both also by port, method and
//    path (compiled_rule.hpp). When the address is special (special_address.hpp), an ALLOW by a
//    name rule does not count and the walk goes on: only an IP/CIDR allow rule reaches a
//    special address (no DNS rebinding). A DENY always counts.
// For an IP literal host, name rules other than "*" never match, and "*" matches only a public
// address. Ports are inclusive ranges (empty: any). Methods are compared exactly. A rule with
// methods or a path prefix never matches a CONNECT.
//
// The object is immutable after construction, so one may be shared between threads; the proxy
// holds a std::shared_ptr<const CompiledPolicy> and swaps it atomically to change the policy.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forkvm/egress.hpp"
#include "net/compiled_rule.hpp"
#include "net/host_name.hpp"
#include "net/secret_substitution.hpp"

namespace forkvm::net {

/// One request as the policy sees it.
struct RequestTarget {
  /// The host as normalize_host() gave it (NormalizedHost::text). It is normalized again
  /// here, so a host that is invalid or was never normalized cannot slip past a name rule:
  /// such a host is denied.
  std::string host;
  /// The destination port (0 is always denied).
  uint16_t port = 0;
  /// "CONNECT" for an HTTPS tunnel, else the plain HTTP method as sent ("GET").
  std::string method;
  /// The request path as sent ("/simple/x?y": the query is ignored); empty for CONNECT.
  std::string path;
};

/// The final word on one request.
struct Decision {
  bool allowed = false;
  /// The index of the deciding rule, or -1 (no rule matched, or the request was refused before
  /// the rules).
  int rule = -1;
  /// "rule <index>: <describe(rule)>" when a rule decided; else why it was denied:
  /// "no rule matches (default deny)", "<host> resolves to <addr> (<kind>), which only an
  /// IP/CIDR rule can allow", "<addr> is a special address (<kind>), which only an IP/CIDR rule
  /// can allow" (an IP literal host), "invalid host: ...", "port 0 is not a destination" or
  /// "address <a> is not the requested address <b>". Printable ASCII, never a secret.
  std::string text;
};

/// What decide_by_name() can say before DNS.
enum class NameVerdict {
  kAllowed,       ///< final (an IP literal host only)
  kDenied,        ///< final: no DNS lookup needed
  kNeedsAddress,  ///< resolve the name, then call decide() with each address
};

/// decide_by_name()'s answer. For kAllowed and kDenied, `decision` is final. For
/// kNeedsAddress, `decision.allowed` is false, `decision.rule` is the rule that needs the
/// address (an IP/CIDR rule, or the name rule that allows the name pending the address check)
/// and `decision.text` says so.
struct PreDecision {
  NameVerdict verdict = NameVerdict::kDenied;
  Decision decision;
};

/// An EgressPolicy, validated and parsed. Immutable; cheap to share through
/// std::shared_ptr<const CompiledPolicy> (a copy copies the rules and the secret values).
class CompiledPolicy {
 public:
  /// Checks every rule (compile_rule(): ConfigError "egress rule <index>: ..."), the limits
  /// (ConfigError "egress limits: <field> must be nonzero": every count, size and timeout must
  /// be positive) and the secrets (SecretSet: ConfigError "egress secret <index> (<name>): ...").
  explicit CompiledPolicy(EgressPolicy policy);

  /// The verdict before DNS (see the top of this file).
  PreDecision decide_by_name(const RequestTarget& target) const;

  /// The final decision for `target` connecting to `resolved` (for an IP literal host: the
  /// literal itself; a different address is denied).
  Decision decide(const RequestTarget& target, const boost::asio::ip::address& resolved) const;

  /// Puts the secrets bound to `host` into `headers` (SecretSet::apply: placeholders replaced,
  /// bound headers set); other hosts' headers are untouched. Returns the names of the secrets
  /// applied. Only for headers the proxy itself writes (a plain HTTP request, or one inside an
  /// intercepted CONNECT): an untouched tunnel is never changed.
  std::vector<std::string> apply_secrets(
      std::string_view host, std::vector<std::pair<std::string, std::string>>& headers) const;

  /// Whether a secret is bound to `host` (SecretSet::binds): the proxy intercepts an HTTPS
  /// CONNECT to such a host to put the secrets into the requests inside.
  bool binds_secrets(std::string_view host) const;

  /// (name, placeholder) of every secret: the guest's environment variables.
  std::vector<std::pair<std::string, std::string>> placeholders() const;

  /// The limits (all nonzero).
  const EgressLimits& limits() const noexcept { return limits_; }
  /// The number of rules.
  std::size_t rule_count() const noexcept { return rules_.size(); }
  /// "rule <index>: <describe(rule)>" with the host normalized; `index` < rule_count().
  const std::string& rule_text(std::size_t index) const { return rules_.at(index).text; }

 private:
  std::vector<CompiledRule> rules_;
  EgressLimits limits_;
  SecretSet secrets_;
};

}  // namespace forkvm::net
