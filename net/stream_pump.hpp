// Moving bytes between two stream sockets on the network thread (io_thread.hpp): a raw pump
// for tunnels and exposed ports, and an HTTP message body relay that keeps the body's framing
// (so a guest cannot smuggle a second request past the proxy's checks behind the first one's
// body). Both count bytes into a Traffic and stop at its limit.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "net/with_error.hpp"

namespace forkvm::net {

/// Bytes moved by one connection, its limit, and when a byte last moved (the idle clock).
struct Traffic {
  uint64_t up = 0;    ///< toward the far side (upstream, or the guest for an exposed port)
  uint64_t down = 0;  ///< back
  uint64_t limit = UINT64_MAX;  ///< up + down at most
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  bool over_limit = false;  ///< set when a pump stopped at `limit`

  /// Counts `n` bytes one way; false (and over_limit) once up + down would pass the limit.
  bool add(bool upward, uint64_t n) {
    last_activity = std::chrono::steady_clock::now();
    const uint64_t used = up + down;
    if (used > limit || n > limit - used) {
      over_limit = true;
      return false;
    }
    (upward ? up : down) += n;
    return true;
  }
};

/// Bytes read per step of a pump.
inline constexpr std::size_t kPumpChunk = 64 * 1024;

/// Copies `from` to `to` until `from` ends (then shuts down `to`'s sending side, so the far
/// end sees the end too), an error, or the limit (then both are closed). `upward` picks the
/// counter. Never throws: errors end the pump.
template <class From, class To>
boost::asio::awaitable<void> pump(From& from, To& to, Traffic& traffic, bool upward) {
  std::array<char, kPumpChunk> chunk{};
  boost::system::error_code ec;
  for (;;) {
    const std::size_t n = co_await from.async_read_some(boost::asio::buffer(chunk), with_error(ec));
    if (ec) {
      boost::system::error_code ignored;
      if (ec == boost::asio::error::eof) {
        to.shutdown(To::shutdown_send, ignored);
      } else {
        from.close(ignored);
        to.close(ignored);
      }
      co_return;
    }
    if (!traffic.add(upward, n)) {
      boost::system::error_code ignored;
      from.close(ignored);
      to.close(ignored);
      co_return;
    }
    co_await boost::asio::async_write(to, boost::asio::buffer(chunk.data(), n),
                                      with_error(ec));
    if (ec) {
      boost::system::error_code ignored;
      from.close(ignored);
      to.close(ignored);
      co_return;
    }
  }
}

/// How a relayed body is framed toward the far side.
enum class BodyFraming { kNone, kLength, kChunked, kUntilClose };

/// Relays the body of the message whose header `parser` has read from `from` (with `buffer`
/// holding bytes read past it) to `to`, framed as `framing` says (kChunked re-encodes the
/// decoded chunks; trailers are dropped). Returns an empty string when the whole body went
/// through, else what failed. The parser enforces its own body limit; `traffic` the
/// connection's.
template <class From, class To, bool isRequest>
boost::asio::awaitable<std::string> relay_body(
    From& from, boost::beast::flat_buffer& buffer,
    boost::beast::http::parser<isRequest, boost::beast::http::buffer_body>& parser, To& to,
    BodyFraming framing, Traffic& traffic, bool upward) {
  namespace http = boost::beast::http;
  std::array<char, kPumpChunk> chunk{};
  boost::system::error_code ec;
  // Beast reads into `buffer` as much as its free capacity (at least 512 bytes): a buffer
  // sized by the header would move the body 512 bytes per system call (measured: 0.01 of a
  // direct read). Room for a whole chunk first.
  buffer.reserve(kPumpChunk);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    co_await http::async_read(from, buffer, parser, with_error(ec));
    if (ec == http::error::need_buffer) ec = {};
    // The parser's body limit is the connection's byte limit (a declared length over it is
    // refused before any byte of the body moves).
    if (ec == http::error::body_limit) co_return std::string("the connection's byte limit");
    if (ec) co_return "reading the body: " + ec.message();
    const std::size_t n = chunk.size() - parser.get().body().size;
    if (n == 0) continue;
    if (!traffic.add(upward, n)) co_return "the connection's byte limit";
    std::string framed_head;
    if (framing == BodyFraming::kChunked) {
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
      framed_head = size_line;
    }
    std::array<boost::asio::const_buffer, 3> parts{
        boost::asio::buffer(framed_head), boost::asio::buffer(chunk.data(), n),
        boost::asio::buffer(framing == BodyFraming::kChunked ? "\r\n" : "",
                            framing == BodyFraming::kChunked ? 2 : 0)};
    co_await boost::asio::async_write(to, parts, with_error(ec));
    if (ec) co_return "writing the body: " + ec.message();
  }
  if (framing == BodyFraming::kChunked) {
    co_await boost::asio::async_write(to, boost::asio::buffer("0\r\n\r\n", 5),
                                      with_error(ec));
    if (ec) co_return "writing the body's end: " + ec.message();
  }
  co_return std::string();
}

}  // namespace forkvm::net
