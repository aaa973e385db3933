// What the port relay (port_relay.hpp) is given: how to dial the far side of each path, and
// its limits and timeouts. Separate from PortRelay so relay_session.hpp can use it too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::relay {

/// The result of a dial: a socket on its way to the far side, or why there is none.
struct Dialed {
  /// A non-blocking, close-on-exec stream socket whose connect() has completed or is in
  /// progress (EINPROGRESS). The relay waits for POLLOUT and reads SO_ERROR before using it.
  agent::UniqueFd fd;
  /// errno of a failure before any connect was under way (fd is then invalid); 0 otherwise.
  int error = 0;
};

/// Dials the far end of the egress path (in the guest: vsock CID 2, kEgressVsockPort).
using DialEgress = std::function<Dialed()>;
/// Dials guest port `port` for an ingress request (in the guest: TCP 127.0.0.1:<port>).
using DialForward = std::function<Dialed(std::uint16_t port)>;

/// Limits and timeouts of the relay; the defaults are the agent's. Tests shorten the timeouts.
struct RelayOptions {
  /// Bytes held per direction of one relayed connection before its source stops being read.
  std::size_t buffer_bytes = 256 * 1024;
  /// Connections open at once, at any stage (request line, connect, relaying, refusal); one
  /// accepted beyond it is closed at once (a forward one is first sent "ERR ...", if it fits).
  std::size_t max_sessions = 256;
  /// Connections accepted per listener per wake of the loop, so a flood of connects cannot
  /// starve the connections already relaying.
  std::size_t max_accepts_per_wake = 16;
  /// How long an ingress connection has to send its whole "FORWARD <port>\n" line.
  std::chrono::milliseconds request_timeout{10'000};
  /// How long a dial may stay in progress before it counts as failed (ETIMEDOUT).
  std::chrono::milliseconds connect_timeout{10'000};
  /// How long a refused ingress connection is kept for its "ERR ..." line to be written and
  /// read (and the peer's further bytes discarded, so closing does not reset it first).
  std::chrono::milliseconds refuse_linger{2'000};
  /// Diagnostic lines (a failed dial, a refused request, the loop's end), on the relay thread;
  /// at most a few per second (the rest are counted and reported as suppressed). Default:
  /// dropped. It must not call PortRelay::stop().
  std::function<void(std::string_view line)> log;
};

}  // namespace forkvm::relay
