// EgressConnection's HTTP exchange, the same over the plain guest socket (a proxy request) and
// inside TLS (an intercepted CONNECT): the request header read with its limits, one request
// relayed with the host's secrets and its body's framing, the response back, refusals.
// Instantiated at the bottom for both kinds of streams.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>

#include <type_traits>

#include "net/egress_connection.hpp"
#include "net/egress_rules.hpp"
#include "net/http_rewrite.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

HeaderList fields_of(const http::fields& fields) {
  HeaderList out;
  for (const auto& field : fields) {
    out.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return out;
}

}  // namespace

template <class Guest>
asio::awaitable<std::optional<Refusal>> EgressConnection::read_request(
    Guest& guest, boost::beast::flat_buffer& buffer, HeaderParser& parser) {
  parser.header_limit(limits_.max_header_bytes);
  parser.body_limit(limits_.max_bytes_per_connection);
  error_code ec;
  co_await http::async_read_header(guest, buffer, parser, with_error(ec));
  if (ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated) {
      co_return Refusal{0, "closed before a request"};
    }
    if (ec == http::error::body_limit) {
      co_return Refusal{413, "the request body is over the connection's byte limit (" +
                                 std::to_string(limits_.max_bytes_per_connection) + " bytes)"};
    }
    if (ec == http::error::header_limit) {
      co_return Refusal{431, "the request header is over " +
                                 std::to_string(limits_.max_header_bytes) + " bytes"};
    }
    co_return Refusal{400, "malformed request: " + ec.message()};
  }
  // Checked here as well as by the parser: Beast 1.74 skips its body limit when the body
  // arrives in the same read as the header.
  if (parser.content_length() && *parser.content_length() > limits_.max_bytes_per_connection) {
    co_return Refusal{413, "the request body is over the connection's byte limit (" +
                               std::to_string(limits_.max_bytes_per_connection) + " bytes)"};
  }
  co_return std::nullopt;
}

template <class Guest>
asio::awaitable<void> EgressConnection::finish(Guest& guest) {
  error_code ec;
  if constexpr (std::is_same_v<Guest, GuestTls>) {
    // close_notify ends the TLS stream (a body framed by the close needs it). Waiting for the
    // guest's own close_notify (or its close) is bounded by the watchdog.
    co_await guest.async_shutdown(with_error(ec));
  } else {
    guest.shutdown(asio::socket_base::shutdown_send, ec);
  }
  close();
}

template <class Guest>
asio::awaitable<void> EgressConnection::refuse_on(Guest& guest, const Refusal& refusal,
                                                  std::string_view marker) {
  event_.status = refusal.status;
  if (refusal.status != 403 && event_.error.empty()) event_.error = refusal.text;
  const std::string answer =
      refusal_response(refusal.status, refusal.text, marker.empty() ? refusal.marker : marker);
  error_code ec;
  co_await asio::async_write(guest, asio::buffer(answer), with_error(ec));
  if (ec) {
    close();
    co_return;
  }
  co_await finish(guest);
}

