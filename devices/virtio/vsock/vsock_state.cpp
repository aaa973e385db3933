#include "devices/virtio/vsock/vsock_state.hpp"

#include "base/json_reader.hpp"
#include "devices/virtio/vsock/muxer.hpp"

namespace forkvm {
nlohmann::json to_json(const VsockDevice::State& s) {
  nlohmann::json j = {{"guest_cid", s.guest_cid},
                      {"next_local_port", s.next_local_port},
                      {"reset_pending", s.reset_pending},
                      {"reset_event_avail", s.reset_event_avail},
                      {"reset_events", s.reset_events}};
  if (s.connections_listed) {
    nlohmann::json carried = nlohmann::json::array();
    for (const auto& c : s.carried) {
      carried.push_back({{"local_port", c.local_port},
                         {"peer_port", c.peer_port},
                         {"fwd_cnt", c.fwd_cnt},
                         {"advertised_fwd", c.advertised_fwd},
                         {"tx_cnt", c.tx_cnt},
                         {"peer_buf_alloc", c.peer_buf_alloc},
                         {"peer_fwd_cnt", c.peer_fwd_cnt},
                         {"credit_update_owed", c.credit_update_owed},
                         {"tag", c.tag}});
    }
    nlohmann::json stale = nlohmann::json::array();
    for (const auto& [local, peer] : s.stale) stale.push_back({local, peer});
    j["connections"] = {{"carried", std::move(carried)}, {"stale", std::move(stale)}};
  }
  return j;
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
  // Optional: snapshots made before the connection table existed have none (and get a
  // TRANSPORT_RESET at restore). VsockDevice::restore_state checks the table as a whole.
  if (r.present("connections")) {
    s.connections_listed = true;
    JsonReader t = r.object("connections");
    constexpr size_t kMax = VsockDevice::kMaxListedConnections;
    const nlohmann::json& carried = t.array("carried", kMax);
    for (size_t i = 0; i < carried.size(); ++i) {
      JsonReader c(carried[i], t.path("carried[" + std::to_string(i) + "]"));
      vsock::Connection::Carried conn;
      conn.local_port = c.num<uint32_t>("local_port");
      conn.peer_port = c.num<uint32_t>("peer_port");
      conn.fwd_cnt = c.num<uint32_t>("fwd_cnt");
      conn.advertised_fwd = c.num<uint32_t>("advertised_fwd");
      conn.tx_cnt = c.num<uint32_t>("tx_cnt");
      conn.peer_buf_alloc = c.num<uint32_t>("peer_buf_alloc");
      conn.peer_fwd_cnt = c.num<uint32_t>("peer_fwd_cnt");
      conn.credit_update_owed = c.boolean("credit_update_owed");
      conn.tag = c.num<uint32_t>("tag");
      c.finish();
      s.carried.push_back(conn);
    }
    const nlohmann::json& stale = t.array("stale", kMax);
    for (size_t i = 0; i < stale.size(); ++i) {
      const nlohmann::json& e = stale[i];
      const auto is_port = [](const nlohmann::json& v) {
        return v.is_number_unsigned() && v.get<uint64_t>() <= UINT32_MAX;
      };
      if (!e.is_array() || e.size() != 2 || !is_port(e[0]) || !is_port(e[1])) {
        t.fail("stale[" + std::to_string(i) + "]", "not a [local_port, peer_port] pair of u32");
      }
      s.stale.emplace_back(e[0].get<uint32_t>(), e[1].get<uint32_t>());
    }
    t.finish();
  }
  r.finish();
  return s;
}

}  // namespace forkvm
