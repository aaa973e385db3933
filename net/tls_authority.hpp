// A sandbox's own certificate authority (OpenSSL 3), with which the egress proxy intercepts
// HTTPS to hosts that have secret bindings: the guest trusts the CA (its certificate is
// installed into the guest's trust store), the proxy answers the guest's TLS with a leaf
// certificate for the CONNECT host, signed by the CA.
//
// The CA key and the leaf key exist in host memory only: nothing here writes them anywhere,
// and errors carry OpenSSL's error text, never key material. One authority may be shared by
// several proxies (a sandbox and its forks, whose guests trust the same CA) and used from any
// thread.
#pragma once

#include <utility>  // before Boost.Asio 1.74's headers, which use std::exchange

#include <boost/asio/ssl/context.hpp>

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace forkvm::net {

/// A per-sandbox CA and the server-side TLS contexts it mints. See the file comment.
class TlsAuthority {
 public:
  /// Leaf contexts kept at most (the least recently minted one goes first).
  static constexpr std::size_t kMaxCachedLeaves = 256;

  /// A fresh authority: a new EC P-256 CA key and a self-signed CA certificate (subject
  /// CN=`common_name` O=forkvm; basicConstraints critical CA:TRUE pathlen:0; keyUsage critical
  /// keyCertSign cRLSign; subjectKeyIdentifier; a random 128-bit serial; valid from an hour ago
  /// for a year), and one P-256 key for all its leaves. Throws EgressError with OpenSSL's text.
  static std::shared_ptr<TlsAuthority> create(std::string common_name = "forkvm sandbox CA");

  ~TlsAuthority();
  TlsAuthority(const TlsAuthority&) = delete;
  TlsAuthority& operator=(const TlsAuthority&) = delete;

  /// The CA certificate, PEM: what the guest's trust store gets.
  const std::string& ca_pem() const noexcept { return ca_pem_; }
  /// The CA certificate (owned by the authority).
  X509* ca_certificate() const noexcept { return ca_cert_; }

  /// A TLS server context for `host` (a normalized host name, or an IPv4 or IPv6 literal
  /// without brackets): a leaf certificate with subjectAltName DNS:`host` (IP:`host` for a
  /// literal), extendedKeyUsage serverAuth, authorityKeyIdentifier, the CA's validity, TLS 1.2
  /// or later. A ClientHello whose SNI names another host is refused (no SNI is accepted).
  /// Cached per host (bounded, kMaxCachedLeaves): the same host gets the same context. Throws
  /// ConfigError for a host that is neither a plain name nor an address, EgressError when
  /// OpenSSL fails.
  std::shared_ptr<boost::asio::ssl::context> server_context(const std::string& host) const;

 private:
  TlsAuthority() = default;
  struct Leaf;
  std::shared_ptr<Leaf> mint(const std::string& host) const;

  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_cert_ = nullptr;
  EVP_PKEY* leaf_key_ = nullptr;
  std::string ca_pem_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<Leaf>> leaves_;
  mutable std::deque<std::string> order_;  ///< the cached hosts, oldest first
};

}  // namespace forkvm::net
