// A small HTTP/1.1 origin server on the host's loopback for the network tests (Boost.Beast,
// synchronous, one thread per connection, all joined by the destructor). Paths:
//   /hello            "hello"
//   /headers          the request's header block as received (to check what a proxy sent)
//   /record           "recorded"; the header block is kept for recorded() (so the client
//                     never sees what the server received)
//   /echo             the request body back (Content-Length or chunked in, length out)
//   /bytes?n=N        N bytes of 'x' (N <= 1 GiB), with Content-Length
//   /chunked?n=N      N bytes of 'y', chunked
//   /stall            reads the request and never answers (until the server stops)
// Anything else: 404. Every request is counted.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_routes.hpp"

namespace forkvm::test {

class HttpTestServer {
 public:
  /// Listens on 127.0.0.1 (a free port) and serves until destroyed.
  HttpTestServer() : acceptor_(io_) {
    namespace asio = boost::asio;
    const asio::ip::tcp::endpoint endpoint(asio::ip::address_v4::loopback(), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~HttpTestServer() {
    stopping_ = true;
    boost::system::error_code ec;
    // shutdown() wakes a blocked accept(); close() alone does not on Linux.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    acceptor_.close(ec);
    {
      std::lock_guard lock(mutex_);
      for (auto& socket : sockets_) {
        ::shutdown(socket->native_handle(), SHUT_RDWR);
      }
    }
    for (auto& thread : threads_) thread.join();
  }
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  uint16_t port() const noexcept { return port_; }
  int requests() const noexcept { return requests_.load(); }
  /// The header block of the last /record request.
  std::string recorded() {
    std::lock_guard lock(mutex_);
    return recorded_;
  }

 private:
  using Socket = boost::asio::ip::tcp::socket;

  void accept_loop() {
    while (!stopping_) {
      auto socket = std::make_shared<Socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      if (ec || stopping_) return;
      std::lock_guard lock(mutex_);
      sockets_.push_back(socket);
      threads_.emplace_back([this, socket] { serve(*socket); });
    }
  }

  void serve(Socket& socket) {
    serve_requests(socket);
    boost::system::error_code ec;
    socket.shutdown(Socket::shutdown_both, ec);  // the client sees the end of the connection
  }

  void serve_requests(Socket& socket) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    boost::system::error_code ec;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(256ull << 20);
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      ++requests_;
      const auto& request = parser.get();
      const std::string target(request.target());
      http::response<http::string_body> response{http::status::ok, 11};
      response.set(http::field::server, "forkvm-test");
      if (target == "/hello") {
        response.body() = "hello";
      } else if (target == "/headers") {
        response.body() = header_block(request);
      } else if (target == "/record") {
        std::lock_guard lock(mutex_);
        recorded_ = header_block(request);
        response.body() = "recorded";
      } else if (target == "/echo") {
        response.body() = request.body();
      } else if (target.rfind("/bytes", 0) == 0) {
        write_bytes(socket, query_n(target, 1ull << 30), false);
        return;
      } else if (target.rfind("/chunked", 0) == 0) {
        write_bytes(socket, query_n(target, 1ull << 30), true);
        return;
      } else if (target == "/stall") {
        char byte;
        socket.read_some(boost::asio::buffer(&byte, 1), ec);  // until the server stops
        return;
      } else {
        response.result(http::status::not_found);
        response.body() = "not found";
      }
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      http::write(socket, response, ec);
      if (ec || !request.keep_alive()) return;
    }
  }

  static void write_bytes(Socket& socket, uint64_t n, bool chunked) {
    boost::system::error_code ec;
    const std::string head =
        chunked ? std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                              "Connection: close\r\n\r\n")
                : "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) +
                      "\r\nConnection: close\r\n\r\n";
    boost::asio::write(socket, boost::asio::buffer(head), ec);
    const std::string block(64 * 1024, chunked ? 'y' : 'x');
    while (n > 0 && !ec) {
      const std::size_t k = n < block.size() ? static_cast<std::size_t>(n) : block.size();
      if (chunked) {
        char line[32];
        std::snprintf(line, sizeof line, "%zx\r\n", k);
        boost::asio::write(socket, boost::asio::buffer(std::string(line)), ec);
      }
      boost::asio::write(socket, boost::asio::buffer(block.data(), k), ec);
      if (chunked) boost::asio::write(socket, boost::asio::buffer("\r\n", 2), ec);
      n -= k;
    }
    if (chunked && !ec) boost::asio::write(socket, boost::asio::buffer("0\r\n\r\n", 5), ec);
    socket.shutdown(Socket::shutdown_send, ec);
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::string recorded_;
  std::vector<std::shared_ptr<Socket>> sockets_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

}  // namespace forkvm::test
