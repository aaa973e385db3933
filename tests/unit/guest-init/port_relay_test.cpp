// PortRelay on the host: a loopback TCP listener stands in for the guest's proxy port, Unix
// sockets for the vsock ports (the forward listener and the host's egress port), and loopback
// TCP servers for the guest ports behind a FORWARD.
#include "guest-init/port_relay.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "contract/net_ports.hpp"
#include "guest-init/tcp_loopback.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/guest-init/relay_test_support.hpp"

namespace forkvm::relay::test {
namespace {

constexpr std::size_t kBig = 8u << 20;

// The answer line of a forward connection, parsed (without its newline).
std::optional<net::ForwardAnswer> answer_of(int fd) {
  const auto line = read_line(fd, net::kMaxForwardLineBytes + 1);
  if (!line || line->back() != '\n') return std::nullopt;
  return net::parse_forward_answer(std::string_view(*line).substr(0, line->size() - 1));
}

// Whether the relay closed `fd` completely (not just its write side): a write eventually
// fails once the relay's socket is gone.
bool fully_closed(int fd) {
  return eventually([fd] {
    const ssize_t n = ::send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN);
  });
}

class PortRelayTest : public ::testing::Test {
 protected:
  /// Starts the relay: egress listener on a free loopback TCP port dialing host_path() (a
  /// Unix socket), forward listener on forward_path() dialing 127.0.0.1:<port> (or
  /// `dial_forward` when given).
  void start(RelayOptions options = {}, DialForward dial_forward = dial_loopback_tcp) {
    std::string why;
    agent::UniqueFd egress = listen_loopback_tcp(0, why);
    ASSERT_TRUE(egress.valid()) << why;
    egress_port_ = bound_port(egress.get());
    ASSERT_NE(egress_port_, 0);
    options.log = [this](std::string_view line) {
      const std::lock_guard lock(log_mutex_);
      log_.emplace_back(line);
    };
    relay_ = std::make_unique<PortRelay>(
        std::move(egress), [path = host_path()] { return dial_unix(path); },
        listen_unix(forward_path()), std::move(dial_forward), std::move(options));
    relay_->start();
  }
  void TearDown() override {
    if (relay_) relay_->stop();
  }

  std::string host_path() const { return dir_.path().string() + "/host.sock"; }
  std::string forward_path() const { return dir_.path().string() + "/forward.sock"; }

