// The host side of Firecracker's hybrid vsock (docs/vsock.md), which forkvm's vsock device
// speaks on its Unix socket: a host connection sends "CONNECT <port>\n" and the device answers
// "OK <host-side port>\n" once the guest accepted, or closes the connection. Shared by the
// agent client (sandbox/socket_io.cpp) and the exposed ports (net/port_forward.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace forkvm {

/// The longest answer line worth reading, newline included ("OK 4294967295\n" is 14).
inline constexpr std::size_t kMaxVsockConnectAnswer = 64;

/// "CONNECT <port>\n".
inline std::string vsock_connect_line(uint32_t port) {
  return "CONNECT " + std::to_string(port) + "\n";
}

/// Whether `line` (without its newline) is the device's acceptance: "OK " and 1..10 digits.
inline bool vsock_connect_accepted(std::string_view line) {
  if (line.size() < 4 || line.size() > 13 || line.substr(0, 3) != "OK ") return false;
  for (std::size_t i = 3; i < line.size(); ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
  }
  return true;
}

}  // namespace forkvm
