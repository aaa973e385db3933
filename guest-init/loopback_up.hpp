// Brings up the guest's loopback interface. The kernel creates `lo` down; the agent raises it
// (the kernel then gives it 127.0.0.1/8) so the port relay's 127.0.0.1 listener and dials,
// and any guest program using localhost, work. There is no NIC: this is the only interface.
#pragma once

#include <optional>
#include <string>

namespace forkvm {

/// Sets IFF_UP on `lo` (SIOCGIFFLAGS/SIOCSIFFLAGS on an AF_INET datagram socket); nothing to
/// do when it is up already. Returns nullopt on success, else why it failed.
[[nodiscard]] std::optional<std::string> bring_loopback_up();

}  // namespace forkvm
