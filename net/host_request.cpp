#include "net/host_request.hpp"

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <cctype>
#include <exception>
#include <functional>
#include <optional>
#include <variant>

#include <openssl/x509v3.h>

#include "base/text.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "net/host_name.hpp"
#include "net/http_rewrite.hpp"
#include "net/request_target.hpp"
#include "net/tls_authority.hpp"
#include "net/tls_errors.hpp"
#include "net/upstream_trust.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace ssl = asio::ssl;
using boost::system::error_code;
using local = asio::local::stream_protocol;

namespace {

bool is_token(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(c) !=
                                      std::string_view::npos) {
      return false;
    }
  }
  return true;
}

void check_request(const HttpRequest& request) {
  if (!is_token(request.method) || request.method == "CONNECT") {
    throw ConfigError("http_request: bad method '" + request.method + "'");
  }
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) throw ConfigError("http_request: bad header name '" + name + "'");
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      throw ConfigError("http_request: the value of " + name + " holds CR, LF or NUL");
    }
  }
  if (request.max_response_bytes == 0) {
    throw ConfigError("http_request: max_response_bytes must be nonzero");
  }
}

// The proxy's own refusal (it marks them with X-Forkvm-Egress) as the typed error.
[[noreturn]] void throw_refusal(int status, const std::string& marker, const std::string& body) {
  std::string text = body;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (status == 403 && marker == "denied") throw EgressDeniedError(text);
  if (status == 502 && marker == kUnresolvableMarker) throw EgressUnresolvableError(text);
  if (status == 504) throw TimeoutError(text);
  throw EgressError(text);
}

struct Outcome {
  std::optional<HttpResponse> response;
  std::exception_ptr error;
};

template <class Stream>
asio::awaitable<HttpResponse> read_response(Stream& stream, boost::beast::flat_buffer& buffer,
                                            const HttpRequest& request, bool from_proxy) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(request.max_response_bytes);
  if (request.method == "HEAD") parser.skip(true);
  error_code ec;
  // The header first, and its declared length checked here: Beast 1.74 does not apply the
  // body limit to a Content-Length whose body arrives in the same read as the header.
  co_await http::async_read_header(stream, buffer, parser, with_error(ec));
  if (!ec && parser.content_length() && *parser.content_length() > request.max_response_bytes) {
    ec = http::error::body_limit;
  }
  if (!ec && !parser.is_done()) co_await http::async_read(stream, buffer, parser, with_error(ec));
  if (ec == http::error::body_limit) {
    throw EgressError("http_request: the response body is over " +
                      std::to_string(request.max_response_bytes) + " bytes");
  }
  if (ec) throw EgressError("http_request: reading the response: " + ec.message());
  const auto& message = parser.get();
  const std::string marker(message["X-Forkvm-Egress"]);
  if (from_proxy && !marker.empty()) {
    throw_refusal(static_cast<int>(message.result_int()), marker, message.body());
  }
  HttpResponse out;
  out.status = static_cast<int>(message.result_int());
  out.reason = std::string(message.reason());
  for (const auto& field : message) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = message.body();
  co_return out;
}

std::string build_request(const HttpRequest& request, const std::string& target,
                          const std::string& host, HeaderList headers) {
  Framing framing;
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    framing.content_length = request.body.size();
  }
  return request_head(request.method, target, host, end_to_end_fields(headers), framing) +
         request.body;
}

asio::awaitable<HttpResponse> plain(local::socket& proxy, const HttpRequest& request,
                                    const ProxyTarget& target) {
  // Absolute form: the proxy decides, puts the secrets in and re-sends it in origin form.
  const std::string wire = build_request(
      request, request.url, host_header(target.host, target.port), request.headers);
  error_code ec;
  co_await asio::async_write(proxy, asio::buffer(wire), with_error(ec));
  if (ec) throw EgressError("http_request: writing to the proxy: " + ec.message());
  boost::beast::flat_buffer buffer;
  co_return co_await read_response(proxy, buffer, request, true);
}

// How an https request trusts the server: the client context (the upstream trust plus the
// proxy's CA). Secrets are put in by the proxy, which intercepts the hosts they are bound to.
struct TlsClient {
  std::shared_ptr<ssl::context> context;
  /// The proxy's CA: a server certificate it issued means the proxy intercepted, so the
  /// answer may be the proxy's own refusal (X-Forkvm-Egress), as on plain HTTP.
  X509* proxy_ca = nullptr;
};

