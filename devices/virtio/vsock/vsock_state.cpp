#include "devices/virtio/vsock/vsock_state.hpp"

#include "base/json_reader.hpp"
#include "devices/virtio/vsock/muxer.hpp"

namespace forkvm {
nlohmann::json to_json(const VsockDevice::State& s) {
  return {{"guest_cid", s.guest_cid},
          {"next_local_port", s.next_local_port},
          {"reset_pending", s.reset_pending},
          {"reset_event_avail", s.reset_event_avail},
          {"reset_events", s.reset_events}};
}

VsockDevice::State vsock_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, "vsock");
  VsockDevice::State s;
  // 0, 1, 2 and 0xFFFFFFFF are reserved; the upper 32 bits are zero (virtio 1.2 §5.10.4).
  s.guest_cid = r.num<uint64_t>("guest_cid", 0, 0xFFFF'FFFEull);
  if (s.guest_cid <= vsock::kHostCid) r.fail("guest_cid", "reserved CID");
  s.next_local_port =
      r.num<uint32_t>("next_local_port", 0, vsock::VsockMuxer::kEndLocalPort - 1);
  if (s.next_local_port < vsock::VsockMuxer::kFirstLocalPort) {
    r.fail("next_local_port", "below 2^30");
  }
  s.reset_pending = r.boolean("reset_pending");
  s.reset_event_avail = r.num<uint16_t>("reset_event_avail");
  if (!s.reset_pending && s.reset_event_avail != 0) {
    r.fail("reset_event_avail", "set without reset_pending");
  }
  s.reset_events = r.num<uint16_t>("reset_events");
  if (s.reset_pending != (s.reset_events != 0)) {
    r.fail("reset_events", "must be at least 1 exactly when reset_pending is set");
  }
  r.finish();
  return s;
}

}  // namespace forkvm
