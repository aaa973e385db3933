// A small HTTPS/1.1 origin server on the host's loopback for the TLS interception tests (Boost.Beast
// over an Asio ssl::stream, synchronous, one thread per connection, all joined by the
// destructor). Its certificate comes from the server context it is given (in the tests, a leaf of
// a separate TlsAuthority acting as a "public" CA). Paths, as HttpTestServer's:
//   /hello            "hello"
//   /headers          the request's header block as received (to check what a proxy sent)
//   /echo             the request body back
//   /bytes?n=N        N bytes of 'x' (N <= 64 MiB), with Content-Length
//   /stall            reads the request and never answers (until the server stops)
// Anything else: 404. Every request is counted.
#pragma once

#include <sys/socket.h>

#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_routes.hpp"

namespace forkvm::test {

class HttpsTestServer {
 public:
  /// Listens on 127.0.0.1 (a free port) and serves TLS with `context` until destroyed.
  explicit HttpsTestServer(std::shared_ptr<boost::asio::ssl::context> context)
      : context_(std::move(context)), acceptor_(io_) {
    namespace asio = boost::asio;
    const asio::ip::tcp::endpoint endpoint(asio::ip::address_v4::loopback(), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~HttpsTestServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes a blocked accept()
    accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    {
      std::lock_guard lock(mutex_);
      for (auto& stream : streams_) ::shutdown(stream->next_layer().native_handle(), SHUT_RDWR);
    }
    for (auto& thread : threads_) thread.join();
  }
  HttpsTestServer(const HttpsTestServer&) = delete;
  HttpsTestServer& operator=(const HttpsTestServer&) = delete;

  uint16_t port() const noexcept { return port_; }
  /// Requests read (after a completed handshake).
  int requests() const noexcept { return requests_.load(); }
  /// Handshakes completed.
  int handshakes() const noexcept { return handshakes_.load(); }

 private:
  using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

  void accept_loop() {
    while (!stopping_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) return;
      auto stream = std::make_shared<Stream>(std::move(socket), *context_);
      std::lock_guard lock(mutex_);
      streams_.push_back(stream);
      threads_.emplace_back([this, stream] { serve(*stream); });
    }
  }

  void serve(Stream& stream) {
    namespace http = boost::beast::http;
    boost::system::error_code ec;
    stream.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec) return;
    ++handshakes_;
    boost::beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64ull << 20);
    http::read(stream, buffer, parser, ec);
    if (ec) return;
    ++requests_;
    const auto& request = parser.get();
    const std::string target(request.target());
    http::response<http::string_body> response{http::status::ok, 11};
    response.set(http::field::server, "forkvm-https-test");
    if (target == "/hello") {
      response.body() = "hello";
    } else if (target == "/headers") {
      response.body() = header_block(request);
    } else if (target == "/echo") {
      response.body() = request.body();
    } else if (target.rfind("/bytes", 0) == 0) {
      response.body() = std::string(query_n(target, 64ull << 20), 'x');
    } else if (target == "/stall") {
      char byte;
      stream.next_layer().read_some(boost::asio::buffer(&byte, 1), ec);  // until the server stops
      return;
    } else {
      response.result(http::status::not_found);
      response.body() = "not found";
    }
    response.keep_alive(false);
    response.prepare_payload();
    http::write(stream, response, ec);
    if (!ec) stream.shutdown(ec);  // close_notify; the peer's reply or its close ends it
    stream.next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  }

  std::shared_ptr<boost::asio::ssl::context> context_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> handshakes_{0};
  std::mutex mutex_;
  std::vector<std::shared_ptr<Stream>> streams_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

}  // namespace forkvm::test
