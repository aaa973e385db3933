// One guest connection to the egress proxy (egress_proxy.hpp has the steps), from its first
// byte to its audit record. Lives on the network thread, held by shared_ptr by the coroutines
// serving it; its watchdog holds only a weak_ptr. Its member functions are in three files:
// egress_connection.cpp (the request header, the policy and DNS, CONNECT tunnels, the
// watchdog), egress_exchange.cpp (one HTTP request and its response relayed, over plain
// sockets or TLS streams) and egress_intercept.cpp (a CONNECT to a host with secret bindings,
// served through TLS on both sides).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "forkvm/egress.hpp"
#include "net/name_resolver.hpp"
#include "net/request_target.hpp"
#include "net/stream_pump.hpp"

namespace forkvm::net {

class CompiledPolicy;
struct ProxyCore;

/// A refusal the guest is answered with.
struct Refusal {
  int status = 0;    ///< 400, 403, 413, 431, 502, 503, 504
  std::string text;  ///< printable; never holds a secret value
  /// The X-Forkvm-Egress value when it is not the default one (refusal_response()), e.g.
  /// kUnresolvableMarker.
  std::string marker = {};
};

/// One guest connection. See the file comment.
class EgressConnection : public std::enable_shared_from_this<EgressConnection> {
 public:
  using Clock = std::chrono::steady_clock;

  EgressConnection(std::shared_ptr<ProxyCore> core,
                   boost::asio::local::stream_protocol::socket guest);
  /// Audits the request (if one arrived) and leaves the proxy's open set.
  ~EgressConnection();
  EgressConnection(const EgressConnection&) = delete;
  EgressConnection& operator=(const EgressConnection&) = delete;

  /// Starts serving and the watchdog (network thread).
  void start();
  /// Closes both sockets and cancels a lookup; the serving coroutines then end.
  void close();

 private:
  using HeaderParser = boost::beast::http::request_parser<boost::beast::http::empty_body>;
  using GuestSocket = boost::asio::local::stream_protocol::socket;
  /// The guest's side of an intercepted CONNECT (the proxy is the TLS server).
  using GuestTls = boost::asio::ssl::stream<GuestSocket&>;
  /// The upstream side of an intercepted CONNECT (the proxy is the TLS client).
  using UpstreamTls = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

  boost::asio::awaitable<void> serve(std::shared_ptr<EgressConnection> self);
  boost::asio::awaitable<void> watch(std::weak_ptr<EgressConnection> weak);
  boost::asio::awaitable<void> serve_connect(std::shared_ptr<EgressConnection> self,
                                             const ProxyTarget& target,
                                             boost::beast::flat_buffer& buffer);
  /// A plain HTTP request: the policy, the upstream, then exchange().
  boost::asio::awaitable<void> serve_http(const ProxyTarget& target,
                                          boost::beast::flat_buffer& buffer,
                                          HeaderParser& parser);
  /// A CONNECT to a host with secret bindings, upstream_ connected (egress_intercept.cpp):
  /// 200, TLS with the guest under the host's leaf, one request read and decided, TLS to the
  /// upstream (verified), then exchange() inside both.
  boost::asio::awaitable<void> intercept(const ProxyTarget& target,
                                         boost::beast::flat_buffer& buffer);
  /// Reads one request header from `guest` into `parser` (its limits set here). nullopt when
  /// it arrived and is within the limits; else the refusal to send, or a Refusal with status
  /// 0 when the guest closed (or timed out) before a request.
  template <class Guest>
  boost::asio::awaitable<std::optional<Refusal>> read_request(Guest& guest,
                                                              boost::beast::flat_buffer& buffer,
                                                              HeaderParser& parser);
  /// Relays the request whose header `parser` holds (`buffer`: bytes read past it) to
  /// `upstream`, as "<method> <path>" with Host `host_field`, the secrets of the host and the
  /// body with its framing, then the response back to `guest`, then ends both
  /// (egress_exchange.cpp; the same for plain HTTP and inside TLS).
  template <class Guest, class Upstream>
  boost::asio::awaitable<void> exchange(Guest& guest, Upstream& upstream,
                                        const std::string& path, const std::string& host_field,
                                        boost::beast::flat_buffer& buffer, HeaderParser& parser);
  /// Sends `refusal` on `guest` (inside TLS for GuestTls), its X-Forkvm-Egress header
  /// `marker` (refusal_response()), and ends the connection. Callers pass a named Refusal,
  /// never a temporary: GCC 12 destroys some temporaries of a co_await expression twice.
  template <class Guest>
  boost::asio::awaitable<void> refuse_on(Guest& guest, const Refusal& refusal,
                                         std::string_view marker = {});
  /// Ends the guest's sending side (a TLS close_notify for GuestTls) and closes everything.
  template <class Guest>
  boost::asio::awaitable<void> finish(Guest& guest);
  /// Records the request's path in the audit event (without the query, printable).
  void audit_path(std::string_view path);
  boost::asio::awaitable<void> pump_down(std::shared_ptr<EgressConnection> self);
  /// Checks the policy, resolves and connects upstream_; nullopt when connected.
  boost::asio::awaitable<std::optional<Refusal>> open_upstream(const ProxyTarget& target,
                                                               const std::string& method);
  /// refuse_on() the plain guest socket.
  boost::asio::awaitable<void> refuse(const Refusal& refusal);
  /// Answers a CONNECT with "200 Connection established" (status 200 in the audit); false,
  /// with the connection closed and the reason in the audit, when the guest went away.
  boost::asio::awaitable<bool> establish();
  /// The earliest deadline: the phase's (or else the idle one) and the total one.
  Clock::time_point next_deadline() const;
  /// Starts (or with max(), ends) a phase with its own deadline; wakes the watchdog.
  void set_phase(Clock::time_point deadline);

  std::shared_ptr<ProxyCore> core_;
  std::shared_ptr<const CompiledPolicy> policy_;  // the one this connection was decided with
  EgressLimits limits_;
  GuestSocket guest_;
  boost::asio::ip::tcp::socket upstream_;
  /// The address upstream_ connected to (what the policy decided on).
  boost::asio::ip::address connected_;
  /// The name lookup in flight, if any (net/name_resolver.hpp): close() and the lookup's
  /// deadline give up on it.
  std::optional<LookupCancel> lookup_;
  boost::asio::steady_timer watchdog_;
  Traffic traffic_;
  EgressEvent event_;
  bool has_request_ = false;
  Clock::time_point started_ = Clock::now();
  /// Deadline of the current phase (the lookup and connect); max when none.
  Clock::time_point phase_deadline_ = Clock::time_point::max();
  bool phase_timed_out_ = false;
  std::string ended_by_;  ///< "idle timeout", "total timeout", ... (for the audit)
};

}  // namespace forkvm::net
