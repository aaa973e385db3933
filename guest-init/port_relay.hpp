// PortRelay: the agent's network paths over vsock (contract/net_ports.hpp), on one thread.
//
// - egress: each connection accepted on the egress listener (in the guest: TCP
//   127.0.0.1:kGuestProxyPort) is joined to a dial_egress() socket (vsock CID 2,
//   kEgressVsockPort) and the bytes relayed unchanged; a failed dial resets the connection.
// - forward: each connection accepted on the forward listener (vsock kForwardVsockPort) sends
//   "FORWARD <port>\n"; the relay dials dial_forward(port) (TCP 127.0.0.1:<port>) and answers
//   "OK\n" then relays, or answers "ERR <reason>\n" and closes (relay_session.hpp).
//
// It knows only descriptors and the two dial functions, so the same code runs on AF_UNIX and
// loopback TCP sockets in host tests. One poll() loop serves both listeners, a stop eventfd and
// every connection; every socket is non-blocking, and memory is bounded by
// RelayOptions::max_sessions x 2 x buffer_bytes plus a request line each.
//
// The thread touches no signals and reaps no children: started after the agent's Server has
// blocked SIGCHLD and the power-off signals, it inherits that mask, so they still reach the
// server's signalfd. Every descriptor it creates is close-on-exec (the server forks execs).
#pragma once

#include <cstddef>
#include <mutex>
#include <thread>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/relay_options.hpp"

namespace forkvm::relay {

/// What the relay is doing, for tests and diagnostics (updated once per wake of its loop).
struct RelayStats {
  std::size_t sessions = 0;          ///< connections open now, at any stage
  std::size_t relaying = 0;          ///< of which relaying bytes
  std::size_t accepted = 0;          ///< connections accepted since start()
  std::size_t refused_full = 0;      ///< of which closed at once for max_sessions
  std::size_t buffered_bytes = 0;    ///< bytes waiting in all relay queues now
  std::size_t peak_session_bytes = 0;  ///< most bytes one connection held at the end of a wake
  std::size_t wakes = 0;             ///< poll() returns so far (a spinning loop shows here)
  bool running = false;              ///< the thread is serving (false after stop() or a failure)
};

/// The egress and forward relay. Construct, start(), and stop() (or destroy) from one thread.
class PortRelay {
 public:
  /// Takes two listening stream sockets (either may be invalid: that path is not served; both
  /// are made non-blocking) and the dial functions, which run on the relay thread. Throws
  /// std::system_error if the stop eventfd cannot be created.
  PortRelay(agent::UniqueFd egress_listener, DialEgress dial_egress,
            agent::UniqueFd forward_listener, DialForward dial_forward, RelayOptions options);
  /// stop().
  ~PortRelay();
  PortRelay(const PortRelay&) = delete;
  PortRelay& operator=(const PortRelay&) = delete;

  /// Starts the relay thread (once). Throws std::system_error if it cannot be created.
  void start();
  /// Makes the thread close every connection and both listeners and end, and joins it.
  /// Idempotent; must not be called from the relay thread (the log or dial callbacks).
  void stop() noexcept;
  /// A snapshot of the counters. Thread-safe.
  [[nodiscard]] RelayStats stats() const;

 private:
  class Loop;
  void run() noexcept;

  agent::UniqueFd egress_listener_, forward_listener_;
  DialEgress dial_egress_;
  DialForward dial_forward_;
  RelayOptions options_;
  agent::UniqueFd stop_fd_;  // eventfd: readable once stop() was called
  std::thread thread_;
  mutable std::mutex stats_mutex_;
  RelayStats stats_;
};

}  // namespace forkvm::relay
