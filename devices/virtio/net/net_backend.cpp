#include "devices/virtio/net/net_backend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd_flags.hpp"
#include "base/text.hpp"
#include "devices/virtio/net/tap.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

FrameEndpoint FrameEndpoint::open_tap(const std::string& name, const std::string& netns) {
  Fd fd = open_tap_fd(name, netns);
  std::string what = "tap '" + name + "'";
  if (!netns.empty()) what += " in " + netns;
  return FrameEndpoint(std::move(fd), false, false, true, std::move(what));
}

FrameEndpoint FrameEndpoint::adopt(int fd) {
  if (fd < 0) throw ConfigError("net: backend descriptor " + std::to_string(fd) + " is not open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw ConfigError("net: backend descriptor " + std::to_string(fd) + ": " + errno_text(errno));
  }
  bool is_socket = false;
  bool is_seqpacket = false;
  if (S_ISSOCK(st.st_mode)) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      throw ConfigError("net: backend socket " + std::to_string(fd) + ": SO_TYPE: " +
                        errno_text(errno));
    }
    // A stream socket has no frame boundaries: one read could hold half a frame or two.
    if (type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
      throw ConfigError("net: backend socket " + std::to_string(fd) +
                        " is not SOCK_DGRAM or SOCK_SEQPACKET (frames need their boundaries)");
    }
    is_socket = true;
    is_seqpacket = type == SOCK_SEQPACKET;
  } else if (!S_ISCHR(st.st_mode)) {
    throw ConfigError("net: backend descriptor " + std::to_string(fd) +
                      " is neither a TAP nor a datagram socket");
  } else if (const std::string why = tap_fd_problem(fd); !why.empty()) {
    throw ConfigError("net: backend descriptor " + std::to_string(fd) + " " + why);
  }
  Fd own(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own) throw Error("net: duplicating backend descriptor " + std::to_string(fd) + ": " + errno_text(errno));
  // O_NONBLOCK is a property of the open file description, shared with the caller's
  // descriptor: the device never blocks on it.
  if (const int err = set_nonblocking(own.get()); err != 0) {
    throw Error("net: backend descriptor " + std::to_string(fd) + ": O_NONBLOCK: " + errno_text(err));
  }
  const bool vnet = !is_socket && tap_has_vnet_header(own.get());
  if (vnet) {
    if (const std::string why = adopt_vnet_header(own.get()); !why.empty()) {
      throw Error("net: backend TAP descriptor " + std::to_string(fd) + ": " + why);
    }
  }
  return FrameEndpoint(std::move(own), is_socket, is_seqpacket, vnet,
                       is_socket ? "socket fd" : "tap fd");
}

FrameEndpoint::Received FrameEndpoint::receive(std::span<uint8_t> buf) noexcept {
  for (;;) {
    // MSG_TRUNC on a datagram socket returns the frame's real length even when it did not fit.
    const ssize_t n = is_socket_ ? ::recv(fd_.get(), buf.data(), buf.size(), MSG_TRUNC)
                                 : ::read(fd_.get(), buf.data(), buf.size());
    if (n > 0) return {Received::Kind::kFrame, static_cast<size_t>(n), 0};
    if (n == 0) {
      // End of stream: a TAP never reads 0 bytes (it has a frame or EAGAIN), a sequenced-packet
      // socket does once its peer closed, and a datagram socket that was shut down does forever
      // (with POLLHUP); otherwise it is an empty datagram (the device counts it as a runt).
      if (!is_socket_ || is_seqpacket_ || hung_up()) return {Received::Kind::kClosed, 0, 0};
      return {Received::Kind::kFrame, 0, 0};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // A datagram socket shut down for both directions reads EAGAIN forever while poll()
      // reports POLLIN | POLLHUP: that is an end too, or the reader would spin on it.
      return {hung_up() ? Received::Kind::kClosed : Received::Kind::kNone, 0, 0};
    }
    return {Received::Kind::kError, 0, errno};
  }
}

bool FrameEndpoint::hung_up() const noexcept {
  if (!is_socket_) return false;
  pollfd p{fd_.get(), 0, 0};  // POLLHUP is reported whatever the events asked for
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

int FrameEndpoint::set_offloads(unsigned tun_flags) noexcept {
  if (!vnet_header_) return EINVAL;
  return set_tap_offloads(fd_.get(), tun_flags);
}

int FrameEndpoint::send(std::span<const uint8_t> frame) noexcept {
  for (;;) {
    // MSG_NOSIGNAL: a peer that closed its end gives EPIPE, not a SIGPIPE for the whole process.
    const ssize_t n = is_socket_ ? ::send(fd_.get(), frame.data(), frame.size(), MSG_NOSIGNAL)
                                 : ::write(fd_.get(), frame.data(), frame.size());
    if (n >= 0) return static_cast<size_t>(n) == frame.size() ? 0 : EMSGSIZE;
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? EAGAIN : errno;
  }
}

}  // namespace forkvm