asio::awaitable<HttpResponse> tunnelled(local::socket& proxy, const HttpRequest& request,
                                        const ProxyTarget& target, const TlsClient& client) {
  const HostCheck host = normalize_host(target.host);
  if (!host.host) throw ConfigError("http_request: bad host: " + host.error);
  const std::string authority = host_header(host.host->text, target.port, 0);
  const std::string connect = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority +
                              "\r\n\r\n";
  error_code ec;
  co_await asio::async_write(proxy, asio::buffer(connect), with_error(ec));
  if (ec) throw EgressError("http_request: writing to the proxy: " + ec.message());
  boost::beast::flat_buffer buffer;
  {
    // Only the header: a 200 to CONNECT has no body (what follows it is the tunnel), and a
    // refusal's body is read below by a parser moved from this one. No skip(): Beast allows it
    // only before the parser has seen a byte, and skip(false) after the header (as here before)
    // is a broken precondition (an assertion in a build with asserts, the ASan tree's) that
    // left the refusal's body unread.
    http::response_parser<http::empty_body> established;
    co_await http::async_read_header(proxy, buffer, established, with_error(ec));
    if (ec) throw EgressError("http_request: the proxy's answer to CONNECT: " + ec.message());
    if (established.get().result_int() != 200) {
      // A refusal has a body: read it as a response to say why.
      http::response_parser<http::string_body> refusal(std::move(established));
      std::string body;
      error_code ignored;
      co_await http::async_read(proxy, buffer, refusal, with_error(ignored));
      throw_refusal(static_cast<int>(refusal.get().result_int()),
                    std::string(refusal.get()["X-Forkvm-Egress"]), refusal.get().body());
    }
  }
  ssl::stream<local::socket&> tls(proxy, *client.context);
  if (!expect_server_name(tls.native_handle(), *host.host)) {
    throw EgressError("http_request: TLS with " + authority + ": " + openssl_error_text());
  }
  co_await tls.async_handshake(ssl::stream_base::client, buffer.data(), with_error(ec));
  if (ec) {
    throw EgressError("http_request: TLS with " + authority + ": " +
                      handshake_failure_text(ec, tls.native_handle()));
  }
  buffer.consume(buffer.size());
  X509* peer = SSL_get0_peer_certificate(tls.native_handle());
  const bool intercepted = client.proxy_ca != nullptr && peer != nullptr &&
                           X509_check_issued(client.proxy_ca, peer) == X509_V_OK;
  const HeaderList& headers = request.headers;
  const std::string path = target.path.empty() ? "/" : target.path;
  const std::string wire =
      build_request(request, path, host_header(host.host->text, target.port, 443), headers);
  co_await asio::async_write(tls, asio::buffer(wire), with_error(ec));
  if (ec) throw EgressError("http_request: writing over TLS: " + ec.message());
  co_return co_await read_response(tls, buffer, request, intercepted);
}


HttpResponse request_via(const std::string& proxy_socket, const HttpRequest& request,
                         const std::function<TlsClient()>& tls_client) {
  check_request(request);
  // https:// is parsed as http:// with port 443 by default (the parser refuses https on
  // purpose: a guest must use CONNECT).
  const bool https = request.url.size() > 8 &&
                     (request.url.compare(0, 8, "https://") == 0 ||
                      request.url.compare(0, 8, "HTTPS://") == 0);
  std::string as_http = https ? "http://" + request.url.substr(8) : request.url;
  auto parsed = parse_absolute_target(as_http);
  if (auto* error = std::get_if<TargetError>(&parsed)) {
    throw ConfigError("http_request: bad URL: " + error->what);
  }
  ProxyTarget target = std::get<ProxyTarget>(parsed);
  if (https) {
    // An explicit port is kept; only the scheme's default changes (80 to 443).
    const auto authority_end = as_http.find_first_of("/?", 7);
    const std::string authority = as_http.substr(7, authority_end - 7);
    if (authority.find("]:") == std::string::npos &&
        (authority.front() == '[' || authority.find(':') == std::string::npos)) {
      target.port = 443;
    }
  }

  TlsClient client;
  if (https) client = tls_client();
  asio::io_context context(1);
  local::socket proxy(context);
  Outcome outcome;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        try {
          error_code ec;
          co_await proxy.async_connect(local::endpoint(proxy_socket), with_error(ec));
          if (ec) throw EgressError("http_request: the sandbox's proxy: " + ec.message());
          if (https) {
            outcome.response = co_await tunnelled(proxy, request, target, client);
          } else {
            outcome.response = co_await plain(proxy, request, target);
          }
        } catch (...) {
          outcome.error = std::current_exception();
        }
      },
      asio::detached);
  context.run_for(request.timeout);
  if (!outcome.response && !outcome.error) {
    error_code ignored;
    proxy.close(ignored);
    context.run();  // the coroutine ends on the closed socket
    throw TimeoutError("http_request: " + request.method + " " + request.url + " took over " +
                       millis_text(request.timeout));
  }
  if (outcome.error) std::rethrow_exception(outcome.error);
  return std::move(*outcome.response);
}

}  // namespace

HttpResponse http_request_via_proxy(const ProxyEndpoint& proxy, const HttpRequest& request) {
  return request_via(proxy.socket, request, [&] {
    TlsClient client;
    client.context = proxy.upstream_trust->make_context(proxy.authority->ca_pem());
    client.proxy_ca = proxy.authority->ca_certificate();
    return client;
  });
}

}  // namespace forkvm::net
