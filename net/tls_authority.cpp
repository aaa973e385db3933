#include "net/tls_authority.hpp"

#include <utility>  // before Boost.Asio 1.74's headers, which use std::exchange

#include <boost/asio/ip/address.hpp>

#include <ctime>
#include <string_view>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "forkvm/egress.hpp"
#include "forkvm/errors.hpp"
#include "net/tls_errors.hpp"

namespace forkvm::net {

namespace ssl = boost::asio::ssl;

namespace {

constexpr long kHour = 3600;
constexpr long kYear = 365L * 24 * kHour;
constexpr std::size_t kMaxHostName = 253;

template <class T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Freer<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Freer<BIGNUM, BN_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Freer<X509_EXTENSION, X509_EXTENSION_free>>;
using BioPtr = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Freer<GENERAL_NAMES, GENERAL_NAMES_free>>;

[[noreturn]] void fail(const std::string& what) {
  throw EgressError("TLS authority: " + what + ": " + openssl_error_text());
}

KeyPtr new_p256_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) fail("generating a P-256 key");
  return key;
}

void set_random_serial(X509* cert) {
  BignumPtr serial(BN_new());
  if (!serial || !BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert))) {
    fail("a random serial number");
  }
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(value.data()),
                                  static_cast<int>(value.size()), -1, 0)) {
    fail(std::string("the certificate's ") + field);
  }
}

// An extension from its OpenSSL configuration text (`value` is a constant of this file, never
// guest input).
void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr extension(X509V3_EXT_nconf_nid(nullptr, &context, nid, value));
  if (!extension || !X509_add_ext(cert, extension.get(), -1)) {
    fail(std::string("the certificate extension ") + OBJ_nid2sn(nid));
  }
}

// subjectAltName with one entry, built as ASN.1 (the host is never parsed as configuration).
void add_subject_alt_name(X509* cert, const std::string& host, bool is_address) {
  NamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (!names || !name) fail("subjectAltName");
  if (is_address) {
    ASN1_OCTET_STRING* address = a2i_IPADDRESS(host.c_str());
    if (!address) {
      GENERAL_NAME_free(name);
      fail("subjectAltName IP");
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, address);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (!dns || !ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size()))) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(name);
      fail("subjectAltName DNS");
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  if (!sk_GENERAL_NAME_push(names.get(), name)) {
    GENERAL_NAME_free(name);
    fail("subjectAltName");
  }
  if (!X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT)) {
    fail("subjectAltName");
  }
}

std::string pem_of(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert)) fail("writing the CA certificate");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

bool is_plain_name(const std::string& host) {
  if (host.empty() || host.size() > kMaxHostName) return false;
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool same_host(std::string_view a, std::string_view b) {
  if (!a.empty() && a.back() == '.') a.remove_suffix(1);
  if (!b.empty() && b.back() == '.') b.remove_suffix(1);
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The servername callback of a leaf's context: `arg` is the leaf's host (a std::string that
// lives as long as the context).
int check_sni(SSL* ssl, int* alert, void* arg) {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI (an address, or an old client)
  if (same_host(sni, *static_cast<const std::string*>(arg))) return SSL_TLSEXT_ERR_OK;
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

/// One cached leaf: its host (the SNI callback's argument) and its server context.
struct TlsAuthority::Leaf {
  explicit Leaf(std::string name) : host(std::move(name)) {}
  std::string host;
  ssl::context context{ssl::context::tls_server};
};

std::shared_ptr<TlsAuthority> TlsAuthority::create(std::string common_name) {
  return std::shared_ptr<TlsAuthority>(new TlsAuthority(std::move(common_name)));
}

void TlsAuthority::ensure_made() const {
  std::call_once(made_, [this] {
    try {
      make();
    } catch (...) {
      make_error_ = std::current_exception();
    }
  });
  if (make_error_) std::rethrow_exception(make_error_);
}

const std::string& TlsAuthority::ca_pem() const {
  ensure_made();
  return ca_pem_;
}

X509* TlsAuthority::ca_certificate() const {
  ensure_made();
  return ca_cert_;
}

void TlsAuthority::make() const {
  const std::string& common_name = common_name_;
  KeyPtr ca_key = new_p256_key();
  KeyPtr leaf_key = new_p256_key();
  X509Ptr cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), 2)) fail("a new certificate");
  set_random_serial(cert.get());
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kHour) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kYear)) {
    fail("the CA's validity");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name_entry(name, "O", "forkvm");
  add_name_entry(name, "CN", common_name);
  if (!X509_set_issuer_name(cert.get(), name) || !X509_set_pubkey(cert.get(), ca_key.get())) {
    fail("the CA's name and key");
  }
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (!X509_sign(cert.get(), ca_key.get(), EVP_sha256())) fail("signing the CA certificate");
  ca_pem_ = pem_of(cert.get());
  ca_key_ = ca_key.release();
  ca_cert_ = cert.release();
  leaf_key_ = leaf_key.release();
}

