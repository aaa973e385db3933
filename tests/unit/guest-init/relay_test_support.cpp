#include "tests/unit/guest-init/relay_test_support.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "guest-init/tcp_loopback.hpp"

namespace forkvm::relay::test {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::invalid_argument("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

int ms_left(TestClock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - TestClock::now());
  return static_cast<int>(std::max<long long>(left.count(), 0));
}

// Waits for `events` on `fd` until the deadline; false at the deadline.
bool wait_for(int fd, short events, TestClock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

agent::UniqueFd listen_unix(const std::string& path) {
  agent::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) fail("socket(AF_UNIX)");
  const sockaddr_un addr = unix_address(path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("bind " + path);
  if (::listen(fd.get(), 128) != 0) fail("listen " + path);
  return fd;
}

agent::UniqueFd connect_unix(const std::string& path) {
  agent::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) fail("socket(AF_UNIX)");
  const sockaddr_un addr = unix_address(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("connect " + path);
  return fd;
}

agent::UniqueFd connect_tcp(std::uint16_t port) {
  agent::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) fail("socket(AF_INET)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    fail("connect 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

Dialed dial_unix(const std::string& path) {
  Dialed out;
  agent::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    out.error = errno;
    return out;
  }
  const sockaddr_un addr = unix_address(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    out.error = errno;  // a Unix connect never stays in progress (EAGAIN: backlog full)
    return out;
  }
  out.fd = std::move(fd);
  return out;
}

std::uint16_t closed_tcp_port() {
  std::string why;
  const agent::UniqueFd fd = listen_loopback_tcp(0, why);
  if (!fd.valid()) throw std::runtime_error(why);
  return bound_port(fd.get());  // closed on return: nothing listens there any more
}

bool send_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = TestClock::now() + timeout;
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLOUT, deadline)) return false;
      continue;
    }
    return false;
  }
  return true;
}

std::optional<std::string> read_line(int fd, std::size_t max, std::chrono::milliseconds timeout) {
  const auto deadline = TestClock::now() + timeout;
  std::string line;
  while (line.size() < max) {
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 1) {
      line += c;
      if (c == '\n') return line;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLIN, deadline)) return std::nullopt;
      continue;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

ReadResult read_to_end(int fd, std::chrono::milliseconds timeout, std::size_t max) {
  const auto deadline = TestClock::now() + timeout;
  ReadResult r;
  while (r.data.size() < max) {
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, max - r.data.size()), MSG_DONTWAIT);
    if (n > 0) {
      r.data.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(fd, POLLIN, deadline)) break;
      continue;
    }
    r.error = errno;
    return r;
  }
  r.timed_out = true;
  return r;
}

std::string pattern(std::uint32_t seed, std::size_t offset, std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    // A cheap hash of (seed, position): every byte depends on both, so a dropped, repeated or
    // reordered chunk changes the digest.
    std::uint64_t x = (static_cast<std::uint64_t>(seed) << 40) ^ (offset + i);
    x *= 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    out[i] = static_cast<char>(x >> 56);
  }
  return out;
}

void Digest::add(std::string_view data) {
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  bytes += data.size();
}

Digest pattern_digest(std::uint32_t seed, std::size_t n) {
  Digest d;
  constexpr std::size_t kChunk = 1 << 16;
  for (std::size_t off = 0; off < n; off += kChunk) d.add(pattern(seed, off, std::min(kChunk, n - off)));
  return d;
}

Exchange exchange(int fd, std::uint32_t seed, std::size_t n, std::chrono::milliseconds timeout) {
  Exchange result;
  std::thread sender([&] {
    constexpr std::size_t kChunk = 1 << 16;
    const auto deadline = TestClock::now() + timeout;
    for (std::size_t off = 0; off < n; off += kChunk) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TestClock::now());
      if (left <= 0ms || !send_all(fd, pattern(seed, off, std::min(kChunk, n - off)), left)) return;
    }
    result.sent = ::shutdown(fd, SHUT_WR) == 0;
  });
  const auto deadline = TestClock::now() + timeout;
  while (true) {
    char buf[65536];
    const ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got > 0) {
      result.received.add(std::string_view(buf, static_cast<std::size_t>(got)));
      continue;
    }
    if (got == 0) {
      result.eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(fd, POLLIN, deadline)) continue;
    break;
  }
  sender.join();  // bounded: its sends stop at the same deadline
  return result;
}

TestServer::TestServer(agent::UniqueFd listener, Handler handler)
    : listener_(std::move(listener)),
      stop_(::eventfd(0, EFD_CLOEXEC)),
      handler_(std::move(handler)) {
  if (!stop_.valid()) fail("eventfd");
  acceptor_ = std::thread([this] { accept_loop(); });
}

TestServer::~TestServer() {
  const std::uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  acceptor_.join();
  {
    const std::lock_guard lock(mutex_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& thread : threads_) thread.join();
}

void TestServer::accept_loop() {
  while (true) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    const std::lock_guard lock(mutex_);
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd] {
      try {
        handler_(fd);
      } catch (...) {
      }
      const std::lock_guard inner(mutex_);
      std::erase(open_fds_, fd);
      ::close(fd);
    });
  }
}

void echo_handler(int fd) {
  const auto deadline = TestClock::now() + kWait;
  while (true) {
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TestClock::now());
      if (left <= 0ms || !send_all(fd, std::string_view(buf, static_cast<std::size_t>(n)), left)) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) ::shutdown(fd, SHUT_WR);
    return;
  }
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = TestClock::now() + timeout;
  while (TestClock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

}  // namespace forkvm::relay::test
