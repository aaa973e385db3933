// Text for TLS failures (OpenSSL 3): what the proxy and Sandbox::http_request put into their
// errors, refusals and audit events. Only OpenSSL's error strings and verify results: never a
// key, a certificate's contents or a secret.
#pragma once

#include <string>

#include <boost/system/error_code.hpp>
#include <openssl/ssl.h>

namespace forkvm::net {

/// OpenSSL's queued error strings of this thread, "; "-joined (the queue is emptied), or
/// "unknown OpenSSL error".
std::string openssl_error_text();

/// Why a TLS handshake failed: `ec`'s message, and for a certificate that did not verify,
/// OpenSSL's verify result ("certificate verify failed (unable to get local issuer
/// certificate)", "... (hostname mismatch)").
std::string handshake_failure_text(const boost::system::error_code& ec, const SSL* ssl);

}  // namespace forkvm::net