TlsAuthority::~TlsAuthority() {
  EVP_PKEY_free(leaf_key_);
  X509_free(ca_cert_);
  EVP_PKEY_free(ca_key_);
}

std::shared_ptr<TlsAuthority::Leaf> TlsAuthority::mint(const std::string& host) const {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  const bool is_address = !ec;
  if (!is_address && !is_plain_name(host)) {
    throw ConfigError("TLS authority: no certificate for a host that is neither a plain name "
                      "nor an address");
  }
  auto leaf = std::make_shared<Leaf>(is_address ? address.to_string() : host);
  X509Ptr cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), 2)) fail("a new certificate");
  set_random_serial(cert.get());
  // The CA's own validity: a cached leaf lives as long as the authority may.
  if (!X509_set1_notBefore(cert.get(), X509_get0_notBefore(ca_cert_)) ||
      !X509_set1_notAfter(cert.get(), X509_get0_notAfter(ca_cert_))) {
    fail("the leaf's validity");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name_entry(name, "O", "forkvm");
  if (leaf->host.size() <= 64) add_name_entry(name, "CN", leaf->host);  // CN is at most 64
  if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert_)) ||
      !X509_set_pubkey(cert.get(), leaf_key_)) {
    fail("the leaf's names and key");
  }
  add_extension(cert.get(), ca_cert_, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert_, NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), ca_cert_, NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), ca_cert_, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), ca_cert_, NID_authority_key_identifier, "keyid:always");
  add_subject_alt_name(cert.get(), leaf->host, is_address);
  if (!X509_sign(cert.get(), ca_key_, EVP_sha256())) fail("signing a leaf certificate");

  SSL_CTX* context = leaf->context.native_handle();
  if (!SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) ||
      !SSL_CTX_use_certificate(context, cert.get()) ||
      !SSL_CTX_use_PrivateKey(context, leaf_key_) || !SSL_CTX_check_private_key(context)) {
    fail("a leaf's server context");
  }
  // SSL_CTX_set_tlsext_servername_callback/_arg are macros with C casts; these are their calls.
  SSL_CTX_callback_ctrl(context, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                        reinterpret_cast<void (*)()>(&check_sni));
  SSL_CTX_ctrl(context, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, &leaf->host);
  return leaf;
}

std::shared_ptr<ssl::context> TlsAuthority::server_context(const std::string& host) const {
  ensure_made();  // the leaves are signed by the CA
  {
    std::lock_guard lock(mutex_);
    if (auto found = leaves_.find(host); found != leaves_.end()) {
      return std::shared_ptr<ssl::context>(found->second, &found->second->context);
    }
  }
  // Minted outside the lock (a signature takes a while); a race mints twice, one is kept.
  std::shared_ptr<Leaf> leaf = mint(host);
  std::lock_guard lock(mutex_);
  auto [entry, inserted] = leaves_.emplace(host, leaf);
  std::shared_ptr<Leaf> kept = entry->second;
  if (inserted) {
    order_.push_back(host);
    while (order_.size() > kMaxCachedLeaves) {
      leaves_.erase(order_.front());
      order_.pop_front();
    }
  }
  return std::shared_ptr<ssl::context>(kept, &kept->context);
}

}  // namespace forkvm::net
