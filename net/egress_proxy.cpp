#include "net/egress_proxy.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <vector>

#include "forkvm/errors.hpp"
#include "net/accept_loop.hpp"
#include "net/egress_connection.hpp"
#include "net/error_text.hpp"
#include "net/egress_rules.hpp"
#include "net/http_rewrite.hpp"
#include "net/io_thread.hpp"
#include "net/proxy_core.hpp"
#include "net/tls_authority.hpp"
#include "net/upstream_trust.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
using boost::system::error_code;
using local = asio::local::stream_protocol;

namespace {

local::acceptor listen_on(const std::string& path) {
  local::acceptor acceptor(io_context());
  error_code ec;
  acceptor.open(local(), ec);
  if (!ec) {
    // 0600 from the start: the umask covers the window between bind() and chmod().
    const mode_t old_mask = ::umask(0177);
    acceptor.bind(local::endpoint(path), ec);
    ::umask(old_mask);
  }
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Error("egress proxy: cannot listen on " + path + ": " + error_text(ec));
  }
  return acceptor;
}

asio::awaitable<void> answer_busy(local::socket guest, uint32_t limit) {
  const std::string answer = refusal_response(
      503, "too many connections (the sandbox's limit is " + std::to_string(limit) + ")");
  error_code ec;
  co_await asio::async_write(guest, asio::buffer(answer), with_error(ec));
  guest.close(ec);
}

/// Serves an accepted guest connection, or refuses it past the policy's connection limit.
void serve_guest(const std::shared_ptr<ProxyCore>& core, local::socket guest) {
  core->connections.fetch_add(1);
  const uint32_t limit = core->policy->limits().max_connections;
  if (core->open.size() >= limit) {
    core->refused.fetch_add(1);
    asio::co_spawn(core->acceptor.get_executor(), answer_busy(std::move(guest), limit),
                   asio::detached);
    return;
  }
  std::make_shared<EgressConnection>(core, std::move(guest))->start();
}

}  // namespace

EgressProxy::EgressProxy(std::string path, std::shared_ptr<const CompiledPolicy> policy,
                         std::function<void(const EgressEvent&)> audit, TlsInterception tls)
    : path_(std::move(path)),
      authority_(tls.authority ? std::move(tls.authority) : TlsAuthority::create()),
      upstream_trust_(std::make_shared<const UpstreamTrust>(std::move(tls.upstream_ca_file))) {
  if (!policy) throw ConfigError("egress proxy: no policy");
  core_ = std::make_shared<ProxyCore>(listen_on(path_));
  core_->policy = std::move(policy);
  core_->audit = std::move(audit);
  core_->authority = authority_;
  core_->upstream_trust = upstream_trust_;
  asio::co_spawn(io_context(), accept_each(core_, serve_guest), asio::detached);
}

EgressProxy::~EgressProxy() {
  // Every coroutine holding the core ends soon after the sockets close; waiting means the
  // socket directory can be removed and the audit callback is never called afterwards.
  stop_service(core_);
  ::unlink(path_.c_str());
}

void EgressProxy::set_policy(std::shared_ptr<const CompiledPolicy> policy) {
  if (!policy) throw ConfigError("egress proxy: no policy");
  asio::post(io_context(), [core = core_, policy = std::move(policy)]() mutable {
    core->policy = std::move(policy);
  });
}

const std::string& EgressProxy::ca_pem() const { return authority_->ca_pem(); }

ProxyEndpoint EgressProxy::endpoint() const {
  ProxyEndpoint out;
  out.socket = path_;
  out.authority = authority_;
  out.upstream_trust = upstream_trust_;
  return out;
}

EgressProxyStats EgressProxy::stats() const {
  EgressProxyStats stats;
  stats.connections = core_->connections.load();
  stats.refused = core_->refused.load();
  // `open` belongs to the network thread; the live count is what was accepted and not refused
  // nor finished, which the thread does not publish: read it there.
  std::promise<uint64_t> live;
  auto result = live.get_future();
  if (on_io_thread()) return stats;
  asio::post(io_context(), [core = core_, &live] { live.set_value(core->open.size()); });
  stats.live = result.get();
  return stats;
}

}  // namespace forkvm::net
