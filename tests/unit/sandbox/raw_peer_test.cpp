// unit tier: AgentClient against peers that misbehave in ways the real agent never does (a hung
// agent, garbage, no hello), the vsock CONNECT handshake (proxied to the real agent, refused,
// closed, silent), and host-side validation that sends nothing.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "forkvm/agent_client.hpp"
#include "tests/unit/sandbox/test_support.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using test::RawPeer;

AgentClientOptions options(const std::string& path) { return test::client_options(path, 500ms); }

bool has_hello(const std::string& s) { return s.size() >= test::hello_bytes().size(); }

// Answers the hello, then counts every byte the client sends until the test ends.
struct CountingPeer {
  std::atomic<size_t> bytes_after_hello{0};
  RawPeer peer{[this](int fd, std::atomic<bool>& stop) {
    test::read_until(fd, has_hello, 2s);
    test::write_all(fd, test::hello_bytes());
    char buf[4096];
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      bytes_after_hello += static_cast<size_t>(n);
    }
    ::close(fd);
  }};
};

TEST(AgentClientPeers, HungAgentTimesOutAndStaysBounded) {
  CountingPeer hung;  // answers the hello, then never anything
  auto c = AgentClient::connect(options(hung.peer.path()));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(c->ping(), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(c->stat("/x"), TimeoutError);
  EXPECT_THROW(c->exec({"true"}), TimeoutError);  // "started" never comes
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(AgentClientPeers, NoHelloIsATimeout) {
  RawPeer silent([](int fd, std::atomic<bool>& stop) {
    test::read_until(fd, [](const std::string&) { return false; }, 5s, &stop);
    ::close(fd);
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(AgentClient::connect(options(silent.path())), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(AgentClientPeers, MalformedFrameFailsEveryPendingRequest) {
  RawPeer garbage([](int fd, std::atomic<bool>&) {
    test::read_until(fd, has_hello, 2s);
    test::write_all(fd, test::hello_bytes());
    // Once both requests are in flight, answer with bytes whose magic is wrong.
    test::read_until(fd, [](const std::string& s) {
      return s.find("\"stat\"") != std::string::npos && s.find("\"exec\"") != std::string::npos;
    }, 3s);
    test::write_all(fd, "XXXX this is not a frame");
    test::read_until(fd, [](const std::string&) { return false; }, 1s);
    ::close(fd);
  });
  auto o = options(garbage.path());
  o.request_timeout = 5s;
  auto c = AgentClient::connect(o);
  auto stat = std::async(std::launch::async, [&c] { c->stat("/x"); });
  auto exec = std::async(std::launch::async, [&c] { c->exec({"true"}); });
  ASSERT_EQ(stat.wait_for(4s), std::future_status::ready);
  ASSERT_EQ(exec.wait_for(4s), std::future_status::ready);
  EXPECT_THROW(stat.get(), AgentProtocolError);
  try {
    exec.get();
    ADD_FAILURE() << "exec should fail";
  } catch (const AgentProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("BadMagic"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(c->connected());
  EXPECT_THROW(c->ping(), AgentProtocolError);
}

TEST(AgentClientPeers, CallerMistakesAreRejectedBeforeAnythingIsSent) {
  CountingPeer peer;
  auto c = AgentClient::connect(options(peer.peer.path()));
  auto host_side = [](auto&& f, ErrorKind kind) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const OperationError& e) {
      EXPECT_FALSE(e.from_guest()) << e.what();
      EXPECT_EQ(e.kind(), kind) << e.what();
    }
  };
  const auto inv = ErrorKind::kInvalidArgument;
  host_side([&] { c->exec({}); }, inv);
  host_side([&] { c->exec({""}); }, inv);
  host_side([&] { c->exec({"a", std::string("b\0c", 3)}); }, inv);
  host_side([&] { c->exec_shell(""); }, inv);
  ExecOptions bad_env;
  bad_env.env = {{"1BAD", "v"}};
  host_side([&] { c->exec({"true"}, bad_env); }, inv);
  bad_env.env = {{"GOOD", "multi\nline"}};
  host_side([&] { c->exec({"true"}, bad_env); }, inv);
  ExecOptions bad_cwd;
  bad_cwd.cwd = "relative/dir";
  host_side([&] { c->exec({"true"}, bad_cwd); }, inv);
  ExecOptions interactive;
  interactive.interactive_stdin = true;
  host_side([&] { c->exec({"cat"}, interactive); }, inv);
  host_side([&] { c->read_file("relative"); }, inv);
  host_side([&] { c->write_file("/" + std::string(5000, 'a'), "x"); }, inv);
  host_side([&] { c->write_file("/x", "x", 010000); }, inv);
  host_side([&] { c->stat(""); }, inv);
  host_side([&] { c->rename("/a", "b"); }, inv);
  host_side([&] { c->set_env({{"A-B", "x"}}); }, inv);
  host_side([&] { c->set_secret("../etc", "x"); }, inv);
  host_side([&] { c->set_secret(std::string(256, 'a'), "x"); }, inv);
  host_side([&] { c->set_secret("big", std::string((1 << 20) + 1, 'x')); }, ErrorKind::kTooLarge);
  std::vector<std::string> huge_argv(100, std::string(1000, 'a'));  // > 64 KiB header
  host_side([&] { c->exec(huge_argv); }, ErrorKind::kTooLarge);
  host_side([&] { c->exec({"echo", "\xff\xfe"}); }, inv);  // not UTF-8: cannot be JSON
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(peer.bytes_after_hello.load(), 0u);
  EXPECT_TRUE(c->connected());
}

// --- the vsock CONNECT handshake ---

// Answers "CONNECT <port>\n" with `reply`; with "OK ..." it then proxies bytes to `target`.
RawPeer handshake_peer(std::string reply, std::string target = {}) {
  return RawPeer([reply, target](int fd, std::atomic<bool>& stop) {
    const std::string line = test::read_until(fd, [](const std::string& s) {
      return s.find('\n') != std::string::npos;
    }, 2s);
    if (line != "CONNECT 1024\n" || reply == "close") {
      ::close(fd);
      return;
    }
    if (reply == "silent") {
      test::read_until(fd, [](const std::string&) { return false; }, 5s, &stop);
      ::close(fd);
      return;
    }
    test::write_all(fd, reply);
    if (target.empty()) {
      ::close(fd);
      return;
    }
    const int up = test::connect_to(target);
    char buf[65536];
    while (!stop && up >= 0) {
      pollfd p[2] = {{fd, POLLIN, 0}, {up, POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2; ++i) {
        if (p[i].revents == 0) continue;
        const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) closed = true;
        else test::write_all(p[1 - i].fd, std::string(buf, static_cast<size_t>(n)));
      }
      if (closed) break;
    }
    if (up >= 0) ::close(up);
    ::close(fd);
  });
}

TEST(VsockHandshake, OkThenFramesReachTheAgent) {
  test::AgentHost host;
  RawPeer peer = handshake_peer("OK 1073741824\n", host.socket());
  auto o = options(peer.path());
  o.vsock_port = 1024;
  o.request_timeout = 5s;
  auto c = AgentClient::connect(o);
  EXPECT_EQ(c->ping().version, 1u);
  EXPECT_EQ(c->exec({"echo", "via vsock"}).stdout_data, "via vsock\n");
}

TEST(VsockHandshake, RefusedClosedOrSilentAreTyped) {
  for (const std::string reply : {"FAILURE no listener\n", "close"}) {
    RawPeer peer = handshake_peer(reply);
    auto o = options(peer.path());
    o.vsock_port = 1024;
    EXPECT_THROW(AgentClient::connect(o), AgentUnreachableError) << reply;
  }
  RawPeer silent = handshake_peer("silent");
  auto o = options(silent.path());
  o.vsock_port = 1024;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(AgentClient::connect(o), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  o.socket_path = "/nonexistent/forkvm.sock";
  EXPECT_THROW(AgentClient::connect(o), AgentUnreachableError);
}

}  // namespace
}  // namespace forkvm