  /// A forward connection that asked for `port` and got "OK".
  agent::UniqueFd forward_ok(std::uint16_t port) {
    agent::UniqueFd fd = connect_unix(forward_path());
    EXPECT_TRUE(send_all(fd.get(), net::encode_forward_request(port)));
    const auto answer = answer_of(fd.get());
    EXPECT_TRUE(answer && answer->ok) << (answer ? answer->error : "no answer");
    return fd;
  }
  bool logged(std::string_view text) {
    const std::lock_guard lock(log_mutex_);
    for (const auto& line : log_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  forkvm::test::TempDir dir_{"relay"};
  std::uint16_t egress_port_ = 0;
  std::unique_ptr<PortRelay> relay_;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
};

// A handler that runs exchange() with `seed` and keeps what it received.
struct ExchangePeer {
  std::uint32_t seed;
  std::mutex mutex;
  std::optional<Exchange> result;
  TestServer::Handler handler() {
    return [this](int fd) {
      Exchange r = exchange(fd, seed, kBig);
      const std::lock_guard lock(mutex);
      result = r;
    };
  }
  std::optional<Exchange> get() {
    const std::lock_guard lock(mutex);
    return result;
  }
};

TEST_F(PortRelayTest, EgressCarries8MiBEachWayIntact) {
  ExchangePeer host{2, {}, {}};
  TestServer server(listen_unix(host_path()), host.handler());
  start();
  const agent::UniqueFd client = connect_tcp(egress_port_);
  const Exchange mine = exchange(client.get(), 1, kBig);
  EXPECT_TRUE(mine.sent);
  EXPECT_TRUE(mine.eof) << "the host's half-close did not reach the client";
  EXPECT_EQ(mine.received, pattern_digest(2, kBig));
  ASSERT_TRUE(eventually([&] { return host.get().has_value(); }));
  EXPECT_TRUE(host.get()->eof) << "the client's half-close did not reach the host";
  EXPECT_EQ(host.get()->received, pattern_digest(1, kBig));
  EXPECT_TRUE(eventually([&] { return relay_->stats().sessions == 0; }));
}

TEST_F(PortRelayTest, ForwardCarries8MiBEachWayIntact) {
  ExchangePeer guest{4, {}, {}};
  std::string why;
  TestServer server(listen_loopback_tcp(0, why), guest.handler());
  start();
  const agent::UniqueFd client = forward_ok(bound_port(server.listener()));
  const Exchange mine = exchange(client.get(), 3, kBig);
  EXPECT_TRUE(mine.sent);
  EXPECT_TRUE(mine.eof);
  EXPECT_EQ(mine.received, pattern_digest(4, kBig));
  ASSERT_TRUE(eventually([&] { return guest.get().has_value(); }));
  EXPECT_EQ(guest.get()->received, pattern_digest(3, kBig));
}

TEST_F(PortRelayTest, ClientHalfCloseLeavesTheAnswerPath) {
  // The host answers only after the request's EOF, as an HTTP/1.0-style server would.
  TestServer server(listen_unix(host_path()), [](int fd) {
    const ReadResult request = read_to_end(fd);
    if (request.eof && request.data == "request") send_all(fd, "response");
  });
  start();
  const agent::UniqueFd client = connect_tcp(egress_port_);
  ASSERT_TRUE(send_all(client.get(), "request"));
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  const ReadResult answer = read_to_end(client.get());
  EXPECT_EQ(answer.data, "response");
  EXPECT_TRUE(answer.eof);
}

TEST_F(PortRelayTest, ServerHalfCloseLeavesTheRequestPath) {
  // The guest port speaks first and half-closes; the host's bytes must still reach it.
  std::atomic<bool> got_reply{false};
  std::string why;
  TestServer server(listen_loopback_tcp(0, why), [&](int fd) {
    if (!send_all(fd, "banner") || ::shutdown(fd, SHUT_WR) != 0) return;
    const ReadResult reply = read_to_end(fd);
    got_reply = reply.eof && reply.data == "reply";
  });
  start();
  const agent::UniqueFd client = forward_ok(bound_port(server.listener()));
  const ReadResult banner = read_to_end(client.get());
  EXPECT_EQ(banner.data, "banner");
  ASSERT_TRUE(banner.eof);
  ASSERT_TRUE(send_all(client.get(), "reply"));
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  EXPECT_TRUE(eventually([&] { return got_reply.load(); }));
  EXPECT_TRUE(eventually([&] { return relay_->stats().sessions == 0; }));
}

TEST_F(PortRelayTest, AnIdleHalfClosedPairDoesNotSpin) {
  // The host closes at once; the client keeps its side open and silent. The host's socket
  // then reports POLLHUP forever: polling it with nothing to do would spin the loop.
  TestServer server(listen_unix(host_path()), [](int) {});
  start();
  const agent::UniqueFd client = connect_tcp(egress_port_);
  const ReadResult r = read_to_end(client.get(), 5s);
  ASSERT_TRUE(r.eof);
  ASSERT_EQ(relay_->stats().sessions, 1u);
  const std::size_t before = relay_->stats().wakes;
  std::this_thread::sleep_for(300ms);
  EXPECT_LE(relay_->stats().wakes - before, 5u);
  // The client's next bytes find the host gone: both sides are closed.
  ASSERT_TRUE(send_all(client.get(), "late"));
  EXPECT_TRUE(eventually([&] { return relay_->stats().sessions == 0; }));
}

TEST_F(PortRelayTest, FiftyConcurrentPairs) {
  std::string why;
  TestServer guest(listen_loopback_tcp(0, why), echo_handler);
  TestServer host(listen_unix(host_path()), echo_handler);
  start();
  constexpr int kPairs = 50;
  std::vector<agent::UniqueFd> clients;
  for (int i = 0; i < kPairs; ++i) {
    clients.push_back(i % 2 == 0 ? forward_ok(bound_port(guest.listener())) : connect_tcp(egress_port_));
  }
  ASSERT_TRUE(eventually([&] { return relay_->stats().relaying == kPairs; }))
      << relay_->stats().relaying << " relaying";
  // All open at once: each sends its own 100 KiB (less than one direction's buffer) and
  // half-closes, then every echo is read back.
  constexpr std::size_t kEach = 100 * 1024;
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_TRUE(send_all(clients[i].get(), pattern(static_cast<std::uint32_t>(100 + i), 0, kEach)));
    ASSERT_EQ(::shutdown(clients[i].get(), SHUT_WR), 0);
  }
  for (int i = 0; i < kPairs; ++i) {
    const ReadResult echo = read_to_end(clients[i].get());
    EXPECT_TRUE(echo.eof) << i;
    EXPECT_TRUE(echo.data == pattern(static_cast<std::uint32_t>(100 + i), 0, kEach)) << i;
  }
  EXPECT_TRUE(eventually([&] { return relay_->stats().sessions == 0; }));
  EXPECT_EQ(relay_->stats().accepted, static_cast<std::size_t>(kPairs));
}

TEST_F(PortRelayTest, EgressDialFailureClosesTheClient) {
  start();  // nothing listens on host_path(): the dial fails at once (ENOENT)
  const agent::UniqueFd client = connect_tcp(egress_port_);
  const ReadResult r = read_to_end(client.get(), 5s);
  EXPECT_TRUE(r.ended());
  EXPECT_TRUE(r.data.empty());
  EXPECT_TRUE(eventually([&] { return logged("egress: dial failed"); }));
}

TEST_F(PortRelayTest, EgressConnectFailureClosesTheClient) {
  // A dial that fails only later, in its connect's completion (refused loopback port).
  std::string why;
  agent::UniqueFd egress = listen_loopback_tcp(0, why);
  ASSERT_TRUE(egress.valid()) << why;
  const std::uint16_t port = bound_port(egress.get());
  const std::uint16_t closed = closed_tcp_port();
  PortRelay relay(std::move(egress), [closed] { return dial_loopback_tcp(closed); }, {},
                  dial_loopback_tcp, {});
  relay.start();
  const agent::UniqueFd client = connect_tcp(port);
  // May already fail: the relay can have reset the connection before this write.
  (void)send_all(client.get(), "GET / HTTP/1.1\r\n\r\n");
  const ReadResult r = read_to_end(client.get(), 5s);
  EXPECT_TRUE(r.ended());
  EXPECT_TRUE(r.data.empty());
  relay.stop();
}

TEST_F(PortRelayTest, ForwardToAClosedPortAnswersErr) {
  start();
  const std::uint16_t closed = closed_tcp_port();
  const agent::UniqueFd client = connect_unix(forward_path());
  ASSERT_TRUE(send_all(client.get(), net::encode_forward_request(closed)));
  const auto answer = answer_of(client.get());
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(answer->ok);
  EXPECT_EQ(answer->error, "connect 127.0.0.1:" + std::to_string(closed) + ": Connection refused");
  EXPECT_TRUE(read_to_end(client.get(), 5s).eof);
}

TEST_F(PortRelayTest, ForwardConnectTimeoutAnswersErr) {
  // A "dial" that never completes: the read end of a pipe is never writable.
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK), 0);
  const agent::UniqueFd write_end(pipe_fds[1]);
  auto read_end = std::make_shared<agent::UniqueFd>(pipe_fds[0]);
  RelayOptions options;
  options.connect_timeout = 200ms;
  start(options, [read_end](std::uint16_t) {
    Dialed d;
    d.fd = std::move(*read_end);  // one dial only; a second one fails
    d.error = d.fd.valid() ? 0 : EMFILE;
    return d;
  });
  const auto begin = TestClock::now();
  const agent::UniqueFd client = connect_unix(forward_path());
  ASSERT_TRUE(send_all(client.get(), net::encode_forward_request(8080)));
  const auto answer = answer_of(client.get());
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->error, "connect 127.0.0.1:8080: Connection timed out");
  EXPECT_GE(TestClock::now() - begin, 190ms);
  EXPECT_LT(TestClock::now() - begin, 5s);
}

