// The host side's text handshake on the device's Unix socket (Firecracker docs/vsock.md): a
// host program connects to uds_path and writes "CONNECT <port>\n"; once the guest accepts, the
// device answers "OK <local_port>\n". Pure parsing and formatting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::vsock {

/// Longest CONNECT line accepted, newline included (Firecracker reads at most 32 bytes).
inline constexpr size_t kMaxConnectLine = 32;

/// Parses one complete line (with its trailing '\n') of the form "CONNECT <port>\n". The
/// keyword is matched case-insensitively, followed by exactly one space and 1-10 decimal digits
/// naming a port <= 2^32 - 1; nothing else may appear. Host-controlled input: anything else
/// (signs, extra spaces, "\r\n", overflow, overlong) yields nullopt.
std::optional<uint32_t> parse_connect_line(std::string_view line) noexcept;

/// "OK <local_port>\n".
std::string format_ok_line(uint32_t local_port);

}  // namespace forkvm::vsock
