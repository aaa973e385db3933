#include "tests/unit/sandbox/test_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "contract/protocol/frame.hpp"
#include "contract/protocol/hello.hpp"

namespace forkvm::test {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 100));
}

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Reaps `pid` within `timeout`; true if it exited.
bool reap(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

AgentHost::AgentHost() : socket_((dir_ / "agent.sock")) {
  std::filesystem::create_directories(files());
  std::filesystem::create_directories(state());
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string meta = (dir_ / "meta.sock");
  const std::string st = state();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::execl(FORKVM_AGENT_HOST, FORKVM_AGENT_HOST, "--listen", socket_.c_str(), "--metadata",
            meta.c_str(), "--state-dir", st.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  const std::string got = read_until(out[0], [](const std::string& s) {
    return s.find("listening\n") != std::string::npos;
  }, std::chrono::seconds(10));
  ::close(out[0]);
  if (got.find("listening") == std::string::npos) {
    kill_now();
    throw std::runtime_error("forkvm-agent-host did not print 'listening' within 10 s");
  }
}

AgentHost::~AgentHost() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!reap(pid_, std::chrono::seconds(5))) kill_now();
  pid_ = -1;
}

void AgentHost::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(pid_, std::chrono::seconds(5));
  pid_ = -1;
}

RawPeer::RawPeer(std::function<void(int, std::atomic<bool>&)> serve) : path_((dir_ / "peer.sock")) {
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = unix_addr(path_);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("RawPeer: bind/listen failed");
  }
  thread_ = std::thread([this, serve = std::move(serve)] {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      serve(fd, stop_);
    }
  });
}

RawPeer::~RawPeer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::string read_until(int fd, const std::function<bool(const std::string&)>& pred,
                       std::chrono::milliseconds timeout, const std::atomic<bool>* stop) {
  const auto deadline = Clock::now() + timeout;
  std::string buf;
  char chunk[4096];
  while (!pred(buf) && Clock::now() < deadline && (stop == nullptr || !*stop)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) continue;
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return buf;
}

void write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = unix_addr(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string hello_bytes() { return protocol::encode(protocol::make_hello()); }

AgentClientOptions client_options(const std::string& path,
                                  std::chrono::milliseconds request_timeout) {
  AgentClientOptions o;
  o.socket_path = path;
  o.connect_timeout = std::chrono::seconds(2);
  o.request_timeout = request_timeout;
  return o;
}

}  // namespace forkvm::test
