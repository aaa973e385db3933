#include "devices/virtio/queue_state.hpp"

#include <array>
#include <string>

#include "base/json_reader.hpp"

namespace forkvm {
namespace {

// Indexed by the enum's value; the names are part of the snapshot format, never reorder.
constexpr std::array<std::string_view, 20> kErrorNames = {
    "none",
    "not_ready",
    "size_invalid",
    "desc_table_misaligned",
    "avail_ring_misaligned",
    "used_ring_misaligned",
    "desc_table_out_of_memory",
    "avail_ring_out_of_memory",
    "used_ring_out_of_memory",
    "avail_idx_jump",
    "head_out_of_range",
    "next_out_of_range",
    "chain_too_long",
    "indirect_not_supported",
    "readable_after_writable",
    "address_overflow",
    "buffer_out_of_memory",
    "request_too_large",
    "memory_access",
    "used_head_invalid",
};
static_assert(static_cast<size_t>(QueueError::kUsedHeadInvalid) + 1 == kErrorNames.size(),
              "every QueueError needs a snapshot name");

}  // namespace

std::string_view queue_error_name(QueueError e) noexcept {
  const auto i = static_cast<size_t>(e);
  return i < kErrorNames.size() ? kErrorNames[i] : "unknown";
}

nlohmann::json to_json(const Queue::State& s) {
  return {{"size", s.size},
          {"desc_table", s.desc_table},
          {"avail_ring", s.avail_ring},
          {"used_ring", s.used_ring},
          {"ready", s.ready},
          {"next_avail", s.next_avail},
          {"next_used", s.next_used},
          {"in_flight", s.in_flight},
          {"error", std::string(queue_error_name(s.error))}};
}

Queue::State queue_state_from_json(const nlohmann::json& j, std::string_view component) {
  JsonReader r(j, std::string(component));
  Queue::State s;
  s.size = r.num<uint16_t>("size");
  s.desc_table = r.num<uint64_t>("desc_table");
  s.avail_ring = r.num<uint64_t>("avail_ring");
  s.used_ring = r.num<uint64_t>("used_ring");
  s.ready = r.boolean("ready");
  s.next_avail = r.num<uint16_t>("next_avail");
  s.next_used = r.num<uint16_t>("next_used");
  s.in_flight = r.num<uint16_t>("in_flight");
  const std::string name = r.string("error", 64);
  bool found = false;
  for (size_t i = 0; i < kErrorNames.size(); ++i) {
    if (kErrorNames[i] == name) {
      s.error = static_cast<QueueError>(i);
      found = true;
    }
  }
  if (!found) r.fail("error", "unknown queue error '" + name + "'");
  r.finish();
  Queue::check_state(s, component);
  return s;
}

}  // namespace forkvm
