#include "net/upstream_trust.hpp"

#include <fstream>
#include <sstream>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "forkvm/egress.hpp"
#include "forkvm/errors.hpp"
#include "net/tls_errors.hpp"

namespace forkvm::net {

namespace ssl = boost::asio::ssl;

namespace {

// Largest anchors file read (a full public bundle is ~200 KiB).
constexpr std::size_t kMaxCaFileBytes = 16u << 20;

// Adds every certificate of `pem` to `store` (when not null); returns how many there were.
// Throws ConfigError naming `what` for text that is not PEM certificates.
int add_pem_certificates(X509_STORE* store, std::string_view pem, const std::string& what) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) throw EgressError("TLS trust: " + openssl_error_text());
  int count = 0;
  for (;;) {
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    ++count;
    if (store != nullptr && !X509_STORE_add_cert(store, cert)) {
      const auto code = ERR_peek_last_error();
      // The same anchor twice (the host's store has it already) is fine.
      if (ERR_GET_REASON(code) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        X509_free(cert);
        BIO_free(bio);
        throw EgressError("TLS trust: adding " + what + ": " + openssl_error_text());
      }
    }
    X509_free(cert);
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  BIO_free(bio);
  if (count == 0) throw ConfigError("TLS trust: " + what + " holds no PEM certificate");
  return count;
}

}  // namespace

UpstreamTrust::UpstreamTrust(std::string ca_file) : ca_file_(std::move(ca_file)) {
  if (ca_file_.empty()) return;
  std::ifstream in(ca_file_, std::ios::binary);
  if (!in) throw ConfigError("upstream_ca_file " + ca_file_ + " cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  extra_pem_ = text.str();
  if (extra_pem_.size() > kMaxCaFileBytes) {
    throw ConfigError("upstream_ca_file " + ca_file_ + " is over " +
                      std::to_string(kMaxCaFileBytes) + " bytes");
  }
  add_pem_certificates(nullptr, extra_pem_, "upstream_ca_file " + ca_file_);
}

std::shared_ptr<ssl::context> UpstreamTrust::make_context(std::string_view more_pem) const {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  context->set_default_verify_paths(ec);
  if (ec) throw EgressError("TLS trust: the host's verify paths: " + ec.message());
  context->set_verify_mode(ssl::verify_peer);
  SSL_CTX* native = context->native_handle();
  if (!SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION)) {
    throw EgressError("TLS trust: " + openssl_error_text());
  }
  X509_STORE* store = SSL_CTX_get_cert_store(native);
  if (!extra_pem_.empty()) add_pem_certificates(store, extra_pem_, "upstream_ca_file " + ca_file_);
  if (!more_pem.empty()) add_pem_certificates(store, more_pem, "the proxy's CA");
  return context;
}

std::shared_ptr<ssl::context> UpstreamTrust::shared_context() const {
  std::lock_guard lock(mutex_);
  if (!shared_) shared_ = make_context();
  return shared_;
}

bool expect_server_name(SSL* ssl, const NormalizedHost& host) {
  if (host.kind == HostKind::kName) {
    // SNI. SSL_set_tlsext_host_name is a macro with a C cast; this is the call it makes.
    if (!SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                  const_cast<char*>(host.text.c_str()))) {
      return false;
    }
    return SSL_set1_host(ssl, host.text.c_str()) == 1;
  }
  return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.text.c_str()) == 1;
}

}  // namespace forkvm::net
