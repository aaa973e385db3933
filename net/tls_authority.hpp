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
#include <exception>
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
  /// for a year), and one P-256 key for all its leaves. The keys and the certificate are made
  /// on first use (ca_pem(), ca_certificate(), server_context()), once: every sandbox and fork
  /// has an authority, but one that never intercepts HTTPS never pays for two key generations
  /// and a signature on its fork path. Never throws itself.
  static std::shared_ptr<TlsAuthority> create(std::string common_name = "forkvm sandbox CA");

  ~TlsAuthority();
  TlsAuthority(const TlsAuthority&) = delete;
  TlsAuthority& operator=(const TlsAuthority&) = delete;

  /// The CA certificate, PEM: what the guest's trust store gets. Throws EgressError with
  /// OpenSSL's text when the CA cannot be made (then and at every later use).
  const std::string& ca_pem() const;
  /// The CA certificate (owned by the authority). Throws as ca_pem().
  X509* ca_certificate() const;

  /// A TLS server context for `host` (a normalized host name, or an IPv4 or IPv6 literal
  /// without brackets): a leaf certificate with subjectAltName DNS:`host` (IP:`host` for a
  /// literal), extendedKeyUsage serverAuth, authorityKeyIdentifier, the CA's validity, TLS 1.2
  /// or later. A ClientHello whose SNI names another host is refused (no SNI is accepted).
  /// Cached per host (bounded, kMaxCachedLeaves): the same host gets the same context. Throws
  /// ConfigError for a host that is neither a plain name nor an address, EgressError when
  /// OpenSSL fails.
  std::shared_ptr<boost::asio::ssl::context> server_context(const std::string& host) const;

 private:
  explicit TlsAuthority(std::string common_name) : common_name_(std::move(common_name)) {}
  struct Leaf;
  std::shared_ptr<Leaf> mint(const std::string& host) const;
  /// Makes the keys and the CA certificate the first time (whichever thread asks first; the
  /// others wait), or rethrows that first attempt's error.
  void ensure_made() const;
  void make() const;

  std::string common_name_;
  mutable std::once_flag made_;
  mutable std::exception_ptr make_error_;  // set once, inside made_
  // Written once, inside made_, read only after ensure_made().
  mutable EVP_PKEY* ca_key_ = nullptr;
  mutable X509* ca_cert_ = nullptr;
  mutable EVP_PKEY* leaf_key_ = nullptr;
  mutable std::string ca_pem_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<Leaf>> leaves_;
  mutable std::deque<std::string> order_;  ///< the cached hosts, oldest first
};

}  // namespace forkvm::net
