// forkvm-agent-server: the agent side of protocol v1 (contract/protocol/MESSAGES.md).
//
// One thread runs one poll() loop over: the two listening sockets (framed protocol and the
// 5555 NDJSON protocol), every connection, every exec's stdout/stderr/stdin pipe, and a
// signalfd for SIGCHLD. Every descriptor is non-blocking, so one slow or hostile peer never
// stalls another. Each connection has an output backlog; above `max_backlog_bytes` the server
// stops producing for it (it stops reading that connection's requests, its execs' pipes and
// its read_file streams) until the peer has drained it, so memory stays bounded.
//
// The listening sockets are handed in already listening, so the same code serves AF_VSOCK in
// the guest and AF_UNIX on a host (forkvm-agent-host).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace forkvm::agent {

/// Everything about the server that differs between the guest and a host test.
struct ServerOptions {
  /// Holds the persistent env file (`env`) and the secrets directory (`secrets/`).
  std::string state_dir = "/run/forkvm";
  /// The environment every exec starts from (under the env file and the request's env).
  std::vector<std::pair<std::string, std::string>> base_env = {
      {"PATH", "/bin:/usr/bin:/sbin:/usr/sbin"}, {"HOME", "/root"}, {"TERM", "linux"}};
  /// Signals besides SIGCHLD the loop takes through its signalfd (they are blocked in the
  /// calling thread); each is passed to `on_signal`.
  std::vector<int> extra_signals;
  /// Called on the loop thread for each of `extra_signals` (e.g. to stop() or power off).
  std::function<void(int signo)> on_signal;
  /// Diagnostic lines (a connection closed for a protocol error, ...). Default: dropped.
  std::function<void(std::string_view line)> log;
  /// Whether an `identity` request changes this machine (kernel RNG, clock, hostname). The
  /// host harness turns it off: it validates and answers, but must not touch the host.
  bool apply_identity = true;
  /// Output backlog per connection above which the server stops producing for it.
  std::size_t max_backlog_bytes = 4u << 20;
  /// Longest wait in the loop's poll() when nothing is due, in ms. Every wake-up also reaps
  /// children: a safety net for a process where some thread may take SIGCHLD (class comment).
  /// Negative: no limit, for a process whose threads all block SIGCHLD, such as the agent,
  /// whose idle guest then has nothing waking it every second.
  int max_idle_poll_ms = 1000;
};

/// The agent's protocol server. Not thread-safe: construct, run() and stop() on one thread.
///
/// SIGCHLD: the constructor blocks it in the calling thread and reads it from a signalfd;
/// every other thread of the process must block it too (a process that runs the server on its
/// only thread, like the agent or forkvm-agent-host, needs nothing more). Children are reaped
/// with waitpid(-1, WNOHANG), so as PID 1 the server reaps orphans as well. SIGPIPE is set to
/// ignored for the process (writes to closed pipes and sockets must return EPIPE).
class Server {
 public:
  /// Takes ownership of two listening stream sockets: `agent_fd` for the framed protocol and
  /// `metadata_fd` for the 5555 protocol (either may be -1 for none). Throws
  /// std::system_error if the signalfd cannot be set up.
  Server(int agent_fd, int metadata_fd, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Serves until stop() is called (from on_signal or another callback on the loop thread).
  /// On return every connection is closed and every exec killed. Throws std::system_error
  /// only if poll() itself fails.
  void run();

  /// Makes run() return after the current iteration.
  void stop() noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm::agent
