// A blocking Unix socket client with 10 s timeouts, standing in for the guest on the egress
// proxy's socket (as the vsock device connects the guest to it).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace forkvm::test {

/// The guest side of one proxy connection: send, then read what comes back.
class GuestClient {
 public:
  explicit GuestClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~GuestClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  // Reads until EOF, an error or the timeout; at most `max` bytes kept.
  std::string read_all(std::size_t max = 64u << 20) {
    std::string out;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      if (out.size() < max) out.append(buf, static_cast<std::size_t>(n));
      total_ += static_cast<uint64_t>(n);
    }
  }
  // Reads until `needle` arrives (or EOF/timeout).
  std::string read_until(const std::string& needle) {
    std::string out;
    char c;
    while (out.find(needle) == std::string::npos && ::recv(fd_, &c, 1, 0) == 1) out += c;
    return out;
  }
  uint64_t total() const { return total_; }

 private:
  int fd_;
  bool connected_ = false;
  uint64_t total_ = 0;
};

}  // namespace forkvm::test
