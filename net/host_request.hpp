// Sandbox::http_request: the host makes a request on a sandbox's behalf through that
// sandbox's egress proxy (a client on the proxy's Unix socket, as the guest's relay is), so
// the policy, the limits and the audit are exactly the guest's. Plain HTTP goes as a proxy
// request (the proxy puts the secrets in); HTTPS goes through a CONNECT tunnel in which this
// client speaks TLS (OpenSSL through Boost.Asio, the host's trust store, the name checked) and
// puts the secrets in itself. Runs on the caller's thread with its own io_context.
#pragma once

#include <string>

#include "forkvm/egress.hpp"

namespace forkvm::net {

class CompiledPolicy;

/// Makes `request` through the proxy listening on `proxy_socket`. Throws EgressDeniedError,
/// EgressError, TimeoutError, or ConfigError for a malformed request (URL, method, headers).
HttpResponse http_request_via_proxy(const std::string& proxy_socket,
                                    const CompiledPolicy& policy, const HttpRequest& request);

}  // namespace forkvm::net
