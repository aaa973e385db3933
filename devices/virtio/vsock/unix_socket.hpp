// The host end of the vsock bridge: AF_UNIX stream sockets (Firecracker's unix muxer backend).
// The device listens on uds_path for host-initiated connections and connects to
// "<uds_path>_<port>" for guest-initiated ones. Every socket here is non-blocking and
// close-on-exec, because the VMM lives inside someone else's process.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>

#include "base/fd.hpp"

namespace forkvm::vsock {

/// A listening Unix stream socket bound to a filesystem path.
class UnixListener {
 public:
  /// Binds and listens on `path`. A socket file already at `path` is removed first only when
  /// nothing accepts connections on it (a stale file left by a dead process); a live listener or
  /// a non-socket file makes this throw VsockError naming the path, as does a path longer than
  /// sun_path or any failing socket call. The directory holding `path` must be writable by its
  /// owner only (no group or world write bit) and owned by this user or root, or this throws
  /// VsockError saying so: anyone else who can write there could swap the socket for their own.
  /// The socket file is mode 0600 (set between bind and listen, before anyone can connect). The
  /// probe of an existing socket file never blocks (a full backlog counts as a live listener).
  explicit UnixListener(std::string path);
  /// Closes the socket and unlinks the path, but only if it still names the socket bound here
  /// (same device and inode), so a newer socket someone else bound there survives.
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  /// The listening descriptor (for epoll).
  int fd() const noexcept { return fd_.get(); }
  /// The path it is bound to.
  const std::string& path() const noexcept { return path_; }
  /// Accepts one pending connection as a non-blocking socket; an empty Fd when none is pending
  /// or accept failed (for example EMFILE: the connection stays in the backlog).
  Fd accept() const noexcept;

 private:
  std::string path_;
  Fd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

/// Connects a non-blocking Unix stream socket to `path`; an empty Fd when that fails (no such
/// file, nobody listening, backlog full, path too long). A Unix-domain connect completes or
/// fails immediately, so the result is final.
Fd connect_unix(const std::string& path) noexcept;

/// Outcome of one non-blocking socket read or write.
struct IoResult {
  size_t bytes = 0;       ///< bytes transferred
  bool would_block = false;  ///< EAGAIN: try again when epoll says so
  bool eof = false;       ///< read only: orderly end of stream
  bool error = false;     ///< the socket failed (EPIPE, ECONNRESET, ...)
};

/// recv() without blocking, retried on EINTR.
IoResult read_some(int fd, std::span<uint8_t> out) noexcept;
/// send() without blocking and without SIGPIPE (MSG_NOSIGNAL), retried on EINTR.
IoResult write_some(int fd, std::span<const uint8_t> data) noexcept;
/// Whether the socket reports POLLHUP right now (the peer closed both directions), without
/// waiting. Used at end of stream to tell a full close from a half close.
bool peer_hung_up(int fd) noexcept;

}  // namespace forkvm::vsock
