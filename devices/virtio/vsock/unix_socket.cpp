#include "devices/virtio/vsock/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "base/text.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"

namespace forkvm::vsock {
namespace {

std::optional<sockaddr_un> make_addr(const std::string& path) noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return std::nullopt;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

const sockaddr* as_sockaddr(const sockaddr_un& a) noexcept {
  return reinterpret_cast<const sockaddr*>(&a);
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw VsockError("vsock socket " + path + ": " + what + ": " + errno_text(err));
}

Fd new_socket(const std::string& path) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) fail(path, "socket", errno);
  return s;
}

// True when something accepts connections on `path` right now.
bool has_live_listener(const sockaddr_un& addr) noexcept {
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return true;  // cannot tell: be conservative and keep the file
  if (::connect(probe.get(), as_sockaddr(addr), sizeof(addr)) == 0) return true;
  // ECONNREFUSED: a socket file nobody listens on. EAGAIN would mean a full backlog: live.
  return errno != ECONNREFUSED;
}

}  // namespace

UnixListener::UnixListener(std::string path) : path_(std::move(path)) {
  const auto addr = make_addr(path_);
  if (!addr) {
    throw VsockError("vsock socket " + path_ + ": path is empty or longer than " +
                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  fd_ = new_socket(path_);
  if (::bind(fd_.get(), as_sockaddr(*addr), sizeof(*addr)) != 0) {
    const int err = errno;
    if (err != EADDRINUSE) fail(path_, "bind", err);
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) fail(path_, "bind", err);
    if (!S_ISSOCK(st.st_mode)) {
      throw VsockError("vsock socket " + path_ + ": exists and is not a socket");
    }
    if (has_live_listener(*addr)) {
      throw VsockError("vsock socket " + path_ + ": already in use by a listening process");
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) fail(path_, "unlink stale socket", errno);
    if (::bind(fd_.get(), as_sockaddr(*addr), sizeof(*addr)) != 0) fail(path_, "bind", errno);
  }
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  if (::listen(fd_.get(), 128) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    fail(path_, "listen", err);
  }
}

UnixListener::~UnixListener() {
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
}

Fd UnixListener::accept() const noexcept {
  for (;;) {
    const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Fd(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    return Fd();
  }
}

Fd connect_unix(const std::string& path) noexcept {
  const auto addr = make_addr(path);
  if (!addr) return Fd();
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) return Fd();
  for (;;) {
    if (::connect(s.get(), as_sockaddr(*addr), sizeof(*addr)) == 0) return s;
    if (errno != EINTR) return Fd();
  }
}

IoResult read_some(int fd, std::span<uint8_t> out) noexcept {
  IoResult r;
  for (;;) {
    const ssize_t n = ::recv(fd, out.data(), out.size(), MSG_DONTWAIT);
    if (n > 0) {
      r.bytes = static_cast<size_t>(n);
    } else if (n == 0) {
      r.eof = out.size() != 0;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
    } else {
      r.error = true;
    }
    return r;
  }
}

IoResult write_some(int fd, std::span<const uint8_t> data) noexcept {
  IoResult r;
  for (;;) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      r.bytes = static_cast<size_t>(n);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
    } else {
      r.error = true;
    }
    return r;
  }
}

bool peer_hung_up(int fd) noexcept {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

}  // namespace forkvm::vsock
