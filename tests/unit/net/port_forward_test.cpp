// PortForward (net/port_forward.hpp) against a stand-in for the VM's vsock socket: a Unix
// listener that speaks the device's "CONNECT <port>\n" / "OK <n>\n" handshake and then the
// agent's "FORWARD <port>\n" / "OK\n", then answers like a guest HTTP server. The real
// handshake parsers run; only the VM is absent. Every socket has a 10 s timeout.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/errors.hpp"
#include "net/port_forward.hpp"
#include "tests/support/guest_client.hpp"
#include "tests/support/loopback_request.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::net {
namespace {

void set_timeouts(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (line.size() < 256 && ::recv(fd, &c, 1, 0) == 1) {
    if (c == '\n') return line;
    line += c;
  }
  return line + "<eof>";
}

void send_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

/// The VM's vsock socket as the port forward sees it. `device_answer` is what the device says
/// to CONNECT, `agent_answer` what the agent says to FORWARD; each accepted connection is
/// served on its own thread; the requests seen are recorded.
class FakeVsock {
 public:
  FakeVsock(std::string path, std::string device_answer, std::string agent_answer)
      : path_(std::move(path)),
        device_answer_(std::move(device_answer)),
        agent_answer_(std::move(agent_answer)),
        fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "fake vsock socket " << path_ << ": " << std::strerror(errno);
    }
    acceptor_ = std::thread([this] {
      for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0 || stopping_) {
          if (c >= 0) ::close(c);
          return;
        }
        set_timeouts(c);
        servers_.emplace_back([this, c] { serve(c); });
      }
    });
  }
  ~FakeVsock() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : servers_) t.join();
  }
  std::vector<std::string> connects() {
    std::lock_guard lock(mu_);
    return connects_;
  }
  std::vector<std::string> forwards() {
    std::lock_guard lock(mu_);
    return forwards_;
  }

 private:
  void serve(int c) {
    const std::string connect = read_line(c);
    {
      std::lock_guard lock(mu_);
      connects_.push_back(connect);
    }
    send_all(c, device_answer_);
    if (device_answer_.rfind("OK ", 0) == 0) {
      const std::string forward = read_line(c);
      {
        std::lock_guard lock(mu_);
        forwards_.push_back(forward);
      }
      send_all(c, agent_answer_);
      if (agent_answer_ == "OK\n") {
        const std::string request = read_line(c);
        send_all(c, "HTTP/1.0 200 OK\r\n\r\necho " + request);
      }
    }
    ::close(c);
  }

  std::string path_, device_answer_, agent_answer_;
  int fd_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::string> connects_, forwards_;
  std::vector<std::thread> servers_;  // acceptor thread only, joined after it
  std::thread acceptor_;
};

TEST(PortForward, CarriesATcpConnectionThroughBothHandshakes) {
  test::TempDir dir("fwd");
  FakeVsock vsock(dir / "v.sock", "OK 1073741824\n", "OK\n");
  PortForward forward(dir / "v.sock", 8000, uint16_t{0});
  ASSERT_NE(forward.host_port(), 0);
  EXPECT_EQ(test::loopback_exchange(forward.host_port(), "GET / HTTP/1.0\n"),
            "HTTP/1.0 200 OK\r\n\r\necho GET / HTTP/1.0");
  EXPECT_EQ(vsock.connects(), std::vector<std::string>{"CONNECT 1025"});
  EXPECT_EQ(vsock.forwards(), std::vector<std::string>{"FORWARD 8000"});
}

TEST(PortForward, CarriesAUnixSocketConnectionAndOwnsThePath) {
  test::TempDir dir("fwd");
  FakeVsock vsock(dir / "v.sock", "OK 7\n", "OK\n");
  const std::string path = dir / "web.sock";
  {
    PortForward forward(dir / "v.sock", 8000, path);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    test::GuestClient client(path);
    ASSERT_TRUE(client.connected());
    client.send("GET /x HTTP/1.0\n");
    EXPECT_EQ(client.read_all(), "HTTP/1.0 200 OK\r\n\r\necho GET /x HTTP/1.0");
    EXPECT_THROW(PortForward(dir / "v.sock", 8000, path), ConfigError);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "removed by the destructor";
}

// Whatever the device or the agent says other than its acceptance closes the host connection
// without a byte, and the forward keeps serving.
TEST(PortForward, ARefusalOrAMalformedAnswerClosesTheConnection) {
  for (const auto& [device, agent] : std::vector<std::pair<std::string, std::string>>{
           {"", "OK\n"},                // the device closes (nobody listens)
           {"OK\n", "OK\n"},            // no port number
           {"OK 12x\n", "OK\n"},        // not digits
           {"OK 12345678901\n", "OK\n"},  // 11 digits
           {"OK 5\n", "ERR no listener on port 8000\n"},
           {"OK 5\n", "YES\n"},
           {"OK 5\n", std::string(300, 'O')}}) {  // an overlong answer line
    test::TempDir dir("fwd");
    FakeVsock vsock(dir / "v.sock", device, agent);
    PortForward forward(dir / "v.sock", 8000, uint16_t{0});
    EXPECT_EQ(test::loopback_exchange(forward.host_port(), "GET / HTTP/1.0\n"), "")
        << "device " << device << " agent " << agent;
  }
}

TEST(PortForward, RefusesPortZeroAndBadPaths) {
  EXPECT_THROW(PortForward("/nonexistent", 0, uint16_t{0}), ConfigError);
  EXPECT_THROW(PortForward("/nonexistent", 80, std::string()), ConfigError);
  EXPECT_THROW(PortForward("/nonexistent", 80, std::string(200, 'a')), ConfigError);
  EXPECT_THROW(PortForward("/nonexistent", 80, "/nonexistent-dir/x.sock"), ConfigError);
}

}  // namespace
}  // namespace forkvm::net
