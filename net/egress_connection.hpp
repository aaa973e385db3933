// One guest connection to the egress proxy (egress_proxy.hpp has the steps), from its first
// byte to its audit record. Lives on the network thread, held by shared_ptr by the coroutines
// serving it; its watchdog holds only a weak_ptr.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "forkvm/egress.hpp"
#include "net/request_target.hpp"
#include "net/stream_pump.hpp"

namespace forkvm::net {

class CompiledPolicy;
struct ProxyCore;

/// A refusal the guest is answered with.
struct Refusal {
  int status = 0;    ///< 400, 403, 413, 431, 502, 503, 504
  std::string text;  ///< printable; never holds a secret value
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

  boost::asio::awaitable<void> serve(std::shared_ptr<EgressConnection> self);
  boost::asio::awaitable<void> watch(std::weak_ptr<EgressConnection> weak);
  boost::asio::awaitable<void> serve_connect(std::shared_ptr<EgressConnection> self,
                                             const ProxyTarget& target,
                                             boost::beast::flat_buffer& buffer);
  boost::asio::awaitable<void> serve_http(const ProxyTarget& target,
                                          boost::beast::flat_buffer& buffer,
                                          HeaderParser& parser);
  boost::asio::awaitable<void> pump_down(std::shared_ptr<EgressConnection> self);
  /// Checks the policy, resolves and connects upstream_; nullopt when connected.
  boost::asio::awaitable<std::optional<Refusal>> open_upstream(const ProxyTarget& target,
                                                               const std::string& method);
  /// Sends the refusal to the guest and ends the connection. Callers pass a named Refusal,
  /// never a temporary: GCC 12 destroys some temporaries of a co_await expression twice.
  boost::asio::awaitable<void> refuse(const Refusal& refusal);
  /// The earliest deadline: the phase's (or else the idle one) and the total one.
  Clock::time_point next_deadline() const;
  /// Starts (or with max(), ends) a phase with its own deadline; wakes the watchdog.
  void set_phase(Clock::time_point deadline);

  std::shared_ptr<ProxyCore> core_;
  std::shared_ptr<const CompiledPolicy> policy_;  // the one this connection was decided with
  EgressLimits limits_;
  boost::asio::local::stream_protocol::socket guest_;
  boost::asio::ip::tcp::socket upstream_;
  std::optional<boost::asio::ip::tcp::resolver> resolver_;
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
