// Test support for tests/unit/agent: runs forkvm-agent-host in a child process on Unix sockets
// in a fresh temp directory, and a blocking protocol client with a deadline on every wait.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "contract/protocol/frame.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::agent::test {

using nlohmann::json;
using protocol::Frame;
using namespace std::chrono_literals;

/// Default deadline of one wait in these tests.
inline constexpr auto kWait = 30s;

/// A forkvm-agent-host process serving <dir>/agent.sock and <dir>/meta.sock with state in
/// <dir>/state. Killed (SIGTERM, then SIGKILL) and its directory removed on destruction.
class AgentHost {
 public:
  AgentHost();
  ~AgentHost();
  AgentHost(const AgentHost&) = delete;
  AgentHost& operator=(const AgentHost&) = delete;

  /// The temp directory (tests may use it as a scratch area).
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string agent_socket() const { return dir_ + "/agent.sock"; }
  [[nodiscard]] std::string metadata_socket() const { return dir_ + "/meta.sock"; }
  [[nodiscard]] std::string state_dir() const { return dir_ + "/state"; }
  /// Whether the agent process is still running.
  [[nodiscard]] bool alive();

 private:
  forkvm::test::TempDir tmp_{"forkvm-agent"};  // removed after the agent is stopped (declared first)
  std::string dir_;
  pid_t pid_ = -1;
};

/// Connects to a Unix stream socket; fails the test (throws) on error.
int connect_unix(const std::string& path);

/// What one request produced.
struct Result {
  std::vector<Frame> frames;  ///< every frame for the id, terminal included
  Frame terminal;             ///< ok, error or exit
  std::string out, err;       ///< stdout / stderr (or file_data into `out`) payloads joined
  [[nodiscard]] const std::string& type() const { return terminal.header["type"].get_ref<const std::string&>(); }
  [[nodiscard]] std::string code() const { return terminal.header.value("code", ""); }
};

/// A framed-protocol client: connects, exchanges hellos, then sends requests and sorts the
/// replies by id (frames of other ids wait in a stash).
class Client {
 public:
  /// Connects to `path` and does the hello exchange (unless `hello` is false).
  explicit Client(const std::string& path, bool hello = true);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends one frame.
  void send(const json& header, const std::string& payload = {});
  /// Sends raw bytes.
  void send_raw(const std::string& bytes);
  /// The next frame for `id` (from the stash or the socket), or nullopt at the deadline or on
  /// EOF.
  std::optional<Frame> next_for(std::uint64_t id, std::chrono::milliseconds timeout = kWait);
  /// Frames for `id` until its terminal frame; the test fails if the deadline passes first.
  Result collect(std::uint64_t id, std::chrono::milliseconds timeout = kWait);
  /// send(request) then collect(request.id).
  Result call(const json& request, const std::string& payload = {},
              std::chrono::milliseconds timeout = kWait);
  /// Whether the agent closed the connection within `timeout` (frames before EOF are read
  /// and dropped).
  bool closed_by_peer(std::chrono::milliseconds timeout = kWait);
  /// The socket.
  [[nodiscard]] int fd() const { return fd_; }
  /// Closes the socket now.
  void close();

 private:
  // Reads one frame from the socket into the stash; false at the deadline or EOF.
  bool read_one(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  bool eof_ = false;
  protocol::FrameDecoder decoder_;
  std::deque<Frame> stash_;
};

/// Reads lines from a connected stream socket.
class LineClient {
 public:
  explicit LineClient(const std::string& path);
  ~LineClient();
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;
  void send(const std::string& bytes);
  /// The next line (without '\n'), or nullopt at the deadline or EOF.
  std::optional<std::string> line(std::chrono::milliseconds timeout = kWait);
  /// send(request + "\n") and parse the answer line; fails the test if there is none.
  json call(const json& request);
  bool closed_by_peer(std::chrono::milliseconds timeout = kWait);

 private:
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

/// Whether a process `pid` exists (kill(pid, 0)).
bool process_exists(pid_t pid);
/// Polls `condition` every 10 ms until true or `timeout`; returns its last value.
template <typename F>
bool eventually(F condition, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

/// Contents of a file (throws if unreadable).
std::string read_whole(const std::string& path);
/// Writes a file.
void write_whole(const std::string& path, const std::string& bytes);

}  // namespace forkvm::agent::test
