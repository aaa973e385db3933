#include "devices/virtio/vsock/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// True when something accepts connections on `path` right now. The probe socket is
// non-blocking: a blocking Unix-domain connect() waits, without limit, for room in the
// listener's backlog, so a live but busy (or hostile, never-accepting) listener would hang the
// caller. Non-blocking, a full backlog answers EAGAIN at once, which counts as live.
bool has_live_listener(const sockaddr_un& addr) noexcept {
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) return true;  // cannot tell: be conservative and keep the file
  for (;;) {
    if (::connect(probe.get(), as_sockaddr(addr), sizeof(addr)) == 0) return true;
    if (errno != EINTR) break;
  }
  // ECONNREFUSED: a socket file nobody listens on. EAGAIN (full backlog) or anything else: live.
  return errno != ECONNREFUSED;
}

// The directory that will hold the socket file: whoever may write there may unlink our socket
// and bind their own in its place (host programs would then talk to them), so it must be
// writable by its owner only, and that owner must be us or root.
void check_parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) fail(path, "stat its directory " + dir, errno);
  if (!S_ISDIR(st.st_mode)) throw VsockError("vsock socket " + path + ": " + dir + " is not a directory");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw VsockError("vsock socket " + path + ": its directory " + dir + " (mode " + mode +
                     ") is writable by group or others, who could replace the socket; use a "
                     "directory only its owner can write (for example one made by mkdtemp)");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    throw VsockError("vsock socket " + path + ": its directory " + dir + " belongs to uid " +
                     std::to_string(st.st_uid) + ", not to this user or root");
  }
}

}  // namespace

UnixListener::UnixListener(std::string path) : path_(std::move(path)) {
  const auto addr = make_addr(path_);
  if (!addr) {
    throw VsockError("vsock socket " + path_ + ": path is empty or longer than " +
                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  check_parent_dir(path_);
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
  // 0600 before listen(): bind() made the file with 0777 & ~umask, but until listen() every
  // connect() is refused, so nobody can get in through that mode in between. (Binding under a
  // fresh 0700 directory would need a directory we own, which a Vm caller's path does not give;
  // changing the umask is process-wide and racy in a library; fchmod() on a socket does not
  // reach the file on Linux.) Connecting needs write permission on the file: 0600 keeps it to
  // this user.
  if (::chmod(path_.c_str(), S_IRUSR | S_IWUSR) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    fail(path_, "chmod 0600", err);
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
