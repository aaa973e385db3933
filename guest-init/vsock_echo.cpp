#include "guest-init/vsock_echo.hpp"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace forkvm {
namespace {

/// Writes all of buf; false when the peer went away.
bool write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void echo_connection(int fd) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !write_all(fd, buf, static_cast<size_t>(n))) return;
  }
}

}  // namespace

int run_vsock_echo(uint32_t port) {
  const int ls = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) {
    std::fprintf(stderr, "vsock-echo: socket(AF_VSOCK): %s\n", std::strerror(errno));
    return 1;
  }
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, 4) != 0) {
    std::fprintf(stderr, "vsock-echo: bind/listen port %u: %s\n", port, std::strerror(errno));
    return 1;
  }
  std::printf("listening on vsock port %u\n", port);
  std::fflush(stdout);
  for (;;) {
    const int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "vsock-echo: accept: %s\n", std::strerror(errno));
      return 1;
    }
    echo_connection(fd);
    ::close(fd);
  }
}

}  // namespace forkvm
