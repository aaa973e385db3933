// Sandbox::http_request: the host makes a request on a sandbox's behalf through that
// sandbox's egress proxy (a client on the proxy's Unix socket, as the guest's relay is), so
// the policy, the limits, the secrets and the audit are exactly the guest's. Plain HTTP goes
// as a proxy request (the proxy puts the secrets in); HTTPS goes through a CONNECT in which
// this client speaks TLS (OpenSSL through Boost.Asio, the name checked). To a host with secret
// bindings the proxy intercepts that TLS exactly as it does the guest's (and puts the secrets
// in): this client trusts the proxy's CA as the guest does, on top of the proxy's upstream
// trust (the host's store and EgressConfig::upstream_ca_file) for the tunnels it does not
// intercept. Trusting the proxy rather than asking it not to intercept keeps one path for
// secrets and needs no marker that a guest could send too. Runs on the caller's thread with
// its own io_context.
#pragma once

#include <string>

#include "forkvm/egress.hpp"
#include "net/egress_proxy.hpp"

namespace forkvm::net {

/// Makes `request` through the proxy at `proxy` (EgressProxy::endpoint()). Throws
/// EgressDeniedError, EgressError, TimeoutError, or ConfigError for a malformed request (URL,
/// method, headers).
HttpResponse http_request_via_proxy(const ProxyEndpoint& proxy, const HttpRequest& request);

}  // namespace forkvm::net
