// Helpers for unit_sandbox: a real forkvm-agent-host child process on a Unix socket, and tiny
// in-test socket peers for what a healthy agent never does (never answer, send garbage, refuse
// the CONNECT handshake). Every wait has a deadline.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "forkvm/agent_client.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::test {

/// forkvm-agent-host serving `socket()` from a private temp dir. Started in the constructor
/// (waits up to 10 s for "listening"), SIGTERM'd (then SIGKILL'd) in the destructor.
class AgentHost {
 public:
  AgentHost();
  ~AgentHost();
  AgentHost(const AgentHost&) = delete;
  AgentHost& operator=(const AgentHost&) = delete;
  /// The framed-protocol socket.
  const std::string& socket() const { return socket_; }
  /// A scratch directory for files the tests move around (absolute).
  std::string files() const { return (dir_ / "files"); }
  /// The agent's state dir (env file, secrets/).
  std::string state() const { return (dir_ / "state"); }
  /// SIGKILLs the agent now and reaps it.
  void kill_now();

 private:
  TempDir dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

/// A Unix socket listener on its own thread that hands each accepted connection to `serve`
/// (which owns the fd and must return within its own deadlines). Stops on destruction.
class RawPeer {
 public:
  explicit RawPeer(std::function<void(int fd, std::atomic<bool>& stop)> serve);
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Reads from fd until `pred(buffer)` holds, EOF, `stop`, or `timeout`. Returns the buffer.
std::string read_until(int fd, const std::function<bool(const std::string&)>& pred,
                       std::chrono::milliseconds timeout, const std::atomic<bool>* stop = nullptr);
/// Writes all of `data` (blocking).
void write_all(int fd, const std::string& data);
/// Connects to a Unix socket (blocking); -1 on failure.
int connect_to(const std::string& path);
/// The wire bytes of a hello frame.
std::string hello_bytes();

/// AgentClient options for a test peer at `path`: a 2 s connect timeout and `request_timeout`.
AgentClientOptions client_options(const std::string& path,
                                  std::chrono::milliseconds request_timeout = std::chrono::seconds(2));

}  // namespace forkvm::test
