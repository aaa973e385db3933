// The error type of the vsock device's setup paths (socket path, activation). Guest input
// never throws: it becomes an RST, a dropped packet or DEVICE_NEEDS_RESET.
#pragma once

#include "forkvm/errors.hpp"

namespace forkvm {

/// The vsock device could not be set up: its Unix socket path is unusable (too long, in use by
/// a live listener, not a socket), a socket call failed, or activation got the wrong queues.
/// The message names the path or the numbers involved and the errno text.
class VsockError : public Error {
 public:
  using Error::Error;
};

}  // namespace forkvm
