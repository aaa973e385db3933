// Session: one accepted connection of the port relay, from accept() to close, driven by the
// relay's poll() loop (port_relay.cpp). Its stages:
//
//   egress:   connecting ──> relaying
//   forward:  request line ──> connecting ──> relaying ("OK\n" first)
//                   └──────────────┴──> refusing ("ERR <reason>\n", then close)
//
// An egress connection whose dial fails is reset (there is no line protocol to answer in).
// Request line, connect and refusal each have a deadline; relaying has none (an idle
// connection stays until a side closes it).
#pragma once

#include <poll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/relay_options.hpp"
#include "guest-init/relay_pair.hpp"

namespace forkvm::relay {

using Clock = std::chrono::steady_clock;
/// Where a session reports a diagnostic line.
using LogFn = std::function<void(const std::string& line)>;

/// One connection of the relay. Not thread-safe (the relay thread owns it).
class Session {
 public:
  /// An accepted egress connection whose far side `upstream` was dialed (and is connecting).
  static std::unique_ptr<Session> egress(agent::UniqueFd client, agent::UniqueFd upstream,
                                         const RelayOptions& options, Clock::time_point now);
  /// An accepted ingress connection, waiting for its request line.
  static std::unique_ptr<Session> forward(agent::UniqueFd client, const RelayOptions& options,
                                          Clock::time_point now);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Fills the two pollfd entries of this session: the accepted socket and the dialed one.
  /// An entry with nothing to wait for gets fd -1 (poll() skips it).
  void poll_entries(pollfd& client, pollfd& upstream) const noexcept;

  /// Handles what poll() reported (`revents` of the two entries, either may be 0), then the
  /// deadline if `now` is past it. `dial_forward` dials the requested port; `log` gets
  /// failures. Returns false when the session is over (the owner destroys it, which closes
  /// its sockets). Throws only std::bad_alloc or what `dial_forward` throws.
  bool handle(short client_revents, short upstream_revents, Clock::time_point now,
              const DialForward& dial_forward, const LogFn& log);

  /// When handle() must be called even without events; nullopt while relaying.
  [[nodiscard]] std::optional<Clock::time_point> deadline() const noexcept;
  /// Bytes waiting in its relay queues (0 before relaying).
  [[nodiscard]] std::size_t buffered() const noexcept { return pair_ ? pair_->buffered() : 0; }
  /// Whether the session has reached the relaying stage.
  [[nodiscard]] bool relaying() const noexcept { return stage_ == Stage::kRelaying; }

 private:
  enum class Kind { kEgress, kForward };
  enum class Stage { kRequestLine, kConnecting, kRelaying, kRefusing, kOver };

  Session(Kind kind, agent::UniqueFd client, const RelayOptions& options);

  void read_request_line(Clock::time_point now, const DialForward& dial_forward, const LogFn& log);
  void start_connect(std::uint16_t port, const DialForward& dial_forward, Clock::time_point now,
                     const LogFn& log);
  void finish_connect(int error, Clock::time_point now, const LogFn& log);
  void refuse(const std::string& reason, Clock::time_point now, const LogFn& log);
  void step_refusal(short revents);
  void on_deadline(Clock::time_point now, const LogFn& log);

  Kind kind_;
  Stage stage_ = Stage::kRequestLine;
  const RelayOptions& options_;
  agent::UniqueFd client_;    // the accepted socket
  agent::UniqueFd upstream_;  // the dialed socket, until it moves into pair_
  Clock::time_point deadline_{};
  std::string received_;      // request line bytes (and any bytes the peer sent after it)
  std::uint16_t port_ = 0;    // the requested guest port (forward)
  std::string refusal_;       // "ERR ...\n" not yet sent
  bool refusal_shut_ = false; // refusal sent and the write side shut; now discarding input
  std::unique_ptr<RelayPair> pair_;
};

}  // namespace forkvm::relay
