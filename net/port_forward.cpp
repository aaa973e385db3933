#include "net/port_forward.hpp"

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <set>
#include <vector>

#include "base/text.hpp"
#include "contract/net_ports.hpp"
#include "contract/vsock_connect.hpp"
#include "forkvm/errors.hpp"
#include "net/accept_loop.hpp"
#include "net/error_text.hpp"
#include "net/io_thread.hpp"
#include "net/stream_pump.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
/// The host listener's protocol: TCP or a Unix socket, through one code path.
using any_stream = asio::generic::stream_protocol;
using any_acceptor = asio::basic_socket_acceptor<any_stream>;

namespace {

// The vsock CONNECT and the agent's FORWARD answer together must not take longer.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

}  // namespace

struct ForwardLink;

/// The listener of one PortForward and its open links (network thread only, but for the
/// promise, which tells the destructor that nothing is left).
struct ForwardCore {
  explicit ForwardCore(any_acceptor listening) : acceptor(std::move(listening)) {}
  ~ForwardCore() { finished.set_value(); }
  ForwardCore(const ForwardCore&) = delete;
  ForwardCore& operator=(const ForwardCore&) = delete;

  any_acceptor acceptor;
  std::string vsock_socket;
  uint16_t guest_port = 0;
  std::set<ForwardLink*> open;
  bool stopping = false;
  std::promise<void> finished;
};

/// One host connection and its vsock stream to the agent.
struct ForwardLink {
  ForwardLink(std::shared_ptr<ForwardCore> c, any_stream::socket s)
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
  any_stream::socket client;
  local::socket vsock;
  Traffic traffic;
  bool handshaking = true;
};

namespace {

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
  const std::string connect = vsock_connect_line(kForwardVsockPort);
  co_await asio::async_write(link->vsock, asio::buffer(connect), with_error(ec));
  if (ec) co_return link->close();
  std::string buffer, line;
  // The device answers "OK <port>" once the agent accepted; anything else ends the link.
  // The result is named before the test: GCC 12 miscompiles a co_await inside `||` (the link
  // closed right after a valid "OK <n>"; tests/unit/net/port_forward_test.cpp caught it).
  const bool answered = co_await read_line(link->vsock, buffer, kMaxVsockConnectAnswer, line);
  if (!answered || !vsock_connect_accepted(line)) co_return link->close();
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

/// Relays an accepted client to the guest port over a vsock connection of its own.
void serve_client(const std::shared_ptr<ForwardCore>& core, any_stream::socket client) {
  // Relayed bytes go on at once (no Nagle); a Unix socket refuses the option, harmlessly.
  error_code ec;
  if (client.local_endpoint(ec).protocol() == any_stream(tcp::v4())) {
    client.set_option(tcp::no_delay(true), ec);
  }
  auto link = std::make_shared<ForwardLink>(core, std::move(client));
  const auto executor = core->acceptor.get_executor();
  asio::co_spawn(executor, handshake_watch(link), asio::detached);
  asio::co_spawn(executor, serve_link(link), asio::detached);
}

// The core of a PortForward listening on `acceptor`, accepting on the network thread.
std::shared_ptr<ForwardCore> start_forward(any_acceptor acceptor, std::string vsock_socket,
                                           uint16_t guest_port) {
  auto core = std::make_shared<ForwardCore>(std::move(acceptor));
  core->vsock_socket = std::move(vsock_socket);
  core->guest_port = guest_port;
  asio::co_spawn(io_context(), accept_each(core, serve_client), asio::detached);
  return core;
}

}  // namespace

PortForward::PortForward(std::string vsock_socket, uint16_t guest_port, uint16_t host_port)
    : guest_port_(guest_port) {
  if (guest_port == 0) throw ConfigError("expose_port: the guest port must be 1..65535");
  any_acceptor acceptor(io_context());
  error_code ec;
  const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), host_port);
  acceptor.open(any_stream(endpoint.protocol()), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(any_stream::endpoint(endpoint), ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw ConfigError("expose_port: cannot listen on 127.0.0.1:" + std::to_string(host_port) +
                      ": " + error_text(ec));
  }
  const any_stream::endpoint bound = acceptor.local_endpoint();
  sockaddr_in in{};
  std::memcpy(&in, bound.data(), std::min<std::size_t>(sizeof in, bound.size()));
  host_port_ = ntohs(in.sin_port);
  core_ = start_forward(std::move(acceptor), std::move(vsock_socket), guest_port);
}

PortForward::PortForward(std::string vsock_socket, uint16_t guest_port, const std::string& unix_path)
    : guest_port_(guest_port), unix_path_(unix_path) {
  if (guest_port == 0) throw ConfigError("expose_port: the guest port must be 1..65535");
  // sockaddr_un holds 107 bytes and a NUL.
  if (unix_path.empty() || unix_path.size() > 107 || unix_path.find('\0') != std::string::npos) {
    throw ConfigError("expose_port: a Unix socket path must be 1..107 bytes without NUL");
  }
  any_acceptor acceptor(io_context());
  error_code ec;
  const local::endpoint endpoint(unix_path);
  acceptor.open(any_stream(endpoint.protocol()), ec);
  // bind() fails on an existing file: nothing of someone else's is replaced or removed.
  if (!ec) acceptor.bind(any_stream::endpoint(endpoint), ec);
  if (ec) {
    throw ConfigError("expose_port: cannot bind " + unix_path + ": " + error_text(ec));
  }
  // Owner only, set before listen(): until then nobody can connect, so no one gets in early.
  if (::chmod(unix_path.c_str(), S_IRUSR | S_IWUSR) != 0) {
    const int err = errno;
    ::unlink(unix_path.c_str());
    throw ConfigError("expose_port: chmod 0600 " + unix_path + ": " + errno_text(err));
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(unix_path.c_str());
    throw ConfigError("expose_port: cannot listen on " + unix_path + ": " + error_text(ec));
  }
  core_ = start_forward(std::move(acceptor), std::move(vsock_socket), guest_port);
}

PortForward::~PortForward() {
  stop_service(core_);
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

}  // namespace forkvm::net
