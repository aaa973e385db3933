// JSON encoding of VsockDevice::State for a snapshot's state.json. Decoding treats the JSON as
// hostile: types, the CID range (3 .. 2^32-2), the local-port range [2^30, 2^31), the reset
// gate's consistency and the connection table's size and shape (VsockDevice::restore_state
// checks its content).
#pragma once

#include <nlohmann/json.hpp>

#include "devices/virtio/vsock/vsock_device.hpp"

namespace forkvm {

/// Encodes `state` as {"guest_cid", "next_local_port", "reset_pending", "reset_event_avail",
/// "reset_events"}, and "connections": {"carried": [{ports and credit counters}], "stale":
/// [[local_port, peer_port]]} when the table is listed.
nlohmann::json to_json(const VsockDevice::State& state);

/// Decodes and checks a vsock state. Throws SnapshotError naming "vsock" and the field.
VsockDevice::State vsock_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
