// The host side of a sandbox's egress: an HTTP proxy on the Unix socket that the vsock device
// connects the guest's proxied connections to ("<vsock socket>_3128", contract/net_ports.hpp),
// built on Boost.Asio and Boost.Beast and run on the process's network thread (io_thread.hpp).
//
// Per connection from the guest (everything it sends is untrusted):
//   1. read one request header (at most EgressLimits::max_header_bytes);
//   2. CONNECT host:port: check the policy by name, resolve on the host, check each address,
//      connect, answer 200 and tunnel bytes untouched both ways; but to a host with secret
//      bindings (CompiledPolicy::binds_secrets), intercept: TLS with the guest under a leaf of
//      the proxy's TlsAuthority, TLS to the upstream verified against its UpstreamTrust, and
//      the request inside served as in 3 (egress_intercept.cpp);
//   3. a plain HTTP request with an absolute http:// URI: the same checks with the method and
//      path, then the request is re-sent upstream in origin form with hop-by-hop headers
//      dropped, the secrets of the host substituted (SecretBinding), "Connection: close", and
//      its body relayed with its framing; the response comes back the same way;
//   4. anything refused gets an HTTP error with a text body naming the reason (403 with the
//      deciding rule, 400 malformed, 413 body over the byte limit, 431 header too large, 502
//      upstream failed, 503 too many connections, 504 timed out), and every request is
//      audited once (EgressEvent).
// One request per connection, intercepted ones included (the answer says "Connection: close").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "forkvm/egress.hpp"

namespace forkvm::net {

class CompiledPolicy;
struct ProxyCore;
class TlsAuthority;
class UpstreamTrust;

/// How a proxy intercepts HTTPS to hosts with secret bindings.
struct TlsInterception {
  /// Signs the certificates the guest sees; the guest must trust its ca_pem(). Null: a fresh
  /// one (TlsAuthority::create()). A fork's proxy gets its parent's (the forked guest trusts
  /// the parent's CA).
  std::shared_ptr<const TlsAuthority> authority;
  /// EgressConfig::upstream_ca_file: extra anchors for upstream servers ("" for none).
  std::string upstream_ca_file;
};

/// What a client of the proxy on the host needs (Sandbox::http_request): where it listens, and
/// what to trust over HTTPS through it (the proxy's CA for the hosts it intercepts, its
/// upstream trust for the others). Copied out under the sandbox's lock, usable after the
/// proxy is gone (the request then fails to connect).
struct ProxyEndpoint {
  std::string socket;                                     ///< the proxy's Unix socket
  std::shared_ptr<const TlsAuthority> authority;          ///< never null
  std::shared_ptr<const UpstreamTrust> upstream_trust;    ///< never null
};

/// Counters of one proxy (read from any thread).
struct EgressProxyStats {
  uint64_t connections = 0;  ///< accepted so far
  uint64_t live = 0;         ///< open now
  uint64_t refused = 0;      ///< answered with an error status
};

/// A running egress proxy. Thread-safe; the destructor stops it.
class EgressProxy {
 public:
  /// Binds and listens on the Unix socket `path` (mode 0600; an existing file there is an
  /// error) and starts accepting. Throws forkvm::Error when it cannot, ConfigError when
  /// `tls.upstream_ca_file` cannot be read or holds no certificate, EgressError when a fresh
  /// authority cannot be made.
  EgressProxy(std::string path, std::shared_ptr<const CompiledPolicy> policy,
              std::function<void(const EgressEvent&)> audit, TlsInterception tls = {});
  /// Stops accepting, closes every connection (each is audited), removes the socket and waits
  /// until nothing of the proxy runs on the network thread (unless called on that thread).
  ~EgressProxy();
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  /// Replaces the policy: requests that arrive afterwards use it, connections already open
  /// keep the one they were decided with.
  void set_policy(std::shared_ptr<const CompiledPolicy> policy);
  /// The Unix socket it listens on.
  const std::string& path() const noexcept { return path_; }
  /// Counters so far.
  EgressProxyStats stats() const;
  /// The CA the guest must trust (PEM) for intercepted HTTPS: install it into the guest's
  /// trust store. Made on first use (TlsAuthority::create): throws EgressError when OpenSSL
  /// cannot make it.
  const std::string& ca_pem() const;
  /// The authority, to share with a fork's proxy (TlsInterception::authority).
  std::shared_ptr<const TlsAuthority> authority() const noexcept { return authority_; }
  /// What http_request_via_proxy() needs to go through this proxy.
  ProxyEndpoint endpoint() const;

 private:
  std::string path_;
  std::shared_ptr<const TlsAuthority> authority_;
  std::shared_ptr<const UpstreamTrust> upstream_trust_;
  std::shared_ptr<ProxyCore> core_;
};

}  // namespace forkvm::net
