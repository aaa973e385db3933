// Blocking-with-deadline I/O on a non-blocking Unix stream socket: connect, the
// Firecracker-style "CONNECT <port>\n" / "OK <n>\n" handshake, and whole writes. Every call
// takes a deadline and throws TimeoutError when it passes, AgentUnreachableError when the
// peer refuses or goes away.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace forkvm::sandbox {

using Clock = std::chrono::steady_clock;

/// An owned file descriptor (closed on destruction).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  /// The descriptor, or -1.
  int get() const noexcept { return fd_; }
  /// Gives up ownership.
  int release() noexcept;

 private:
  int fd_ = -1;
};

/// Connects a non-blocking, close-on-exec AF_UNIX stream socket to `path`.
UniqueFd connect_unix(const std::string& path, Clock::time_point deadline);

/// Performs the vsock CONNECT handshake for `port` on a connected socket. Returns any bytes
/// the peer sent after the "OK <n>\n" line (the start of the stream). Throws
/// AgentUnreachableError when the peer answers anything else or closes.
std::string vsock_handshake(int fd, uint32_t port, Clock::time_point deadline);

/// Writes all of `data`, waiting for the socket to drain until `deadline`.
void write_all(int fd, std::string_view data, Clock::time_point deadline);

/// Reads what is available (at most `cap` bytes into `buf`), waiting until `deadline` for
/// something to arrive. Returns 0 at end of stream.
size_t read_some(int fd, char* buf, size_t cap, Clock::time_point deadline);

/// Milliseconds until `deadline` for poll(2): 0 when past, capped to int.
int poll_timeout_ms(Clock::time_point deadline);

}  // namespace forkvm::sandbox
