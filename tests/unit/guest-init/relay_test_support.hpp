// Test support for port_relay_test: blocking socket helpers with a deadline on every wait, a
// deterministic byte pattern with its digest, and TestServer, a threaded server on a
// listening socket (a loopback TCP port standing in for a guest port, or a Unix socket
// standing in for the host's vsock port).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/relay_options.hpp"

namespace forkvm::relay::test {

using namespace std::chrono_literals;
using TestClock = std::chrono::steady_clock;

/// Default bound of one wait in these tests.
inline constexpr auto kWait = 10s;

/// A Unix stream socket listening on `path` (blocking); throws on failure.
agent::UniqueFd listen_unix(const std::string& path);
/// A blocking Unix stream socket connected to `path`; throws on failure.
agent::UniqueFd connect_unix(const std::string& path);
/// A blocking TCP socket connected to 127.0.0.1:`port`; throws on failure.
agent::UniqueFd connect_tcp(std::uint16_t port);
/// A dial of Unix socket `path` as the relay wants it (non-blocking, close-on-exec).
Dialed dial_unix(const std::string& path);
/// A loopback TCP port nothing listens on (bound, then closed).
std::uint16_t closed_tcp_port();

/// Sends all of `data` before `timeout`. False on an error or at the deadline.
bool send_all(int fd, std::string_view data, std::chrono::milliseconds timeout = kWait);
/// Reads one line (newline included) byte by byte, so nothing after it is consumed. nullopt
/// on EOF, an error, more than `max` bytes, or the deadline.
std::optional<std::string> read_line(int fd, std::size_t max = 4096,
                                     std::chrono::milliseconds timeout = kWait);

/// How a read to the end went.
struct ReadResult {
  std::string data;        ///< everything read
  bool eof = false;        ///< ended by EOF
  int error = 0;           ///< or by this errno (ECONNRESET, ...)
  bool timed_out = false;  ///< or by the deadline (or `max` bytes)
  /// Whether the peer ended the stream (EOF or an error) rather than the deadline.
  [[nodiscard]] bool ended() const { return !timed_out; }
};
/// Reads until EOF, an error, `max` bytes, or the deadline.
ReadResult read_to_end(int fd, std::chrono::milliseconds timeout = kWait,
                       std::size_t max = 64u << 20);

/// Deterministic test bytes: the `n` first bytes of the stream numbered `seed`.
std::string pattern(std::uint32_t seed, std::size_t offset, std::size_t n);

/// Length and FNV-1a hash of a byte stream.
struct Digest {
  std::uint64_t bytes = 0;
  std::uint64_t hash = 14695981039346656037ull;
  void add(std::string_view data);
  bool operator==(const Digest&) const = default;
};
/// The digest of pattern(seed, 0, n).
Digest pattern_digest(std::uint32_t seed, std::size_t n);

/// The two halves of a full-duplex exchange on `fd`: sends pattern `seed` of `n` bytes and
/// then shuts the write side, while reading to EOF. The digest of what was read, and whether
/// the sending completed.
struct Exchange {
  Digest received;
  bool sent = false;
  bool eof = false;
};
Exchange exchange(int fd, std::uint32_t seed, std::size_t n, std::chrono::milliseconds timeout = kWait);

/// A server on a listening socket: every accepted connection runs `handler(fd)` on a thread
/// of its own and is closed when the handler returns. Destruction shuts every connection
/// down (which ends blocking calls in handlers), then joins all threads.
class TestServer {
 public:
  using Handler = std::function<void(int fd)>;
  /// Serves on `listener` (already listening).
  TestServer(agent::UniqueFd listener, Handler handler);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  /// Connections accepted so far.
  [[nodiscard]] std::size_t accepted() const { return accepted_.load(); }
  /// The listener (for bound_port()).
  [[nodiscard]] int listener() const { return listener_.get(); }

 private:
  void accept_loop();

  agent::UniqueFd listener_;
  agent::UniqueFd stop_;  // eventfd
  Handler handler_;
  std::atomic<std::size_t> accepted_{0};
  std::mutex mutex_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

/// Handler: echoes every byte; at EOF shuts its write side and returns.
void echo_handler(int fd);

/// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = kWait);

}  // namespace forkvm::relay::test
