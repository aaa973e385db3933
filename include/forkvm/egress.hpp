// Where a sandbox may connect to, and with which secrets: the policy of the host-side egress
// proxy (SandboxConfig::egress).
//
// In the guest the agent listens on 127.0.0.1:3128 and every exec gets HTTP_PROXY,
// HTTPS_PROXY, http_proxy, https_proxy and NO_PROXY pointing there (unless the caller sets
// them); each connection is carried over vsock to the host, where the proxy applies this
// policy. Plain HTTP requests are checked by host, port, method and path; an HTTPS CONNECT by
// host and port, then tunnelled untouched, unless the host has secret bindings: then the proxy
// intercepts it (TLS with the guest under a per-sandbox CA that the guest trusts, TLS to the
// real server verified against the host's trust store and EgressConfig::upstream_ca_file),
// and each request inside is checked and given its secrets like a plain HTTP one. DNS is
// resolved on the host and the address that is checked is the one connected to.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "forkvm/errors.hpp"

namespace forkvm {

/// What a matching rule does.
enum class EgressAction { kAllow, kDeny };

/// One rule of an EgressPolicy. A request matches when every field that is set matches.
struct EgressRule {
  EgressAction action = EgressAction::kAllow;
  /// Which destination:
  /// - a host name, matched exactly and case-insensitively, one trailing dot ignored
  ///   ("pypi.org"); names that resolvers would read as addresses ("127.1", "0x7f.0.0.1",
  ///   "2130706433", "017.0.0.1", any name whose last label is numeric) are refused;
  /// - "*.suffix": any name below the suffix, not the suffix itself ("*.github.com" matches
  ///   "api.github.com" and "a.b.github.com", not "github.com");
  /// - "*": any host name, but never a private, loopback, link-local, metadata or other
  ///   special address (see below);
  /// - an IP literal ("10.0.0.5", "::1", IPv6 without brackets or zone) or a CIDR block
  ///   ("10.0.0.0/8", "fd00::/8"; no bits set after the prefix): matches a request for that
  ///   address and a host name whose resolved address is in it. IPv4-mapped addresses
  ///   (::ffff:a.b.c.d) are the IPv4 address, in rules and in requests.
  /// Special addresses (private, unique-local, loopback, link-local, the metadata addresses
  /// 169.254.169.254 and fd00:ec2::254, CGNAT, unspecified, multicast, broadcast, reserved
  /// ranges including documentation and benchmarking, and the IPv6 forms embedding such an
  /// IPv4 address: mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are reached only
  /// through an allow rule that names the address or a block holding it: a host name allowed
  /// by name (or by "*") that resolves to one is refused (no DNS rebinding). Deny rules always
  /// apply.
  std::string host;
  /// Destination ports, as inclusive ranges (1..65535, first <= second); empty: any port.
  std::vector<std::pair<uint16_t, uint16_t>> ports;
  /// HTTP methods (upper case, "GET"; compared exactly; not "CONNECT"); empty: any. A rule
  /// with methods or a path prefix checks plain HTTP only: it never matches an HTTPS CONNECT,
  /// whose requests the proxy cannot see. (Requests inside an intercepted CONNECT, to a host
  /// with secret bindings, are checked with their method and path too.)
  std::vector<std::string> methods;
  /// Path prefix of a plain HTTP request ("/simple/"), a byte prefix of the path before any
  /// query ("/simple" also matches "/simplex"); empty: any path. A path that a server might
  /// read as another one (a "." or ".." segment, "//", a backslash, %2e, %2f or %5c) never
  /// matches an allow rule with a path prefix and always matches a deny rule with one.
  std::string path_prefix;
};

/// Limits of the egress proxy, per sandbox. Every one must be nonzero (positive).
struct EgressLimits {
  /// Guest connections open at once; more are answered 503 and closed.
  uint32_t max_connections = 64;
  /// Largest request header block (request line and headers) from the guest.
  uint32_t max_header_bytes = 64 * 1024;
  /// Bytes one connection may carry, both directions together; then it is closed.
  uint64_t max_bytes_per_connection = 4ull << 30;
  /// A connection with no byte moving either way for this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
  /// Longest life of one connection.
  std::chrono::milliseconds total_timeout{600000};
  /// Resolving the host and connecting to it.
  std::chrono::milliseconds connect_timeout{10000};
};

/// A secret the guest only ever sees as a placeholder. On plain HTTP requests to one of
/// `hosts`, and on HTTPS requests to them (the proxy intercepts a CONNECT to a bound host; see
/// the top of this file), the proxy puts the real value in: it sets `header` to the value when `header` is
/// set, and it replaces `placeholder` wherever it appears in a request header value. Requests
/// to any other host carry the placeholder unchanged. The value is never written into the
/// guest, a snapshot, a log or an error message. The guest sees the placeholder in the
/// environment variable `name` (set by the Sandbox at create).
struct SecretBinding {
  /// The environment variable the guest sees the placeholder in: 1..64 of [A-Za-z0-9_], not
  /// starting with a digit.
  std::string name;
  /// The hosts that get the real value, as EgressRule::host patterns (names and "*.suffix";
  /// not "*", addresses or blocks). At least one.
  std::vector<std::string> hosts;
  /// A request header set to the value on requests to `hosts` ("Authorization" with a value
  /// of "Bearer ..."), replacing every header of that name (case-insensitive); empty: none.
  /// An HTTP token, not one the proxy writes (Host, Content-Length, Transfer-Encoding,
  /// Connection, Upgrade, TE, Trailer, Keep-Alive, Proxy-Connection), and not one another
  /// binding sets for an overlapping host.
  std::string header;
  /// What the guest sees; empty: "forkvm-secret-<name>". Unique among the bindings; no CR,
  /// LF or NUL.
  std::string placeholder;
  /// The real value (host memory only); no CR, LF or NUL.
  std::string value;
};

/// A sandbox's egress policy: the rules in order (the first that matches decides; no match
/// denies), the limits and the secrets.
struct EgressPolicy {
  std::vector<EgressRule> rules;
  EgressLimits limits;
  std::vector<SecretBinding> secrets;
};

/// One audited request: a plain HTTP request, a CONNECT tunnel, or a request refused before
/// either (then `allowed` is false and `rule` says why).
struct EgressEvent {
  std::chrono::system_clock::time_point time;  ///< when the request arrived
  std::string method;                          ///< "GET", "CONNECT", ... ("" if unparsable)
  /// The request's path without its query (printable, at most 256 characters); "" for a
  /// CONNECT tunnel.
  std::string path;
  std::string host;                            ///< as requested (a name or an address)
  uint16_t port = 0;
  std::string address;         ///< the address connected to ("" if none)
  bool allowed = false;        ///< whether the policy let it through
  std::string rule;            ///< the deciding rule ("rule 0: allow *.pypi.org ports 443")
                               ///< or the refusal ("no rule matches (default deny)")
  int status = 0;              ///< the HTTP status the guest got (200 for a tunnel that opened)
  uint64_t bytes_up = 0;       ///< guest to upstream, after the request header
  uint64_t bytes_down = 0;     ///< upstream to guest
  std::string error;           ///< why it failed upstream (resolve, connect, timeout), or ""
  /// An HTTPS request the proxy intercepted (a CONNECT to a host with secret bindings): the
  /// event is the request inside the TLS session (its method, path and status), with `error`
  /// naming a TLS failure ("upstream TLS: certificate verify failed (...)", a guest handshake
  /// that failed or named another host). False for plain HTTP and untouched tunnels.
  bool intercepted = false;
};

/// The egress configuration of a sandbox (SandboxConfig::egress).
struct EgressConfig {
  EgressPolicy policy;
  /// Called once per EgressEvent, on the proxy's thread: keep it short. Optional.
  std::function<void(const EgressEvent&)> audit;
  /// Extra trust anchors for upstream servers, a PEM file of one or more CA certificates (a
  /// corporate CA, or a test's own origin), trusted on top of the host's default store when
  /// the proxy intercepts HTTPS and by Sandbox::http_request. Empty: the host's store only. A
  /// file that cannot be read or holds no certificate is a ConfigError.
  std::string upstream_ca_file;
};

/// A request the host makes on a sandbox's behalf (Sandbox::http_request), under the sandbox's
/// egress policy and secret bindings, as if the guest had made it: it goes through the
/// sandbox's proxy and is audited there.
struct HttpRequest {
  std::string method = "GET";
  /// "http://host[:port]/path?query" or "https://...". For https the host speaks TLS itself
  /// through a CONNECT tunnel and checks the certificate it gets, and the name, against the
  /// host's trust store and EgressConfig::upstream_ca_file; to a host with secret bindings the
  /// proxy intercepts (the certificate is then the sandbox CA's, trusted too, and the proxy
  /// checks the real server's) and puts the secrets in, as for the guest.
  std::string url;
  /// Request headers (Host, Content-Length and Connection are set by forkvm). May hold a
  /// secret's placeholder, replaced as on the guest's requests.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// A larger response body fails the request (EgressError).
  uint64_t max_response_bytes = 16ull << 20;
  /// For the whole request, connect to last byte (TimeoutError).
  std::chrono::milliseconds timeout{30000};
};

/// The upstream's answer to an HttpRequest (any status the upstream sent, 4xx and 5xx too).
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// The policy denied the request; what() names the deciding rule or the reason.
class EgressDeniedError : public Error {
 public:
  using Error::Error;
};

/// The request was allowed but failed: the name did not resolve, the connection failed, the
/// upstream broke HTTP or TLS (an unverifiable certificate included), or the response was over
/// HttpRequest::max_response_bytes. (A timeout is a TimeoutError.)
class EgressError : public Error {
 public:
  using Error::Error;
};

/// The request's host name did not resolve (on the host, where every name is resolved).
class EgressUnresolvableError : public EgressError {
 public:
  using EgressError::EgressError;
};

/// One line of text for a rule ("allow *.pypi.org ports 443 methods GET path /simple/").
std::string describe(const EgressRule& rule);

}  // namespace forkvm
