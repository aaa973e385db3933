#include "devices/virtio/mmio_transport_state.hpp"

#include <string>

#include "base/json_reader.hpp"

#include "devices/virtio/queue_state.hpp"

namespace forkvm {
namespace {

/// More queues than any virtio device has (virtio-net with many pairs stays far below).
constexpr size_t kMaxQueues = 1024;
constexpr uint32_t kInterruptBits = VirtioInterrupt::kUsedBuffer | VirtioInterrupt::kConfigChange;

}  // namespace

nlohmann::json to_json(const VirtioMmioTransport::State& s) {
  nlohmann::json queues = nlohmann::json::array();
  for (const auto& q : s.queues) queues.push_back({{"enabled", q.enabled}, {"queue", to_json(q.queue)}});
  return {{"device_id", s.device_id},
          {"status", s.status},
          {"needs_reset", s.needs_reset},
          {"needs_reset_reason", s.needs_reset_reason},
          {"activated", s.activated},
          {"device_features_sel", s.device_features_sel},
          {"driver_features_sel", s.driver_features_sel},
          {"driver_features", s.driver_features},
          {"queue_sel", s.queue_sel},
          {"queues", std::move(queues)},
          {"interrupt_status", s.interrupt_status}};
}

VirtioMmioTransport::State mmio_transport_state_from_json(const nlohmann::json& j,
                                                          std::string_view component) {
  JsonReader r(j, std::string(component));
  VirtioMmioTransport::State s;
  s.device_id = r.num<uint32_t>("device_id");
  s.status = r.num<uint32_t>("status", 0, 0xff);  // the register is 8 bits (§2.1)
  s.needs_reset = r.boolean("needs_reset");
  s.needs_reset_reason = r.string("needs_reset_reason", VirtioMmioTransport::kMaxReasonBytes);
  if (!s.needs_reset && !s.needs_reset_reason.empty()) {
    r.fail("needs_reset_reason", "set while needs_reset is false");
  }
  s.activated = r.boolean("activated");
  s.device_features_sel = r.num<uint32_t>("device_features_sel");
  s.driver_features_sel = r.num<uint32_t>("driver_features_sel");
  s.driver_features = r.num<uint64_t>("driver_features");
  s.queue_sel = r.num<uint32_t>("queue_sel");
  const nlohmann::json& queues = r.array("queues", kMaxQueues);
  if (queues.empty()) r.fail("queues", "a virtio device has at least one queue");
  for (size_t i = 0; i < queues.size(); ++i) {
    JsonReader e(queues[i], r.path("queues[" + std::to_string(i) + "]"));
    VirtioMmioTransport::QueueEntry entry;
    entry.enabled = e.boolean("enabled");
    entry.queue = queue_state_from_json(e.member("queue"), e.path("queue"));
    e.finish();
    s.queues.push_back(entry);
  }
  s.interrupt_status = r.num<uint32_t>("interrupt_status", 0, kInterruptBits);
  r.finish();
  return s;
}

}  // namespace forkvm