TEST_F(PortRelayTest, BadRequestLinesAnswerErrAndClose) {
  start();
  const std::string tls_hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\n", 10);  // a TLS record
  for (const std::string& request : std::vector<std::string>{
           "HELLO\n", "FORWARD 080\n", "FORWARD 0\n", "FORWARD 65536\n", "forward 80\n",
           "FORWARD  80\n", "FORWARD 80 \n", "FORWARD +80\n", "\n", "FORWARD 80\r\n",
           std::string(net::kMaxForwardLineBytes, 'A'), tls_hello}) {
    const agent::UniqueFd client = connect_unix(forward_path());
    ASSERT_TRUE(send_all(client.get(), request));
    const auto answer = answer_of(client.get());
    ASSERT_TRUE(answer.has_value()) << request;
    EXPECT_FALSE(answer->ok) << request;
    EXPECT_EQ(answer->error, request.size() == net::kMaxForwardLineBytes
                                 ? "request line longer than 256 bytes"
                                 : "bad request: expected \"FORWARD <port>\"")
        << request;
    EXPECT_TRUE(read_to_end(client.get(), 5s).eof) << request;
  }
}

TEST_F(PortRelayTest, EofBeforeTheLineClosesQuietly) {
  start();
  const agent::UniqueFd client = connect_unix(forward_path());
  ASSERT_TRUE(send_all(client.get(), "FORW"));
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  const ReadResult r = read_to_end(client.get(), 5s);
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.data, "");
}

