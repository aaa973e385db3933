// relay_body (net/stream_pump.hpp) against real sockets: a body arrives intact, and in reads
// of a useful size. A proxy whose header buffer set the read size moved bodies 512 bytes per
// system call (1/60 of a direct read on the host), so the number of reads is checked here.
#include <utility>  // before Boost.Asio 1.74's headers, which use std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <thread>

#include "net/stream_pump.hpp"

namespace forkvm::net {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Socket = asio::local::stream_protocol::socket;

/// A socket that counts the reads made on it (what Beast's parser loop calls).
struct CountingStream {
  Socket& socket;
  std::size_t reads = 0;
  using executor_type = Socket::executor_type;
  executor_type get_executor() { return socket.get_executor(); }
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    ++reads;
    return socket.async_read_some(buffers, std::forward<Token>(token));
  }
};

TEST(RelayBody, AResponseBodyMovesWholeAndInLargeReads) {
  constexpr std::size_t kBody = 4u << 20;
  asio::io_context io;
  Socket upstream_far(io), upstream(io), guest(io), guest_far(io);
  asio::local::connect_pair(upstream_far, upstream);
  asio::local::connect_pair(guest, guest_far);
  // The origin: a header and kBody bytes of a pattern, written by a thread of its own.
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBody) + "\r\n\r\n";
  for (std::size_t i = 0; i < kBody; ++i) response.push_back(static_cast<char>('a' + i % 26));
  std::thread origin([&] { asio::write(upstream_far, asio::buffer(response)); });
  // The guest: reads everything the relay writes, until the relay closes its side.
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    boost::system::error_code ec;
    for (;;) {
      const std::size_t n = guest_far.read_some(asio::buffer(buf), ec);
      if (ec) return;
      received.append(buf, n);
    }
  });
  CountingStream counted{upstream};
  std::string failed = "not run";
  Traffic traffic;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    boost::beast::flat_buffer buffer;  // sized by the header read, as in the proxy
    http::response_parser<http::empty_body> head;
    boost::system::error_code ec;
    co_await http::async_read_header(counted, buffer, head, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      failed = "header: " + ec.message();
      co_return;
    }
    http::response_parser<http::buffer_body> body(std::move(head));
    body.body_limit(kBody);
    failed = co_await relay_body(counted, buffer, body, guest, BodyFraming::kLength, traffic, false);
    guest.shutdown(Socket::shutdown_send, ec);
  }, asio::detached);
  io.run();
  origin.join();
  reader.join();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(traffic.down, kBody);
  ASSERT_EQ(received.size(), kBody);
  EXPECT_EQ(received, response.substr(response.size() - kBody));
  // 4 MiB in reads of at least 8 KiB on average (the relay asks for 64 KiB; a Unix socket
  // hands over what it holds): at most 512 reads, where 512-byte reads would take 8192.
  EXPECT_LE(counted.reads, kBody / 8192) << counted.reads << " reads";
}

}  // namespace
}  // namespace forkvm::net
