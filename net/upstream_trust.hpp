// Whom the host trusts as an upstream TLS server: the host's default trust store
// (set_default_verify_paths) plus extra anchors from EgressConfig::upstream_ca_file (a
// corporate CA, or a test's own CA). Used by the egress proxy when it intercepts a CONNECT
// (its client side toward the real server) and by Sandbox::http_request. Also the one place
// that sets up a client TLS session's SNI and name check.
#pragma once

#include <utility>  // before Boost.Asio 1.74's headers, which use std::exchange

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

#include "net/host_name.hpp"

namespace forkvm::net {

/// The upstream trust of one proxy. Immutable after construction but for the shared context
/// built on first use; thread-safe.
class UpstreamTrust {
 public:
  /// Reads the extra anchors from `ca_file` (PEM, one or more certificates; "" for none).
  /// Throws ConfigError when the file cannot be read or holds no certificate.
  explicit UpstreamTrust(std::string ca_file = {});

  /// A new client context: TLS 1.2 or later, peer verification on, the host's default verify
  /// paths, the extra anchors, and the PEM certificates in `more_pem` (e.g. a sandbox's CA).
  /// Throws EgressError (or ConfigError for bad `more_pem`).
  std::shared_ptr<boost::asio::ssl::context> make_context(std::string_view more_pem = {}) const;

  /// make_context() built once, on first use, and shared (the proxy's upstream side).
  std::shared_ptr<boost::asio::ssl::context> shared_context() const;

  /// The extra anchors' file ("" for none).
  const std::string& ca_file() const noexcept { return ca_file_; }

 private:
  std::string ca_file_;
  std::string extra_pem_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<boost::asio::ssl::context> shared_;
};

/// Sets up a client session toward `host`: SNI for a name (none for an address), and the
/// certificate checked for that name or address (on top of the chain the context verifies).
/// Returns false when OpenSSL refuses (then the handshake must not be attempted).
bool expect_server_name(SSL* ssl, const NormalizedHost& host);

}  // namespace forkvm::net