TEST_F(PortRelayTest, SilentClientGetsErrWithinTheTimeout) {
  RelayOptions options;
  options.request_timeout = 200ms;
  start(options);
  const auto begin = TestClock::now();
  const agent::UniqueFd client = connect_unix(forward_path());
  ASSERT_TRUE(send_all(client.get(), "FORWARD 8"));  // never finished
  const auto answer = answer_of(client.get());
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->error, "no complete request line within 200 ms");
  EXPECT_TRUE(read_to_end(client.get(), 5s).eof);
  EXPECT_GE(TestClock::now() - begin, 190ms);
  EXPECT_LT(TestClock::now() - begin, 5s);
}

TEST_F(PortRelayTest, BytesPipelinedAfterTheRequestFollowOk) {
  std::string why;
  TestServer guest(listen_loopback_tcp(0, why), echo_handler);
  start();
  const agent::UniqueFd client = connect_unix(forward_path());
  ASSERT_TRUE(send_all(client.get(), net::encode_forward_request(bound_port(guest.listener())) + "hello"));
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  const ReadResult r = read_to_end(client.get());
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.data, "OK\nhello");
}

TEST_F(PortRelayTest, BackPressureBoundsTheRelay) {
  // The host accepts but does not read until told to; the client writes as fast as it can.
  std::atomic<bool> drain{false};
  std::atomic<std::size_t> drained{0};
  std::atomic<bool> drained_eof{false};
  TestServer host(listen_unix(host_path()), [&](int fd) {
    if (!eventually([&] { return drain.load(); })) return;
    const ReadResult all = read_to_end(fd, kWait, 1u << 30);
    drained = all.data.size();
    drained_eof = all.eof;
  });
  // Destroyed before `host`: a failing test does not leave its handler waiting.
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag = true; }
  } release{drain};
  RelayOptions options;
  options.buffer_bytes = 64 * 1024;
  start(options);
  const agent::UniqueFd client = connect_tcp(egress_port_);
  ASSERT_TRUE(eventually([&] { return relay_->stats().relaying == 1; }));
  // Write until no byte goes for 300 ms (stalled) or 256 MiB went (never stalled).
  constexpr std::size_t kLimit = 256u << 20;
  const std::string chunk = pattern(7, 0, 64 * 1024);
  std::size_t written = 0;
  auto last_progress = TestClock::now();
  while (written < kLimit && TestClock::now() - last_progress < 300ms) {
    const ssize_t n = ::send(client.get(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
      last_progress = TestClock::now();
    } else {
      ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
      pollfd p{client.get(), POLLOUT, 0};
      (void)::poll(&p, 1, 20);
    }
  }
  EXPECT_LT(written, kLimit) << "the client never stalled";
  RecordProperty("written_before_stall", std::to_string(written));
  const RelayStats stats = relay_->stats();
  EXPECT_LE(stats.buffered_bytes, options.buffer_bytes);
  EXPECT_LE(stats.peak_session_bytes, options.buffer_bytes);
  // Nothing was lost while stalled: once the host reads, every byte arrives.
  drain = true;
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  ASSERT_TRUE(eventually([&] { return drained_eof.load(); }));
  EXPECT_EQ(drained.load(), written);
}

