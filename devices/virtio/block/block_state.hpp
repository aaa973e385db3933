// JSON encoding of BlockDevice::State for a snapshot's state.json. Decoding treats the JSON as
// hostile: types, the serial's length and characters (BlockDevice::id_problem), and a capacity
// of at least one sector that fits a byte offset in 64 bits.
#pragma once

#include <nlohmann/json.hpp>

#include "devices/virtio/block/block_device.hpp"

namespace forkvm {

/// Encodes `state` as {"id", "sectors", "read_only"}.
nlohmann::json to_json(const BlockDevice::State& state);

/// Decodes and checks a block device state. Throws SnapshotError naming "blk" and the field.
BlockDevice::State block_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
