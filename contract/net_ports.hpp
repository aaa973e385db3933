// The network paths between the host and the guest agent, carried over vsock (no NIC):
//
// - Egress: the agent listens on TCP 127.0.0.1:kGuestProxyPort in the guest; each accepted
//   connection is connected to the host (vsock CID 2, port kEgressVsockPort) and the bytes are
//   relayed unchanged both ways. The host's egress proxy (HTTP and CONNECT) is on the far end;
//   the agent never parses them.
// - Ingress (Sandbox::expose_port): the host connects to the agent's vsock port
//   kForwardVsockPort and writes one line "FORWARD <port>\n" (port 1..65535, decimal, no
//   leading zeros). The agent connects to TCP 127.0.0.1:<port> in the guest and answers
//   "OK\n", then relays bytes both ways; or it answers "ERR <reason>\n" (reason: printable
//   ASCII, at most kMaxForwardLineBytes in all) and closes.
// Either side closing its half closes the other's; a reset resets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::net {

/// TCP port of the agent's HTTP proxy listener on the guest's loopback.
inline constexpr std::uint16_t kGuestProxyPort = 3128;
/// vsock port on the host (CID 2) that the agent connects each proxied connection to.
inline constexpr std::uint32_t kEgressVsockPort = 3128;
/// vsock port the agent listens on for ingress connections.
inline constexpr std::uint32_t kForwardVsockPort = 1025;
/// Longest "FORWARD ..." request or "OK"/"ERR ..." answer line, newline included.
inline constexpr std::size_t kMaxForwardLineBytes = 256;

/// The request line the host sends for guest port `port`.
inline std::string encode_forward_request(std::uint16_t port) {
  return "FORWARD " + std::to_string(port) + "\n";
}

/// The agent's answer when the guest port accepted the connection; relayed bytes follow it.
inline constexpr std::string_view kForwardOkLine = "OK\n";

/// The agent's refusal line: "ERR " + `reason` + "\n", with every byte of `reason` outside
/// printable ASCII replaced by '?' and the reason cut so that the whole line, newline included,
/// is at most kMaxForwardLineBytes (so parse_forward_answer accepts it).
inline std::string encode_forward_error(std::string_view reason) {
  constexpr std::size_t kMaxReason = kMaxForwardLineBytes - 5;  // "ERR " and "\n"
  std::string line = "ERR ";
  for (char c : reason.substr(0, kMaxReason)) line += (c < 0x20 || c > 0x7e) ? '?' : c;
  line += '\n';
  return line;
}

/// Parses a request line without its newline: the port, or nullopt when the line is anything
/// other than "FORWARD " and a decimal in [1, 65535] without leading zeros or sign.
inline std::optional<std::uint16_t> parse_forward_request(std::string_view line) {
  constexpr std::string_view kPrefix = "FORWARD ";
  if (line.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view digits = line.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 5 || digits[0] == '0') return std::nullopt;
  std::uint32_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

/// The agent's answer, parsed from a line without its newline: ok, or the reason it refused.
struct ForwardAnswer {
  bool ok = false;
  std::string error;  ///< printable ASCII from the guest (already checked), when !ok
};

/// Parses an answer line (without its newline): "OK", or "ERR " followed by printable ASCII.
/// nullopt for anything else (the caller treats it as a protocol error).
inline std::optional<ForwardAnswer> parse_forward_answer(std::string_view line) {
  if (line == "OK") return ForwardAnswer{true, {}};
  constexpr std::string_view kPrefix = "ERR ";
  if (line.size() >= kMaxForwardLineBytes || line.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  const std::string_view reason = line.substr(kPrefix.size());
  for (char c : reason) {
    if (c < 0x20 || c > 0x7e) return std::nullopt;
  }
  return ForwardAnswer{false, std::string(reason)};
}

}  // namespace forkvm::net
