// What an EgressProxy and its connections share (not a public header). Everything but the
// counters is touched on the network thread only.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <set>

#include "forkvm/egress.hpp"

namespace forkvm::net {

class CompiledPolicy;
class EgressConnection;
class TlsAuthority;
class UpstreamTrust;

/// The state of one proxy. Held by the accept loop and by every open connection, so it lives
/// until the last of them ends; its destructor tells the EgressProxy destructor so.
struct ProxyCore {
  explicit ProxyCore(boost::asio::local::stream_protocol::acceptor listening)
      : acceptor(std::move(listening)) {}
  ~ProxyCore() { finished.set_value(); }
  ProxyCore(const ProxyCore&) = delete;
  ProxyCore& operator=(const ProxyCore&) = delete;

  boost::asio::local::stream_protocol::acceptor acceptor;
  std::shared_ptr<const CompiledPolicy> policy;
  std::function<void(const EgressEvent&)> audit;
  /// Signs the leaves the guest sees when a CONNECT is intercepted (never null).
  std::shared_ptr<const TlsAuthority> authority;
  /// Whom the intercepting side trusts upstream (never null).
  std::shared_ptr<const UpstreamTrust> upstream_trust;
  /// Open connections, so that stopping can close them.
  std::set<EgressConnection*> open;
  bool stopping = false;
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> refused{0};
  std::promise<void> finished;
};

}  // namespace forkvm::net
