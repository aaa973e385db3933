// JSON encoding of I8042::State for a snapshot's state.json. Decoding treats the JSON as
// hostile: every field is type- and range-checked, and the result passes I8042::validate().
#pragma once

#include <nlohmann/json.hpp>

#include "devices/legacy/i8042.hpp"

namespace forkvm {

/// Encodes `state`: the 32-byte controller RAM and the keyboard queue as base64, the controller
/// queue as an array of {value, aux}, the rest as unsigned integers and booleans.
nlohmann::json to_json(const I8042::State& state);

/// Decodes and validates an i8042 state. Throws SnapshotError naming "i8042" and the field.
I8042::State i8042_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
