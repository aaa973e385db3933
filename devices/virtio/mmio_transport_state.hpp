// JSON encoding of VirtioMmioTransport::State for a snapshot's state.json. Decoding checks
// what can be checked without the transport: types, ranges, the reason's length, each queue
// (queue_state_from_json). The checks against the device and guest memory (device_id, queue
// count, features offered, rings inside RAM) are VirtioMmioTransport::restore_state()'s.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "devices/virtio/mmio_transport.hpp"

namespace forkvm {

/// Encodes `state`; queues as [{"enabled": bool, "queue": {...}}, ...].
nlohmann::json to_json(const VirtioMmioTransport::State& state);

/// Decodes a transport state. `component` names it in errors (e.g. "virtio-mmio[vsock]").
/// Throws SnapshotError naming the component and field.
VirtioMmioTransport::State mmio_transport_state_from_json(
    const nlohmann::json& j, std::string_view component = "virtio-mmio");

}  // namespace forkvm
