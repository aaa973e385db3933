#include "net/tls_errors.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

namespace forkvm::net {

std::string openssl_error_text() {
  std::string text;
  for (int i = 0; i < 8; ++i) {  // bounded: the queue is short
    const unsigned long code = ERR_get_error();
    if (code == 0) break;
    char line[256];
    ERR_error_string_n(code, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  ERR_clear_error();
  return text.empty() ? std::string("unknown OpenSSL error") : text;
}

std::string handshake_failure_text(const boost::system::error_code& ec, const SSL* ssl) {
  std::string text = ec.message();
  if (ssl != nullptr) {
    const long verified = SSL_get_verify_result(ssl);
    if (verified != X509_V_OK) {
      text += std::string(" (") + X509_verify_cert_error_string(verified) + ")";
    }
  }
  return text;
}

}  // namespace forkvm::net
