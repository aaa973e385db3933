#include "devices/virtio/mmio_transport_state.hpp"

#include <string>

#include "devices/state_json.hpp"
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
  using namespace state_json;
  expect_object(j, component,
                {"device_id", "status", "needs_reset", "needs_reset_reason", "activated",
                 "device_features_sel", "driver_features_sel", "driver_features", "queue_sel",
                 "queues", "interrupt_status"});
  VirtioMmioTransport::State s;
  s.device_id = get_uint<uint32_t>(j, component, "device_id");
  s.status = get_uint<uint32_t>(j, component, "status", 0xff);  // the register is 8 bits (§2.1)
  s.needs_reset = get_bool(j, component, "needs_reset");
  s.needs_reset_reason =
      get_string(j, component, "needs_reset_reason", VirtioMmioTransport::kMaxReasonBytes);
  if (!s.needs_reset && !s.needs_reset_reason.empty()) {
    fail(component, "needs_reset_reason", "set while needs_reset is false");
  }
  s.activated = get_bool(j, component, "activated");
  s.device_features_sel = get_uint<uint32_t>(j, component, "device_features_sel");
  s.driver_features_sel = get_uint<uint32_t>(j, component, "driver_features_sel");
  s.driver_features = get_uint<uint64_t>(j, component, "driver_features");
  s.queue_sel = get_uint<uint32_t>(j, component, "queue_sel");
  const nlohmann::json& queues = get_array(j, component, "queues", kMaxQueues);
  if (queues.empty()) fail(component, "queues", "a virtio device has at least one queue");
  for (size_t i = 0; i < queues.size(); ++i) {
    const std::string where = std::string(component) + ".queues[" + std::to_string(i) + "]";
    expect_object(queues[i], where, {"enabled", "queue"});
    VirtioMmioTransport::QueueEntry e;
    e.enabled = get_bool(queues[i], where, "enabled");
    e.queue = queue_state_from_json(field(queues[i], where, "queue"), where);
    s.queues.push_back(e);
  }
  s.interrupt_status = get_uint<uint32_t>(j, component, "interrupt_status", kInterruptBits);
  return s;
}

}  // namespace forkvm
