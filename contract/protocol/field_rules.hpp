#pragma once

// The field rules of MESSAGES.md ("Common field rules"), checked identically by the host
// before it sends a request and by the agent when it receives one.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::protocol {

/// Whether `key` matches [A-Za-z_][A-Za-z0-9_]* (an environment variable name).
[[nodiscard]] bool valid_env_key(std::string_view key) noexcept;
/// Whether `value` can be an env value: no NUL and no newline ('\n' or '\r').
[[nodiscard]] bool valid_env_value(std::string_view value) noexcept;
/// Whether `name` matches [A-Za-z0-9_-]+ and is at most kMaxSecretNameBytes long.
[[nodiscard]] bool valid_secret_name(std::string_view name) noexcept;
/// Whether `name` can be a guest hostname: 1..64 bytes of [A-Za-z0-9.-].
[[nodiscard]] bool valid_hostname(std::string_view name) noexcept;
/// An Ethernet MAC address.
using MacAddress = std::array<uint8_t, 6>;
/// Parses "02:ab:cd:ef:01:23" (six two-digit hex groups, either case, ':' between them);
/// nullopt for anything else.
[[nodiscard]] std::optional<MacAddress> parse_mac(std::string_view text) noexcept;
/// "02:ab:cd:ef:01:23" (lower case).
[[nodiscard]] std::string format_mac(const MacAddress& mac);
/// Whether `mac` can be an interface's own address: not all zeros and not multicast (bit 0 of
/// the first byte clear).
[[nodiscard]] bool valid_unicast_mac(const MacAddress& mac) noexcept;
/// Why `path` is not acceptable (not absolute, too long, contains NUL), or nullopt if it is.
[[nodiscard]] std::optional<std::string> path_problem(std::string_view path);

}  // namespace forkvm::protocol