TEST_F(PortRelayTest, ConnectionsOverTheCapAreClosedAtOnce) {
  RelayOptions options;
  options.max_sessions = 2;
  start(options);
  const agent::UniqueFd first = connect_unix(forward_path());  // both wait for a line
  const agent::UniqueFd second = connect_unix(forward_path());
  ASSERT_TRUE(eventually([&] { return relay_->stats().sessions == 2; }));
  const agent::UniqueFd third = connect_unix(forward_path());
  const auto answer = answer_of(third.get());
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->error, "too many connections");
  EXPECT_TRUE(read_to_end(third.get(), 5s).ended());
  const agent::UniqueFd fourth = connect_tcp(egress_port_);
  const ReadResult r = read_to_end(fourth.get(), 5s);
  EXPECT_TRUE(r.ended());
  EXPECT_TRUE(r.data.empty());
  EXPECT_TRUE(eventually([&] { return relay_->stats().refused_full == 2; }));
  EXPECT_EQ(relay_->stats().sessions, 2u);
}

TEST_F(PortRelayTest, AResetClosesBothSides) {
  std::string why;
  TestServer guest(listen_loopback_tcp(0, why), [](int fd) {
    char c = 0;
    if (::recv(fd, &c, 1, 0) != 1) return;
    const linger abort_close{1, 0};  // the handler's return closes it: a reset
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
  });
  start();
  const agent::UniqueFd client = forward_ok(bound_port(guest.listener()));
  ASSERT_TRUE(send_all(client.get(), "x"));
  EXPECT_TRUE(read_to_end(client.get(), 5s).ended());
  // Not a half-close: the relay closed the client's socket as a whole.
  EXPECT_TRUE(fully_closed(client.get()));
  EXPECT_TRUE(eventually([&] { return relay_->stats().sessions == 0; }));
  EXPECT_TRUE(eventually([&] { return logged("relay reset"); }));
}

TEST_F(PortRelayTest, StopClosesConnectionsAndListeners) {
  std::string why;
  TestServer guest(listen_loopback_tcp(0, why), echo_handler);
  start();
  const agent::UniqueFd client = forward_ok(bound_port(guest.listener()));
  const auto begin = TestClock::now();
  relay_->stop();
  EXPECT_LT(TestClock::now() - begin, 2s);
  EXPECT_FALSE(relay_->stats().running);
  EXPECT_TRUE(read_to_end(client.get(), 5s).ended());
  EXPECT_THROW(connect_tcp(egress_port_), std::system_error);
  EXPECT_THROW(connect_unix(forward_path()), std::system_error);
  relay_->stop();  // idempotent
}

TEST(PortRelay, DestroyedWithoutStartClosesItsListeners) {
  std::string why;
  agent::UniqueFd egress = listen_loopback_tcp(0, why);
  ASSERT_TRUE(egress.valid()) << why;
  const std::uint16_t port = bound_port(egress.get());
  {
    PortRelay relay(std::move(egress), [] { return Dialed{{}, ENOENT}; }, {}, dial_loopback_tcp, {});
    EXPECT_FALSE(relay.stats().running);
  }
  EXPECT_THROW(connect_tcp(port), std::system_error);
}

}  // namespace
}  // namespace forkvm::relay::test
