// HostileAgent: an agent written for the tests that lies. It speaks the real wire format
// (contract/protocol: the hello, then frames) on a Unix socket, so that what it sends reaches
// AgentClient as real bytes over a real socket, and answers each request with whatever the
// test's answer function writes: more output than the cap it was given, an endless file, error
// messages full of terminal escapes, frames the request never asked for.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "contract/protocol/frame.hpp"
#include "tests/unit/sandbox/test_support.hpp"

namespace forkvm::test {

/// The agent's side of one connection, handed to the answer function.
class HostileWire {
 public:
  HostileWire(int fd, std::atomic<bool>& stop) : fd_(fd), stop_(stop) {}
  /// Sends one frame whole; false once the host closed the connection or the agent is stopping.
  bool send(const nlohmann::json& header, const std::string& payload = {});
  /// Sends `total` bytes of the pattern (byte i is 'a' + i % 26) in 256 KiB frames with
  /// `header`; returns the bytes sent (less than `total` when send() failed).
  uint64_t flood(const nlohmann::json& header, uint64_t total);
  /// Payload bytes sent so far on this connection.
  uint64_t payload_sent() const { return payload_sent_; }

 private:
  int fd_;
  std::atomic<bool>& stop_;
  uint64_t payload_sent_ = 0;
};

/// `n` bytes of the flood pattern from offset 0.
std::string flood_pattern(uint64_t n);

/// Listens on a private Unix socket; answers the hello like the real agent, then calls
/// `answer` for each request frame, on the listener's thread, one connection at a time.
class HostileAgent {
 public:
  using Answer = std::function<void(const protocol::Frame& request, HostileWire& wire)>;
  explicit HostileAgent(Answer answer);
  const std::string& path() const { return peer_.path(); }

 private:
  RawPeer peer_;
};

}  // namespace forkvm::test