template <class Guest, class Upstream>
asio::awaitable<void> EgressConnection::exchange(Guest& guest, Upstream& upstream,
                                                 const std::string& path,
                                                 const std::string& host_field,
                                                 boost::beast::flat_buffer& buffer,
                                                 HeaderParser& parser) {
  const auto& request = parser.get();
  const std::string method(request.method_string().data(), request.method_string().size());
  const bool is_head = request.method() == http::verb::head;  // `parser` is moved from below
  event_.method = method;
  // The request, re-sent in origin form with the secrets of this host put in.
  HeaderList fields = end_to_end_fields(fields_of(request.base()));
  policy_->apply_secrets(event_.host, fields);
  Framing up_framing;
  BodyFraming up_body = BodyFraming::kNone;
  if (parser.chunked()) {
    up_framing.chunked = true;
    up_body = BodyFraming::kChunked;
  } else if (parser.content_length() && *parser.content_length() > 0) {
    up_framing.content_length = *parser.content_length();
    up_body = BodyFraming::kLength;
  }
  const std::string head = request_head(method, path, host_field, fields, up_framing);
  error_code ec;
  co_await asio::async_write(upstream, asio::buffer(head), with_error(ec));
  if (ec) {
    const Refusal refusal{502, "writing the request upstream: " + ec.message()};
    co_await refuse_on(guest, refusal);
    co_return;
  }
  if (up_body != BodyFraming::kNone) {
    http::request_parser<http::buffer_body> body_parser(std::move(parser));
    body_parser.body_limit(limits_.max_bytes_per_connection);
    const std::string failed = co_await relay_body(guest, buffer, body_parser, upstream,
                                                   up_body, traffic_, true);
    if (!failed.empty()) {
      const Refusal refusal{traffic_.over_limit ? 502 : 400, "request body: " + failed};
      co_await refuse_on(guest, refusal);
      co_return;
    }
  }

  // The response: informational answers (1xx) are skipped, the first final one goes back.
  boost::beast::flat_buffer upstream_buffer;
  std::optional<http::response_parser<http::empty_body>> response;
  for (int informational = 0;; ++informational) {
    response.emplace();
    response->header_limit(limits_.max_header_bytes);
    response->body_limit(limits_.max_bytes_per_connection);
    if (is_head) response->skip(true);
    // Waiting for the answer is a phase: an upstream that stalls gets the guest a 504.
    set_phase(Clock::now() + limits_.idle_timeout);
    co_await http::async_read_header(upstream, upstream_buffer, *response, with_error(ec));
    set_phase(Clock::time_point::max());
    if (!ec && response->content_length() &&
        *response->content_length() > limits_.max_bytes_per_connection) {
      ec = http::error::body_limit;  // see the request's check in read_request()
    }
    if (ec) {
      if (phase_timed_out_) {
        const Refusal refusal{504, "upstream did not answer within the idle timeout (" +
                                  std::to_string(limits_.idle_timeout.count()) + " ms)"};
        co_await refuse_on(guest, refusal);
      } else if (ec == http::error::body_limit) {
        // A declared length over the limit: refused before any byte of it moves.
        const Refusal refusal{502, "the response is over the connection's byte limit (" +
                                       std::to_string(limits_.max_bytes_per_connection) +
                                       " bytes)"};
        co_await refuse_on(guest, refusal);
      } else {
        const Refusal refusal{502, "no valid response from upstream: " + ec.message()};
        co_await refuse_on(guest, refusal);
      }
      co_return;
    }
    const unsigned status = response->get().result_int();
    if (status >= 200) break;
    if (status == 101 || informational >= 8) {
      const Refusal refusal{502, "upstream answered " + std::to_string(status)};
      co_await refuse_on(guest, refusal);
      co_return;
    }
  }
  const auto& answer = response->get();
  event_.status = static_cast<int>(answer.result_int());
  Framing down_framing;
  BodyFraming down_body = BodyFraming::kNone;
  if (response->chunked()) {
    down_framing.chunked = true;
    down_body = BodyFraming::kChunked;
  } else if (response->content_length()) {
    down_framing.content_length = *response->content_length();
    down_body = BodyFraming::kLength;
  } else if (!response->is_done()) {
    down_body = BodyFraming::kUntilClose;  // ends when the upstream closes; so does ours
  }
  if (response->is_done()) down_body = BodyFraming::kNone;  // HEAD, 204, 304: headers only
  const std::string down_head =
      response_head(answer.result_int(),
                    std::string_view(answer.reason().data(), answer.reason().size()),
                    end_to_end_fields(fields_of(answer.base())), down_framing);
  co_await asio::async_write(guest, asio::buffer(down_head), with_error(ec));
  if (ec) {
    event_.error = "the guest went away: " + ec.message();
    close();
    co_return;
  }
  if (down_body != BodyFraming::kNone) {
    http::response_parser<http::buffer_body> body_parser(std::move(*response));
    body_parser.body_limit(limits_.max_bytes_per_connection);
    const std::string failed = co_await relay_body(upstream, upstream_buffer, body_parser,
                                                   guest, down_body, traffic_, false);
    if (!failed.empty()) event_.error = "response body: " + failed;
  }
  co_await finish(guest);
}

// The two ways a guest's request is served: a plain proxy request, and inside TLS.
using Connection = EgressConnection;
template asio::awaitable<std::optional<Refusal>> Connection::read_request(
    Connection::GuestSocket&, boost::beast::flat_buffer&, Connection::HeaderParser&);
template asio::awaitable<std::optional<Refusal>> Connection::read_request(
    Connection::GuestTls&, boost::beast::flat_buffer&, Connection::HeaderParser&);
template asio::awaitable<void> Connection::refuse_on(Connection::GuestSocket&, const Refusal&,
                                                     std::string_view);
template asio::awaitable<void> Connection::refuse_on(Connection::GuestTls&, const Refusal&,
                                                     std::string_view);
template asio::awaitable<void> Connection::exchange(Connection::GuestSocket&,
                                                    asio::ip::tcp::socket&, const std::string&,
                                                    const std::string&,
                                                    boost::beast::flat_buffer&,
                                                    Connection::HeaderParser&);
template asio::awaitable<void> Connection::exchange(Connection::GuestTls&,
                                                    Connection::UpstreamTls&, const std::string&,
                                                    const std::string&,
                                                    boost::beast::flat_buffer&,
                                                    Connection::HeaderParser&);

}  // namespace forkvm::net
