#include "net/egress_connection.hpp"

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <exception>

#include "base/text.hpp"
#include "net/egress_rules.hpp"
#include "net/host_name.hpp"
#include "net/http_rewrite.hpp"
#include "net/proxy_core.hpp"
#include "net/with_error.hpp"

namespace forkvm::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

EgressConnection::EgressConnection(std::shared_ptr<ProxyCore> core,
                                   asio::local::stream_protocol::socket guest)
    : core_(std::move(core)),
      policy_(core_->policy),
      limits_(policy_->limits()),
      guest_(std::move(guest)),
      upstream_(guest_.get_executor()),
      watchdog_(guest_.get_executor()) {
  traffic_.limit = limits_.max_bytes_per_connection;
  event_.time = std::chrono::system_clock::now();
  core_->open.insert(this);
}

EgressConnection::~EgressConnection() {
  core_->open.erase(this);
  if (!has_request_) return;
  event_.bytes_up = traffic_.up;
  event_.bytes_down = traffic_.down;
  if (event_.error.empty() && !ended_by_.empty()) event_.error = ended_by_;
  if (traffic_.over_limit && event_.error.empty()) event_.error = "the connection's byte limit";
  if (!event_.allowed || event_.status >= 400) core_->refused.fetch_add(1);
  if (!core_->audit) return;
  try {
    core_->audit(event_);
  } catch (...) {
    // The embedder's callback must not take the network thread down.
  }
}

void EgressConnection::start() {
  auto self = shared_from_this();
  asio::co_spawn(guest_.get_executor(), watch(self), asio::detached);
  asio::co_spawn(guest_.get_executor(), serve(self), asio::detached);
}

void EgressConnection::close() {
  error_code ignored;
  guest_.close(ignored);
  upstream_.close(ignored);
  if (lookup_) lookup_->cancel();
}

EgressConnection::Clock::time_point EgressConnection::next_deadline() const {
  // During a phase (lookup, connect, waiting for the answer) its own deadline replaces the
  // idle one, so the guest gets a 504 rather than a closed connection.
  const bool in_phase = phase_deadline_ != Clock::time_point::max();
  return std::min(in_phase ? phase_deadline_ : traffic_.last_activity + limits_.idle_timeout,
                  started_ + limits_.total_timeout);
}

void EgressConnection::set_phase(Clock::time_point deadline) {
  phase_deadline_ = deadline;
  watchdog_.cancel();  // the watchdog wakes and re-arms for the new deadline
}

asio::awaitable<void> EgressConnection::watch(std::weak_ptr<EgressConnection> weak) {
  for (;;) {
    asio::steady_timer* timer = nullptr;
    {
      auto self = weak.lock();
      if (!self) co_return;
      timer = &self->watchdog_;
      timer->expires_at(self->next_deadline());
    }
    // The timer is the connection's: if the connection goes while this waits, the timer's
    // destructor completes the wait and the weak_ptr below finds nothing (the timer is not
    // touched again).
    error_code ec;
    co_await timer->async_wait(with_error(ec));
    auto self = weak.lock();
    if (!self) co_return;
    const auto now = Clock::now();
    const bool in_phase = self->phase_deadline_ != Clock::time_point::max();
    if (in_phase && now >= self->phase_deadline_) {
      // The lookup or connect took too long: give up on the upstream only, so the guest
      // still gets its 504.
      self->phase_timed_out_ = true;
      self->phase_deadline_ = Clock::time_point::max();  // no cancel: this is the watchdog
      error_code ignored;
      self->upstream_.close(ignored);
      if (self->lookup_) self->lookup_->cancel();
      continue;
    }
    if (now >= self->started_ + self->limits_.total_timeout) {
      self->ended_by_ = "total timeout";
    } else if (!in_phase && now >= self->traffic_.last_activity + self->limits_.idle_timeout) {
      self->ended_by_ = "idle timeout";
    } else {
      continue;  // activity moved the deadline
    }
    self->close();
    co_return;
  }
}

asio::awaitable<void> EgressConnection::serve(std::shared_ptr<EgressConnection> self) {
  boost::beast::flat_buffer buffer;
  HeaderParser parser;
  const std::optional<Refusal> unread = co_await read_request(guest_, buffer, parser);
  if (unread) {
    if (unread->status == 0) co_return;  // closed before a request: nothing to answer or audit
    has_request_ = true;
    co_await refuse(*unread);
    co_return;
  }
  has_request_ = true;
  const auto& request = parser.get();
  event_.method = printable(std::string_view(request.method_string().data(),
                                             request.method_string().size()), 32);
  const std::string_view raw_target(request.target().data(), request.target().size());
  if (request.method() == http::verb::connect) {
    auto target = parse_connect_target(raw_target);
    if (auto* error = std::get_if<TargetError>(&target)) {
      event_.host = printable(raw_target, 128);
      const Refusal refusal{400, "bad CONNECT target: " + error->what};
      co_await refuse(refusal);
      co_return;
    }
    co_await serve_connect(self, std::get<ProxyTarget>(target), buffer);
    co_return;
  }
  auto target = parse_absolute_target(raw_target);
  if (auto* error = std::get_if<TargetError>(&target)) {
    event_.host = printable(raw_target, 128);
    const Refusal refusal{400, "bad request target: " + error->what};
    co_await refuse(refusal);
    co_return;
  }
  co_await serve_http(std::get<ProxyTarget>(target), buffer, parser);
}

