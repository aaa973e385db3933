// JSON encoding of Queue::State for a snapshot's state.json. Decoding treats the JSON as hostile:
// types and ranges of every field, a known QueueError name, and Queue::check_state()'s
// consistency rules. What needs guest memory or the queue's max size (rings inside RAM, size <=
// QueueNumMax) is checked by Queue::restore_state().
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "devices/virtio/queue.hpp"

namespace forkvm {

/// Encodes `state`; addresses as unsigned integers, `error` as a stable snake_case name.
nlohmann::json to_json(const Queue::State& state);

/// Decodes and checks a queue state. `component` names it in errors (e.g.
/// "virtio-mmio[vsock].queues[1]"). Throws SnapshotError naming the component and field.
Queue::State queue_state_from_json(const nlohmann::json& j,
                                   std::string_view component = "virtio queue");

/// The stable name of `e` used in snapshots ("none", "avail_idx_jump", ...).
std::string_view queue_error_name(QueueError e) noexcept;

}  // namespace forkvm
