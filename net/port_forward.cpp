#include "net/port_forward.hpp"

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <future>
#include <set>
#include <vector>

#include "contract/net_ports.hpp"
#include "forkvm/errors.hpp"
#include "net/io_thread.hpp"
#include "net/stream_pump.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

namespace {

// The vsock CONNECT and the agent's FORWARD answer together must not take longer.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// Longest "OK <port>" answer of the vsock device, newline included.
constexpr std::size_t kMaxConnectAnswer = 32;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

}  // namespace

struct ForwardLink;

/// The listener of one PortForward and its open links (network thread only, but for the
/// promise, which tells the destructor that nothing is left).
struct ForwardCore {
  explicit ForwardCore(tcp::acceptor listening) : acceptor(std::move(listening)) {}
  ~ForwardCore() { finished.set_value(); }
  ForwardCore(const ForwardCore&) = delete;
  ForwardCore& operator=(const ForwardCore&) = delete;

  tcp::acceptor acceptor;
  std::string vsock_socket;
  uint16_t guest_port = 0;
  std::set<ForwardLink*> open;
  bool stopping = false;
  std::promise<void> finished;
};

/// One host connection and its vsock stream to the agent.
struct ForwardLink {
  ForwardLink(std::shared_ptr<ForwardCore> c, tcp::socket s)
      : core(std::move(c)), client(std::move(s)), vsock(client.get_executor()) {
    core->open.insert(this);
  }
  ~ForwardLink() { core->open.erase(this); }
  ForwardLink(const ForwardLink&) = delete;
  ForwardLink& operator=(const ForwardLink&) = delete;
  void close() {
    error_code ignored;
    client.close(ignored);
    vsock.close(ignored);
  }

  std::shared_ptr<ForwardCore> core;
  tcp::socket client;
  local::socket vsock;
  Traffic traffic;
  bool handshaking = true;
};

namespace {

auto with_error(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// Reads one '\n'-terminated line of at most `max` bytes into `line` (without the newline);
// bytes read past it stay in `buffer`. False on an error, EOF or an overlong line.
asio::awaitable<bool> read_line(local::socket& socket, std::string& buffer, std::size_t max,
                                std::string& line) {
  error_code ec;
  const std::size_t n = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(buffer, max), '\n', with_error(ec));
  if (ec) co_return false;
  line = buffer.substr(0, n - 1);
  buffer.erase(0, n);
  co_return true;
}

asio::awaitable<void> pump_back(std::shared_ptr<ForwardLink> link) {
  co_await pump(link->vsock, link->client, link->traffic, false);
}

asio::awaitable<void> handshake_watch(std::weak_ptr<ForwardLink> weak) {
  asio::steady_timer timer(co_await asio::this_coro::executor, kHandshakeTimeout);
  error_code ec;
  co_await timer.async_wait(with_error(ec));
  if (auto link = weak.lock(); link && link->handshaking) link->close();
}

asio::awaitable<void> serve_link(std::shared_ptr<ForwardLink> link) {
  error_code ec;
  co_await link->vsock.async_connect(local::endpoint(link->core->vsock_socket), with_error(ec));
  if (ec) co_return link->close();
  const std::string connect = "CONNECT " + std::to_string(kForwardVsockPort) + "\n";
  co_await asio::async_write(link->vsock, asio::buffer(connect), with_error(ec));
  if (ec) co_return link->close();
  std::string buffer, line;
  // The device answers "OK <port>" once the agent accepted; anything else ends the link.
  if (!co_await read_line(link->vsock, buffer, kMaxConnectAnswer, line) ||
      line.rfind("OK ", 0) != 0) {
    co_return link->close();
  }
  const std::string request = encode_forward_request(link->core->guest_port);
  co_await asio::async_write(link->vsock, asio::buffer(request), with_error(ec));
  if (ec) co_return link->close();
  // The agent's answer comes from the guest: parsed strictly, bounded in length.
  if (!co_await read_line(link->vsock, buffer, kMaxForwardLineBytes, line)) {
    co_return link->close();
  }
  const auto answer = parse_forward_answer(line);
  if (!answer || !answer->ok) co_return link->close();
  link->handshaking = false;
  if (!buffer.empty()) {  // the guest server spoke first (a banner)
    link->traffic.add(false, buffer.size());
    co_await asio::async_write(link->client, asio::buffer(buffer), with_error(ec));
    if (ec) co_return link->close();
  }
  asio::co_spawn(link->client.get_executor(), pump_back(link), asio::detached);
  co_await pump(link->client, link->vsock, link->traffic, true);
}

asio::awaitable<void> accept_links(std::shared_ptr<ForwardCore> core) {
  asio::steady_timer backoff(co_await asio::this_coro::executor);
  for (;;) {
    error_code ec;
    tcp::socket client = co_await core->acceptor.async_accept(with_error(ec));
    if (core->stopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !core->acceptor.is_open()) co_return;
      backoff.expires_after(kAcceptBackoff);  // EMFILE and the like: not a busy loop
      co_await backoff.async_wait(with_error(ec));
      continue;
    }
    client.set_option(tcp::no_delay(true), ec);  // relayed bytes go on at once (no Nagle)
    auto link = std::make_shared<ForwardLink>(core, std::move(client));
    const auto executor = core->acceptor.get_executor();
    asio::co_spawn(executor, handshake_watch(link), asio::detached);
    asio::co_spawn(executor, serve_link(link), asio::detached);
  }
}

}  // namespace

PortForward::PortForward(std::string vsock_socket, uint16_t guest_port, uint16_t host_port)
    : guest_port_(guest_port) {
  if (guest_port == 0) throw ConfigError("expose_port: the guest port must be 1..65535");
  tcp::acceptor acceptor(io_context());
  error_code ec;
  const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), host_port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw ConfigError("expose_port: cannot listen on 127.0.0.1:" + std::to_string(host_port) +
                      ": " + ec.message());
  }
  host_port_ = acceptor.local_endpoint().port();
  core_ = std::make_shared<ForwardCore>(std::move(acceptor));
  core_->vsock_socket = std::move(vsock_socket);
  core_->guest_port = guest_port;
  asio::co_spawn(io_context(), accept_links(core_), asio::detached);
}

PortForward::~PortForward() {
  std::future<void> finished = core_->finished.get_future();
  std::weak_ptr<ForwardCore> weak = core_;
  core_.reset();
  stop_and_wait(
      [weak] {
        auto core = weak.lock();
        if (!core) return;
        core->stopping = true;
        error_code ignored;
        core->acceptor.close(ignored);
        const std::vector<ForwardLink*> open(core->open.begin(), core->open.end());
        for (auto* link : open) link->close();
      },
      std::move(finished));
}

}  // namespace forkvm::net