asio::awaitable<std::optional<Refusal>> EgressConnection::open_upstream(
    const ProxyTarget& requested, const std::string& method) {
  event_.port = requested.port;
  const HostCheck host = normalize_host(requested.host);
  if (!host.host) {
    event_.host = printable(requested.host, 128);
    event_.rule = "bad host: " + host.error;
    co_return Refusal{400, "bad host " + event_.host + ": " + host.error};
  }
  const NormalizedHost& normalized = *host.host;
  event_.host = normalized.text;
  RequestTarget target;
  target.host = normalized.text;
  target.port = requested.port;
  target.method = method;
  target.path = requested.path;

  const PreDecision verdict = policy_->decide_by_name(target);
  if (verdict.verdict == NameVerdict::kDenied) {
    event_.rule = verdict.decision.text;
    co_return Refusal{403, "denied " + method + " " + event_.host + ":" +
                               std::to_string(requested.port) + ": " + verdict.decision.text};
  }

  std::vector<asio::ip::address> addresses;
  set_phase(Clock::now() + limits_.connect_timeout);
  if (normalized.kind == HostKind::kAddress) {
    addresses.push_back(normalized.address);
  } else {
    lookup_.emplace();
    error_code ec;
    const ResolvedAddresses results = co_await async_resolve_name(
        guest_.get_executor(), normalized.text, *lookup_, with_error(ec));
    lookup_.reset();
    if (ec) {
      set_phase(Clock::time_point::max());
      const std::string why = phase_timed_out_ ? "timed out" : ec.message();
      event_.error = "cannot resolve " + event_.host + ": " + why;
      if (phase_timed_out_) co_return Refusal{504, event_.error};
      co_return Refusal{502, event_.error, kUnresolvableMarker};
    }
    addresses = results;  // deduplicated, in getaddrinfo's order
  }

  std::string first_denial;
  std::string last_failure;
  for (const auto& address : addresses) {
    // The address checked is the address connected to: no second lookup can change it.
    const Decision decision = policy_->decide(target, address);
    if (!decision.allowed) {
      if (first_denial.empty()) first_denial = decision.text;
      continue;
    }
    error_code ec;
    upstream_.close(ec);
    co_await upstream_.async_connect(tcp::endpoint(address, requested.port), with_error(ec));
    if (!ec) {
      // A relay passes bytes on as they come: with Nagle a request body behind its header
      // would wait for the origin's delayed ACK.
      upstream_.set_option(tcp::no_delay(true), ec);
      set_phase(Clock::time_point::max());
      traffic_.last_activity = Clock::now();
      event_.allowed = true;
      event_.rule = decision.text;
      event_.address = address.to_string();
      connected_ = address;
      co_return std::nullopt;
    }
    last_failure = "connect " + address.to_string() + " port " +
                   std::to_string(requested.port) + ": " +
                   (phase_timed_out_ ? std::string("timed out") : ec.message());
    event_.rule = decision.text;
    if (phase_timed_out_) break;
  }
  set_phase(Clock::time_point::max());
  if (last_failure.empty()) {
    event_.rule = first_denial.empty() ? std::string("no address") : first_denial;
    co_return Refusal{403, "denied " + method + " " + event_.host + ":" +
                               std::to_string(requested.port) + ": " + event_.rule};
  }
  event_.allowed = true;  // the policy allowed it; the upstream failed
  event_.error = last_failure;
  co_return Refusal{phase_timed_out_ ? 504 : 502, last_failure};
}

asio::awaitable<void> EgressConnection::refuse(const Refusal& refusal) {
  co_await refuse_on(guest_, refusal);
}

void EgressConnection::audit_path(std::string_view path) {
  event_.path = printable(path.substr(0, path.find('?')), 256);
}

asio::awaitable<bool> EgressConnection::establish() {
  error_code ec;
  static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
  co_await asio::async_write(guest_, asio::buffer(kEstablished), with_error(ec));
  if (ec) {
    event_.error = "the guest went away: " + ec.message();
    close();
    co_return false;
  }
  event_.status = 200;
  co_return true;
}

asio::awaitable<void> EgressConnection::serve_connect(std::shared_ptr<EgressConnection> self,
                                                      const ProxyTarget& target,
                                                      boost::beast::flat_buffer& buffer) {
  const std::string connect_method = "CONNECT";  // named: see refuse() in the header
  if (auto refusal = co_await open_upstream(target, connect_method)) {
    co_await refuse(*refusal);
    co_return;
  }
  if (policy_->binds_secrets(event_.host)) {
    // The requests inside get the host's secrets: TLS is terminated here (egress_intercept.cpp).
    co_await intercept(target, buffer);
    co_return;
  }
  if (!co_await establish()) co_return;
  error_code ec;
  // Bytes the guest sent right behind the CONNECT (a TLS ClientHello) go first.
  if (buffer.size() > 0) {
    if (!traffic_.add(true, buffer.size())) {
      close();
      co_return;
    }
    co_await asio::async_write(upstream_, buffer.data(), with_error(ec));
    if (ec) {
      close();
      co_return;
    }
    buffer.consume(buffer.size());
  }
  asio::co_spawn(guest_.get_executor(), pump_down(self), asio::detached);
  co_await pump(guest_, upstream_, traffic_, true);
}

asio::awaitable<void> EgressConnection::pump_down(std::shared_ptr<EgressConnection> self) {
  co_await pump(self->upstream_, self->guest_, self->traffic_, false);
}

asio::awaitable<void> EgressConnection::serve_http(const ProxyTarget& target,
                                                   boost::beast::flat_buffer& buffer,
                                                   HeaderParser& parser) {
  const auto& request = parser.get();
  const std::string method(request.method_string().data(), request.method_string().size());
  event_.method = method;
  audit_path(target.path);
  if (auto refusal = co_await open_upstream(target, method)) {
    co_await refuse(*refusal);
    co_return;
  }
  const std::string host_field = host_header(event_.host, target.port);
  co_await exchange(guest_, upstream_, target.path, host_field, buffer, parser);
}

}  // namespace forkvm::net
