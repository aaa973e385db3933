// TCP sockets on 127.0.0.1, for the port relay: the guest's proxy listener and the dial of a
// forwarded guest port. Plain POSIX, so host tests use the very same functions.
#pragma once

#include <cstdint>
#include <string>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/relay_options.hpp"

namespace forkvm::relay {

/// A non-blocking, close-on-exec TCP socket listening on 127.0.0.1:`port` (0: any free port)
/// with SO_REUSEADDR. Accepted sockets need set_no_delay(). On failure returns an invalid fd and puts the reason in `why`.
[[nodiscard]] agent::UniqueFd listen_loopback_tcp(std::uint16_t port, std::string& why);

/// The local port `fd` is bound to, or 0 when it cannot be read.
[[nodiscard]] std::uint16_t bound_port(int fd);

/// Turns Nagle's algorithm off on TCP socket `fd` (TCP_NODELAY): a relay passes on what it
/// got at once, or a small write behind another waits for the peer's delayed ACK (measured:
/// small GETs through the egress relay with 200 ms outliers). Best effort.
void set_no_delay(int fd) noexcept;

/// Starts a non-blocking connect to 127.0.0.1:`port` (see Dialed), Nagle off.
[[nodiscard]] Dialed dial_loopback_tcp(std::uint16_t port);

}  // namespace forkvm::relay
