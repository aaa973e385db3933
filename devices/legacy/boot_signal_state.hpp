// JSON encoding of BootSignalDevice::State for a snapshot's state.json. Decoding treats the
// JSON as hostile: every field is type- and range-checked, and the result passes
// BootSignalDevice::validate().
#pragma once

#include <nlohmann/json.hpp>

#include "devices/legacy/boot_signal.hpp"

namespace forkvm {

/// Encodes `state` as {"agent_ready": {count, first_arg, last_arg}, "power_off": ...,
/// "fatal": ..., "malformed_writes": n}.
nlohmann::json to_json(const BootSignalDevice::State& state);

/// Decodes and validates a boot-signal state. Throws SnapshotError naming "boot_signal" and the
/// field.
BootSignalDevice::State boot_signal_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
