#include "sandbox/socket_io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/text.hpp"
#include "contract/vsock_connect.hpp"
#include "forkvm/sandbox_errors.hpp"

namespace forkvm::sandbox {
namespace {


// Waits for `events` on fd; false when the deadline passed first.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (r > 0) return true;
    if (r == 0) {
      if (Clock::now() >= deadline) return false;
      continue;
    }
    if (errno != EINTR) throw AgentUnreachableError("poll on the agent socket: " + errno_text(errno));
  }
}

}  // namespace

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

int UniqueFd::release() noexcept { return std::exchange(fd_, -1); }

int poll_timeout_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

UniqueFd connect_unix(const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw AgentUnreachableError("agent socket path '" + path + "' is empty or longer than " +
                                std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw AgentUnreachableError("socket(AF_UNIX): " + errno_text(errno));
  // sockaddr_un is what connect(2) takes for AF_UNIX; the cast is the socket API's own idiom.
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (::connect(fd.get(), sa, sizeof addr) == 0) return fd;
  if (errno != EINPROGRESS && errno != EAGAIN) {
    throw AgentUnreachableError("connect to agent socket " + path + ": " + errno_text(errno));
  }
  // A Unix socket whose listener's backlog is full: wait for it to accept us.
  if (!wait_for(fd.get(), POLLOUT, deadline)) {
    throw TimeoutError("connect to agent socket " + path + ": no answer before the deadline");
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) throw AgentUnreachableError("connect to agent socket " + path + ": " + errno_text(err));
  return fd;
}

std::string vsock_handshake(int fd, uint32_t port, Clock::time_point deadline) {
  write_all(fd, vsock_connect_line(port), deadline);
  // The answer is one short line; anything after it already belongs to the guest's stream.
  std::string got;
  char buf[256];
  while (got.find('\n') == std::string::npos) {
    if (got.size() > kMaxVsockConnectAnswer) {
      throw AgentUnreachableError("vsock CONNECT " + std::to_string(port) +
                                  ": the answer is not an OK line");
    }
    const size_t n = read_some(fd, buf, sizeof buf, deadline);
    if (n == 0) {
      throw AgentUnreachableError("vsock CONNECT " + std::to_string(port) +
                                  ": the connection was closed (nothing listens on that port?)");
    }
    got.append(buf, n);
  }
  const size_t nl = got.find('\n');
  const std::string line = got.substr(0, nl);
  if (!vsock_connect_accepted(line)) {
    throw AgentUnreachableError("vsock CONNECT " + std::to_string(port) + ": refused ('" +
                                printable(line, 64) + "')");
  }
  return got.substr(nl + 1);
}

void write_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLOUT, deadline)) {
        throw TimeoutError("the agent stopped reading: a write did not complete before the deadline");
      }
      continue;
    }
    throw AgentUnreachableError("write to the agent: " + errno_text(errno));
  }
}

size_t read_some(int fd, char* buf, size_t cap, Clock::time_point deadline) {
  for (;;) {
    const ssize_t n = ::recv(fd, buf, cap, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      throw AgentUnreachableError("read from the agent: " + errno_text(errno));
    }
    if (!wait_for(fd, POLLIN, deadline)) {
      throw TimeoutError("the agent did not answer before the deadline");
    }
  }
}

}  // namespace forkvm::sandbox
