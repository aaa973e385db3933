#include "bench/bytes_origin.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <tuple>
#include <string>

#include "base/netns.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::bench {
namespace {

constexpr uint64_t kMaxBytes = 1ull << 30;

/// One accepted connection, plain or TLS: what answer() reads from and writes to.
struct Conn {
  std::function<ssize_t(char*, size_t)> recv;
  std::function<bool(const char*, size_t)> send;  ///< all of it, or false
};

// Reads the request header (at most 8 KiB; the socket has 30 s timeouts) and answers it.
void answer(const Conn& c) {
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    const ssize_t n = c.recv(buf, sizeof buf);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  uint64_t n = 0;
  const auto pos = request.find("/bytes?n=");
  if (pos != std::string::npos) n = std::strtoull(request.c_str() + pos + 9, nullptr, 10);
  if (n > kMaxBytes) n = kMaxBytes;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) +
                           "\r\nConnection: close\r\n\r\n";
  if (!c.send(head.data(), head.size())) return;
  static const std::string block(256 * 1024, 'b');
  while (n > 0) {
    const size_t k = n < block.size() ? static_cast<size_t>(n) : block.size();
    if (!c.send(block.data(), k)) return;
    n -= k;
  }
}

bool send_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void answer_plain(int fd) {
  answer({[fd](char* b, size_t n) { return ::recv(fd, b, n, 0); },
          [fd](const char* d, size_t n) { return send_all(fd, d, n); }});
  // Half-close, then drain, so the client reads the whole body before it sees an end.
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

void answer_tls(int fd, SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return;
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    answer({[ssl](char* b, size_t n) {
              const int r = SSL_read(ssl, b, static_cast<int>(n));
              return static_cast<ssize_t>(r > 0 ? r : -1);
            },
            [ssl](const char* d, size_t n) {
              return SSL_write(ssl, d, static_cast<int>(n)) == static_cast<int>(n);
            }});
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
}

/// A listening TCP socket on address:port; its descriptor and port. Throws Error.
std::pair<int, uint16_t> tcp_listener(const std::string& address, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error("bytes origin: socket: " + errno_text(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  socklen_t len = sizeof in;
  if (::inet_pton(AF_INET, address.c_str(), &in.sin_addr) != 1 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("bytes origin: listen on " + address + ":" + std::to_string(port) + ": " +
                errno_text(err));
  }
  return {fd, ntohs(in.sin_port)};
}

int unix_listener(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error("bytes origin: socket: " + errno_text(errno));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (path.size() >= sizeof un.sun_path) {
    ::close(fd);
    throw Error("bytes origin: path too long: " + path);
  }
  std::memcpy(un.sun_path, path.c_str(), path.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("bytes origin: listen on " + path + ": " + errno_text(err));
  }
  return fd;
}

}  // namespace

BytesOrigin::BytesOrigin(BytesOriginConfig config) : config_(std::move(config)) {
  int plain = -1, tls = -1, unix_fd = -1;
  try {
    const NetnsEntry entered = run_in_netns(config_.netns, [&] {
      std::tie(plain, tcp_port_) = tcp_listener(config_.tcp_address, config_.tcp_port);
      if (config_.tls) std::tie(tls, tls_port_) = tcp_listener(config_.tcp_address, 0);
    });
    if (!entered) {
      throw Error("bytes origin: network namespace " + config_.netns + ": " + entered.step +
                  ": " + errno_text(entered.err));
    }
    if (!config_.unix_path.empty()) unix_fd = unix_listener(config_.unix_path);
  } catch (...) {
    for (const int fd : {plain, tls}) {
      if (fd >= 0) ::close(fd);
    }
    throw;
  }
  fds_ = {plain};
  threads_.emplace_back([this, plain] { serve(plain, false); });
  if (tls >= 0) {
    fds_.push_back(tls);
    threads_.emplace_back([this, tls] { serve(tls, true); });
  }
  if (unix_fd >= 0) {
    fds_.push_back(unix_fd);
    threads_.emplace_back([this, unix_fd] { serve(unix_fd, false); });
  }
}

BytesOrigin::~BytesOrigin() {
  stopping_ = true;
  for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // wakes the poll below
  for (auto& t : threads_) t.join();
  for (const int fd : fds_) ::close(fd);
  if (!config_.unix_path.empty()) ::unlink(config_.unix_path.c_str());
}

void BytesOrigin::serve(int listener, bool tls) {
  while (!stopping_) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (tls) {
      answer_tls(fd, config_.tls->native_handle());
    } else {
      answer_plain(fd);
    }
    ::close(fd);
  }
}

}  // namespace forkvm::bench
