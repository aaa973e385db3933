// JSON encoding of NetDevice::State for a snapshot's state.json. Decoding treats the JSON as
// hostile: the MAC must be exactly six two-digit lowercase or uppercase hex bytes separated by
// colons, and unicast (NetDevice::mac_problem).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "devices/virtio/net/net_device.hpp"

namespace forkvm {

/// Encodes `state` as {"mac": "02:00:5e:10:00:01"}.
nlohmann::json to_json(const NetDevice::State& state);

/// Decodes and checks a net device state. Throws SnapshotError naming "net" and the field.
NetDevice::State net_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
