// Giving a forked guest's NIC its fresh MAC address. The guest's virtio-net driver reads the
// MAC from the device's config space once, at probe; a child forked from a snapshot carries the
// parent's address in memory even though its device now announces a new one. The host sends
// both (MESSAGES.md "identity": "mac") and the agent moves the interface that still has the old
// address to the new one. Linux's virtio_net allows that on a running interface
// (IFF_LIVE_ADDR_CHANGE), so the guest's addresses and routes stay as they were.
#pragma once

#include <optional>
#include <string>

#include "contract/protocol/field_rules.hpp"

namespace forkvm::agent {

/// What change_interface_mac() did.
struct MacChangeResult {
  std::string interface;  ///< the interface moved to the new address; empty when none had `from`
  std::string error;      ///< why it failed ("" on success)
};

/// Finds the Ethernet interface whose address is `from` (if_nameindex + SIOCGIFHWADDR) and sets
/// it to `to` (SIOCSIFHWADDR). No interface with `from` (the guest changed or removed it) is not
/// an error: `interface` is then empty.
[[nodiscard]] MacChangeResult change_interface_mac(const protocol::MacAddress& from,
                                                   const protocol::MacAddress& to);

}  // namespace forkvm::agent
