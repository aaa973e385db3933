#include "devices/virtio/vsock/vsock_state.hpp"

#include "devices/state_json.hpp"
#include "devices/virtio/vsock/muxer.hpp"

namespace forkvm {
namespace {
constexpr std::string_view kComponent = "vsock";
}  // namespace

nlohmann::json to_json(const VsockDevice::State& s) {
  return {{"guest_cid", s.guest_cid},
          {"next_local_port", s.next_local_port},
          {"reset_pending", s.reset_pending},
          {"reset_event_avail", s.reset_event_avail},
          {"reset_events", s.reset_events}};
}

VsockDevice::State vsock_state_from_json(const nlohmann::json& j) {
  using namespace state_json;
  expect_object(j, kComponent,
                {"guest_cid", "next_local_port", "reset_pending", "reset_event_avail",
                 "reset_events"});
  VsockDevice::State s;
  // 0, 1, 2 and 0xFFFFFFFF are reserved; the upper 32 bits are zero (virtio 1.2 §5.10.4).
  s.guest_cid = get_uint<uint64_t>(j, kComponent, "guest_cid", 0xFFFF'FFFEull);
  if (s.guest_cid <= vsock::kHostCid) fail(kComponent, "guest_cid", "reserved CID");
  s.next_local_port = get_uint<uint32_t>(j, kComponent, "next_local_port",
                                         vsock::VsockMuxer::kEndLocalPort - 1);
  if (s.next_local_port < vsock::VsockMuxer::kFirstLocalPort) {
    fail(kComponent, "next_local_port", "below 2^30");
  }
  s.reset_pending = get_bool(j, kComponent, "reset_pending");
  s.reset_event_avail = get_uint<uint16_t>(j, kComponent, "reset_event_avail");
  if (!s.reset_pending && s.reset_event_avail != 0) {
    fail(kComponent, "reset_event_avail", "set without reset_pending");
  }
  s.reset_events = get_uint<uint16_t>(j, kComponent, "reset_events");
  if (s.reset_pending != (s.reset_events != 0)) {
    fail(kComponent, "reset_events", "must be at least 1 exactly when reset_pending is set");
  }
  return s;
}

}  // namespace forkvm
