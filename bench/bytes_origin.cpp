#include "bench/bytes_origin.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "forkvm/errors.hpp"

namespace forkvm::bench {
namespace {

constexpr uint64_t kMaxBytes = 1ull << 30;

[[noreturn]] void fail(const std::string& what) {
  throw Error("bytes origin: " + what + ": " + std::strerror(errno));
}

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Reads the request header (at most 8 KiB, 30 s) and answers it.
void answer(int fd) {
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  uint64_t n = 0;
  const auto pos = request.find("/bytes?n=");
  if (pos != std::string::npos) n = std::strtoull(request.c_str() + pos + 9, nullptr, 10);
  if (n > kMaxBytes) n = kMaxBytes;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) +
                           "\r\nConnection: close\r\n\r\n";
  if (!write_all(fd, head.data(), head.size())) return;
  static const std::string block(256 * 1024, 'b');
  while (n > 0) {
    const size_t k = n < block.size() ? static_cast<size_t>(n) : block.size();
    if (!write_all(fd, block.data(), k)) return;
    n -= k;
  }
  ::shutdown(fd, SHUT_WR);
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

}  // namespace

BytesOrigin::BytesOrigin(const std::string& unix_path) : unix_path_(unix_path) {
  tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (tcp_fd_ < 0) fail("socket");
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof in;
  if (::bind(tcp_fd_, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 ||
      ::listen(tcp_fd_, 16) != 0 ||
      ::getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&in), &len) != 0) {
    fail("listen on 127.0.0.1");
  }
  tcp_port_ = ntohs(in.sin_port);
  unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (unix_fd_ < 0) fail("socket");
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (unix_path.size() >= sizeof un.sun_path) throw Error("bytes origin: path too long");
  std::strncpy(un.sun_path, unix_path.c_str(), sizeof un.sun_path - 1);
  if (::bind(unix_fd_, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0 ||
      ::listen(unix_fd_, 16) != 0) {
    fail("listen on " + unix_path);
  }
  tcp_thread_ = std::thread([this] { serve(tcp_fd_); });
  unix_thread_ = std::thread([this] { serve(unix_fd_); });
}

BytesOrigin::~BytesOrigin() {
  stopping_ = true;
  ::shutdown(tcp_fd_, SHUT_RDWR);  // wakes the poll below
  ::shutdown(unix_fd_, SHUT_RDWR);
  tcp_thread_.join();
  unix_thread_.join();
  ::close(tcp_fd_);
  ::close(unix_fd_);
  ::unlink(unix_path_.c_str());
}

void BytesOrigin::serve(int listener) {
  while (!stopping_) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    answer(fd);
    ::close(fd);
  }
}

}  // namespace forkvm::bench
