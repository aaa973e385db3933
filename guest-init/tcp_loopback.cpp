#include "guest-init/tcp_loopback.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace forkvm::relay {
namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

}  // namespace

agent::UniqueFd listen_loopback_tcp(std::uint16_t port, std::string& why) {
  agent::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const std::string where = "127.0.0.1:" + std::to_string(port);
  if (!fd.valid()) {
    why = std::string("socket(AF_INET): ") + std::strerror(errno);
    return {};
  }
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    why = std::string("SO_REUSEADDR: ") + std::strerror(errno);
    return {};
  }
  const sockaddr_in addr = loopback(port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    why = "bind " + where + ": " + std::strerror(errno);
    return {};
  }
  if (::listen(fd.get(), 128) != 0) {
    why = "listen on " + where + ": " + std::strerror(errno);
    return {};
  }
  return fd;
}

std::uint16_t bound_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sin_family != AF_INET) {
    return 0;
  }
  return ntohs(addr.sin_port);
}

void set_no_delay(int fd) noexcept {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Dialed dial_loopback_tcp(std::uint16_t port) {
  Dialed out;
  agent::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    out.error = errno;
    return out;
  }
  set_no_delay(fd.get());
  const sockaddr_in addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS && errno != EINTR) {  // EINTR: the connect goes on
    out.error = errno;
    return out;
  }
  out.fd = std::move(fd);
  return out;
}

}  // namespace forkvm::relay
