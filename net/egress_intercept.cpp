// EgressConnection::intercept(): a CONNECT to a host with secret bindings, served through TLS
// on both sides so the requests inside get the host's secrets.
//
// 1. the upstream is already connected (the CONNECT passed the policy, the address checked);
// 2. "200 Connection established", then TLS with the guest under the sandbox CA's leaf for the
//    CONNECT host (TlsAuthority: a ClientHello whose SNI names another host is refused);
// 3. one request header read inside TLS (the same limits), an origin-form target required,
//    decided again with its method and path against the address connected to;
// 4. TLS to the upstream with SNI = the host, its certificate verified against the host's
//    store and EgressConfig::upstream_ca_file and for the host name (UpstreamTrust); a failure
//    is a 502 (504 when it timed out) inside the guest's TLS, X-Forkvm-Egress naming why;
// 5. exchange(): the request with the secrets put in, the body with its framing, the response
//    back, "Connection: close" (one request per intercepted connection), close_notify.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <exception>
#include <string_view>

#include "base/text.hpp"
#include "net/egress_connection.hpp"
#include "net/egress_rules.hpp"
#include "net/http_rewrite.hpp"
#include "net/http_text.hpp"
#include "net/proxy_core.hpp"
#include "net/tls_authority.hpp"
#include "net/tls_errors.hpp"
#include "net/upstream_trust.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using boost::system::error_code;

namespace {

// Why the guest's handshake failed, for the audit.
std::string guest_handshake_failure(SSL* ssl, const std::string& host, const error_code& ec) {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni != nullptr && !iequals(std::string_view(sni), host)) {
    return "TLS with the guest: its SNI names " + printable(sni, 128) + ", not " + host;
  }
  return "TLS with the guest: " + ec.message();
}

}  // namespace

asio::awaitable<void> EgressConnection::intercept(const ProxyTarget& target,
                                                  boost::beast::flat_buffer& buffer) {
  event_.intercepted = true;
  std::shared_ptr<ssl::context> leaf;
  std::shared_ptr<ssl::context> upstream_context;
  std::string setup_error;
  try {
    leaf = core_->authority->server_context(event_.host);
    upstream_context = core_->upstream_trust->shared_context();
  } catch (const std::exception& e) {
    setup_error = std::string("TLS interception: ") + e.what();  // OpenSSL's text, no key
  }
  if (!setup_error.empty()) {
    const Refusal refusal{502, setup_error};  // before the 200: a plain answer
    co_await refuse(refusal);
    co_return;
  }

  if (!co_await establish()) co_return;
  error_code ec;

  // The guest's TLS; a ClientHello sent right behind the CONNECT is in `buffer`. (No 0-RTT: no
  // application data can follow it before the handshake ends.)
  GuestTls guest(guest_, *leaf);
  co_await guest.async_handshake(ssl::stream_base::server, buffer.data(), with_error(ec));
  buffer.consume(buffer.size());
  if (ec) {
    event_.error = guest_handshake_failure(guest.native_handle(), event_.host, ec);
    close();
    co_return;
  }

  boost::beast::flat_buffer inner;
  HeaderParser parser;
  const std::optional<Refusal> unread = co_await read_request(guest, inner, parser);
  if (unread) {
    if (unread->status == 0) {
      event_.error = "no request inside TLS";
      close();
      co_return;
    }
    co_await refuse_on(guest, *unread);
    co_return;
  }
  const auto& request = parser.get();
  const std::string method(request.method_string().data(), request.method_string().size());
  const std::string path(request.target().data(), request.target().size());
  event_.method = printable(method, 32);
  audit_path(path);
  if (path.empty() || path.front() != '/') {
    const Refusal refusal{400, "a request inside an intercepted CONNECT needs an origin-form "
                               "target (\"/path\")"};
    co_await refuse_on(guest, refusal);
    co_return;
  }
  // The request decided again, now that its method and path are known (a rule with methods
  // or a path prefix never matched the CONNECT itself).
  RequestTarget decided;
  decided.host = event_.host;
  decided.port = target.port;
  decided.method = method;
  decided.path = path;
  const Decision decision = policy_->decide(decided, connected_);
  event_.rule = decision.text;
  if (!decision.allowed) {
    event_.allowed = false;
    const Refusal refusal{403, "denied " + event_.method + " " + event_.host + ":" +
                                   std::to_string(target.port) + event_.path + ": " +
                                   decision.text};
    co_await refuse_on(guest, refusal);
    co_return;
  }

  // The upstream's TLS, verified; a failure is answered inside the guest's TLS.
  UpstreamTls upstream(upstream_, *upstream_context);
  const HostCheck host = normalize_host(event_.host);  // already normalized: cannot fail
  std::string failure;
  if (!host.host || !expect_server_name(upstream.native_handle(), *host.host)) {
    failure = "setting the server name: " + openssl_error_text();
  } else {
    set_phase(Clock::now() + limits_.connect_timeout);
    co_await upstream.async_handshake(ssl::stream_base::client, with_error(ec));
    set_phase(Clock::time_point::max());
    if (phase_timed_out_) {
      failure = "timed out";
    } else if (ec) {
      failure = handshake_failure_text(ec, upstream.native_handle());
    }
  }
  if (!failure.empty()) {
    event_.error = "upstream TLS: " + failure;
    const std::string marker = printable(event_.error, 200);
    const Refusal refusal{phase_timed_out_ ? 504 : 502,
                          "upstream TLS with " + event_.host + ":" +
                              std::to_string(target.port) + ": " + failure};
    co_await refuse_on(guest, refusal, marker);
    co_return;
  }
  traffic_.last_activity = Clock::now();
  const std::string host_field = host_header(event_.host, target.port, 443);
  co_await exchange(guest, upstream, path, host_field, inner, parser);
}

}  // namespace forkvm::net
