#include "guest-init/relay_session.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "contract/net_ports.hpp"

namespace forkvm::relay {
namespace {

// The dial's outcome once poll() reported the socket: 0 when connected, else the errno.
int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// Closes `fd` with a reset where the family has one (TCP): an aborted connection must not
// look like a complete, empty answer.
void reset_close(agent::UniqueFd& fd) noexcept {
  if (!fd.valid()) return;
  const linger abort_close{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
  fd.reset();
}

std::string forward_target(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

}  // namespace

Session::Session(Kind kind, agent::UniqueFd client, const RelayOptions& options)
    : kind_(kind), options_(options), client_(std::move(client)) {}

Session::~Session() = default;

std::unique_ptr<Session> Session::egress(agent::UniqueFd client, agent::UniqueFd upstream,
                                         const RelayOptions& options, Clock::time_point now) {
  std::unique_ptr<Session> session(new Session(Kind::kEgress, std::move(client), options));
  session->upstream_ = std::move(upstream);
  session->stage_ = Stage::kConnecting;
  session->deadline_ = now + options.connect_timeout;
  return session;
}

std::unique_ptr<Session> Session::forward(agent::UniqueFd client, const RelayOptions& options,
                                          Clock::time_point now) {
  std::unique_ptr<Session> session(new Session(Kind::kForward, std::move(client), options));
  session->stage_ = Stage::kRequestLine;
  session->deadline_ = now + options.request_timeout;
  return session;
}

void Session::poll_entries(pollfd& client, pollfd& upstream) const noexcept {
  client = {-1, 0, 0};
  upstream = {-1, 0, 0};
  switch (stage_) {
    case Stage::kRequestLine:
      client = {client_.get(), POLLIN, 0};
      break;
    case Stage::kConnecting:
      // The client is left out: its bytes wait in its socket until the relay starts.
      upstream = {upstream_.get(), POLLOUT, 0};
      break;
    case Stage::kRelaying: {
      const short a = pair_->events_a();
      const short b = pair_->events_b();
      if (a != 0) client = {pair_->fd_a(), a, 0};
      if (b != 0) upstream = {pair_->fd_b(), b, 0};
      break;
    }
    case Stage::kRefusing:
      client = {client_.get(), static_cast<short>(refusal_shut_ ? POLLIN : POLLOUT), 0};
      break;
    case Stage::kOver:
      break;
  }
}

std::optional<Clock::time_point> Session::deadline() const noexcept {
  if (stage_ == Stage::kRelaying || stage_ == Stage::kOver) return std::nullopt;
  return deadline_;
}

bool Session::handle(short client_revents, short upstream_revents, Clock::time_point now,
                     const DialForward& dial_forward, const LogFn& log) {
  switch (stage_) {
    case Stage::kRequestLine:
      if (client_revents != 0) read_request_line(now, dial_forward, log);
      break;
    case Stage::kConnecting:
      if (upstream_revents != 0) finish_connect(connect_result(upstream_.get()), now, log);
      break;
    case Stage::kRelaying: {
      const RelayPair::Status status = pair_->handle(client_revents, upstream_revents);
      if (status == RelayPair::Status::kFailed) {
        log(std::string(kind_ == Kind::kEgress ? "egress" : "forward to " + forward_target(port_)) +
            ": relay reset: " + pair_->error());
      }
      if (status != RelayPair::Status::kOpen) {
        pair_.reset();
        stage_ = Stage::kOver;
      }
      break;
    }
    case Stage::kRefusing:
      if (client_revents != 0) step_refusal(client_revents);
      break;
    case Stage::kOver:
      break;
  }
  // Events first: a line or a connection that completed right at the deadline still counts.
  if (deadline() && now >= deadline_) on_deadline(now, log);
  return stage_ != Stage::kOver;
}

void Session::read_request_line(Clock::time_point now, const DialForward& dial_forward,
                                const LogFn& log) {
  // Reads until the newline, at most kMaxForwardLineBytes in all; bytes the peer pipelined
  // after the line in the same read are kept and relayed once connected. An EOF after the
  // line is left for the relay to read again (recv keeps returning 0).
  while (received_.size() < net::kMaxForwardLineBytes &&
         received_.find('\n') == std::string::npos) {
    char buf[net::kMaxForwardLineBytes];
    const ssize_t n = ::recv(client_.get(), buf, net::kMaxForwardLineBytes - received_.size(),
                             MSG_DONTWAIT);
    if (n > 0) {
      received_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    stage_ = Stage::kOver;  // EOF or an error before a whole line: nobody to answer
    return;
  }
  const std::size_t newline = received_.find('\n');
  if (newline == std::string::npos) {
    if (received_.size() >= net::kMaxForwardLineBytes) {
      refuse("request line longer than " + std::to_string(net::kMaxForwardLineBytes) + " bytes",
             now, log);
    }
    return;  // wait for the rest of the line
  }
  const std::optional<std::uint16_t> port =
      net::parse_forward_request(std::string_view(received_).substr(0, newline));
  if (!port) {
    refuse("bad request: expected \"FORWARD <port>\"", now, log);
    return;
  }
  received_.erase(0, newline + 1);  // what follows the line goes to the guest port
  start_connect(*port, dial_forward, now, log);
}

void Session::start_connect(std::uint16_t port, const DialForward& dial_forward,
                            Clock::time_point now, const LogFn& log) {
  port_ = port;
  Dialed dialed = dial_forward(port);
  if (!dialed.fd.valid()) {
    finish_connect(dialed.error != 0 ? dialed.error : EIO, now, log);
    return;
  }
  upstream_ = std::move(dialed.fd);
  stage_ = Stage::kConnecting;
  deadline_ = now + options_.connect_timeout;
}

void Session::finish_connect(int error, Clock::time_point now, const LogFn& log) {
  if (error != 0) {
    upstream_.reset();
    if (kind_ == Kind::kEgress) {
      log(std::string("egress: dial failed: ") + std::strerror(error));
      reset_close(client_);
      stage_ = Stage::kOver;
    } else {
      refuse("connect " + forward_target(port_) + ": " + std::strerror(error), now, log);
    }
    return;
  }
  // "OK\n" goes first towards the host, ahead of anything the guest port sends.
  const std::string_view greeting = kind_ == Kind::kForward ? net::kForwardOkLine : "";
  pair_ = std::make_unique<RelayPair>(std::move(client_), std::move(upstream_),
                                      options_.buffer_bytes, received_, greeting);
  received_.clear();
  received_.shrink_to_fit();
  stage_ = Stage::kRelaying;
  // Flush the greeting and the pipelined bytes now rather than after another poll() round.
  if (pair_->handle(0, 0) != RelayPair::Status::kOpen) {
    log("relay ended at its start: " + pair_->error());
    pair_.reset();
    stage_ = Stage::kOver;
  }
}

void Session::refuse(const std::string& reason, Clock::time_point now, const LogFn& log) {
  log("forward refused: " + reason);
  upstream_.reset();
  received_.clear();
  refusal_ = net::encode_forward_error(reason);
  refusal_shut_ = false;
  stage_ = Stage::kRefusing;
  deadline_ = now + options_.refuse_linger;
  step_refusal(POLLOUT);  // the socket is almost always writable: no need to wait a round
}

// Writes the refusal, shuts the write side, then reads and drops until the peer closes (or
// the linger deadline): closing with unread input would reset a TCP peer and could destroy
// the refusal before it is read.
void Session::step_refusal(short revents) {
  if ((revents & POLLERR) != 0) {
    stage_ = Stage::kOver;
    return;
  }
  if (!refusal_shut_) {
    while (!refusal_.empty()) {
      const ssize_t n = ::send(client_.get(), refusal_.data(), refusal_.size(),
                               MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        refusal_.erase(0, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      stage_ = Stage::kOver;
      return;
    }
    ::shutdown(client_.get(), SHUT_WR);
    refusal_shut_ = true;
  }
  // Bounded by the socket's buffer per call and by the linger deadline in all.
  for (int i = 0; i < 64; ++i) {
    char sink[4096];
    const ssize_t n = ::recv(client_.get(), sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    stage_ = Stage::kOver;  // EOF or an error: the peer is done
    return;
  }
}

void Session::on_deadline(Clock::time_point now, const LogFn& log) {
  switch (stage_) {
    case Stage::kRequestLine:
      refuse("no complete request line within " +
                 std::to_string(options_.request_timeout.count()) + " ms",
             now, log);
      break;
    case Stage::kConnecting:
      finish_connect(ETIMEDOUT, now, log);
      break;
    case Stage::kRefusing:
      stage_ = Stage::kOver;
      break;
    case Stage::kRelaying:
    case Stage::kOver:
      break;
  }
}

}  // namespace forkvm::relay
