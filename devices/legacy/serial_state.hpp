// JSON encoding of Serial::State for a snapshot's state.json. Decoding treats the JSON as
// hostile: every field is type- and range-checked, and the result passes Serial::validate().
#pragma once

#include <nlohmann/json.hpp>

#include "devices/legacy/serial.hpp"

namespace forkvm {

/// Encodes `state`: one unsigned integer per register, `thr_interrupt` as a boolean, the RX
/// FIFO (oldest byte first) as base64.
nlohmann::json to_json(const Serial::State& state);

/// Decodes and validates a serial state. Throws SnapshotError naming "serial" and the field on a
/// missing, unknown, mistyped or out-of-range field, or a state Serial::validate() refuses.
Serial::State serial_state_from_json(const nlohmann::json& j);

}  // namespace forkvm
