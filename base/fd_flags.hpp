// Status flags of an open file description, set the one way the host side does it.
#pragma once

namespace forkvm {

/// Adds O_NONBLOCK to the open file description behind `fd` (shared with every descriptor that
/// was duplicated from it). Returns 0, or the errno of the fcntl(2) that failed; never throws,
/// so each caller words its own error (a device resets a connection, the client throws).
int set_nonblocking(int fd) noexcept;

}  // namespace forkvm
