#include "devices/virtio/vsock/vsock_device.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>

#include "base/fd_flags.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"
#include "devices/virtio/vsock/vsock_worker.hpp"

namespace forkvm {

struct VsockDevice::Impl {
  Impl(uint64_t cid, std::string path) : guest_cid(cid), listener(std::move(path)) {}

  // Set at construction, or by restore_state() (a listed table: the snapshot's), before any
  // activation; read by read_config() on vCPU threads.
  std::atomic<uint64_t> guest_cid;
  vsock::UnixListener listener;  // lives as long as the device, across resets
  std::atomic<uint64_t> refused{0};
  std::mutex mu;                 // serializes activate(), reset() and the snapshot calls
  // The connections; kept while quiesced, so the VM being captured keeps them (declared before
  // the worker, which refers to it, so it is destroyed after).
  std::unique_ptr<vsock::VsockSession> session;
  std::unique_ptr<vsock::VsockWorker> worker;
  // Carried across activations (guarded by mu, read and written only while no worker runs).
  uint32_t next_local_port = vsock::VsockMuxer::kFirstLocalPort;
  vsock::ResetGate gate;
  // Set by restore_state(): the restored guest still holds the snapshot's connections, which no
  // host end backs here, and must re-read its CID (a fork gets its own), so the first
  // activation posts TRANSPORT_RESET before it serves anything.
  bool reset_owed = false;
  std::atomic<uint64_t> resets_lost{0};
  // Set by restore_state() with a listed table, used by the first activation: carried
  // connections with the device's end of their socket pair, and stale ones to reset.
  struct Adopted {
    vsock::Connection::Carried conn;
    Fd device_end;
  };
  std::vector<Adopted> to_adopt;
  std::vector<std::pair<uint32_t, uint32_t>> to_reset;
  // Host ends of carried connections with their guest port and tag, until take_connection()
  // (guarded by mu).
  struct HostEnd {
    uint32_t guest_port;
    uint32_t tag;
    Fd fd;
  };
  std::vector<HostEnd> host_ends;

  /// Stops the worker and takes back what it carries across activations. The session and its
  /// connections stay.
  std::optional<vsock::VsockWorker::Finished> stop_worker() {
    if (!worker) return std::nullopt;
    auto f = worker->finish();
    next_local_port = f.next_local_port;
    gate = f.gate;
    worker.reset();
    return f;
  }

  /// Stops the worker and closes every connection: the host programs see EOF.
  void end_session() {
    stop_worker();
    session.reset();
  }

  /// Posts the TRANSPORT_RESET restore_state() owed into the activation's event queue (before
  /// its worker starts: nothing else writes the rings) and arms the RX gate until the guest
  /// has handled it (on top of any reset the snapshot's guest had not handled yet).
  void post_owed_reset(VirtioActivation& a);
};

namespace {

uint64_t checked_cid(uint64_t cid) {
  // 0 (hypervisor), 1 (local), 2 (host) are reserved, and so is 0xFFFFFFFF (VMADDR_CID_ANY);
  // the upper 32 bits must be zero (virtio 1.2 §5.10.4).
  if (cid <= vsock::kHostCid || cid >= 0xFFFF'FFFFull) {
    throw ConfigError("vsock guest CID " + std::to_string(cid) +
                      " is reserved (use 3 .. 4294967294)");
  }
  return cid;
}

}  // namespace

VsockDevice::VsockDevice(uint64_t guest_cid, std::string uds_path)
    : impl_(std::make_unique<Impl>(checked_cid(guest_cid), std::move(uds_path))) {}

VsockDevice::~VsockDevice() { reset(); }

uint64_t VsockDevice::guest_cid() const noexcept {
  return impl_->guest_cid.load(std::memory_order_relaxed);
}

const std::string& VsockDevice::uds_path() const noexcept { return impl_->listener.path(); }

uint64_t VsockDevice::device_features() const noexcept {
  // VIRTIO_VSOCK_F_STREAM is what a driver gets even when it negotiates no type bit (virtio
  // 1.2 §5.10.3.1); offering it explicitly is harmless for drivers that predate it (Linux).
  return virtio_feature::kVersion1 | vsock::feature::kStream;
}

std::vector<uint16_t> VsockDevice::queue_max_sizes() const {
  return {kQueueSize, kQueueSize, kQueueSize};
}

void VsockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const noexcept {
  // Guest-controlled: offset and size. Only bytes inside the 8-byte config are filled.
  constexpr uint64_t kConfigBytes = 8;
  for (size_t i = 0; i < data.size(); ++i) {
    if (offset >= kConfigBytes || i >= kConfigBytes - offset) break;
    data[i] = static_cast<uint8_t>(impl_->guest_cid.load(std::memory_order_relaxed) >> (8 * (offset + i)));
  }
}

void VsockDevice::activate(VirtioActivation activation) {
  std::lock_guard lock(impl_->mu);
  // A worker still running means the driver activated again without a reset: start afresh.
  // Without one, a session left by quiesce() is the VM resuming after a snapshot: kept.
  if (impl_->worker) impl_->end_session();
  if (activation.queues.size() != 3 || activation.queue_events.size() != 3) {
    throw VsockError("vsock activate: need 3 queues and 3 eventfds, got " +
                     std::to_string(activation.queues.size()) + " and " +
                     std::to_string(activation.queue_events.size()));
  }
  if (activation.memory == nullptr || !activation.interrupt) {
    throw VsockError("vsock activate: missing guest memory or interrupt");
  }
  for (size_t i = 0; i < activation.queues.size(); ++i) {
    if (!activation.queues[i].ready()) {
      throw VsockError("vsock activate: queue " + std::to_string(i) + " is not ready");
    }
  }
  const uint64_t cid = impl_->guest_cid.load(std::memory_order_relaxed);
  if (!impl_->session) {
    impl_->session = std::make_unique<vsock::VsockSession>(cid, impl_->listener);
    vsock::VsockMuxer& muxer = impl_->session->muxer;
    muxer.set_next_local_port(impl_->next_local_port);
    // A restored table (restore_state()): the carried connections go on over their socket
    // pairs, and the guest is told with an RST about every other one it still holds. Before
    // the worker starts, so these RSTs are the first packets the guest sees.
    for (auto& a : impl_->to_adopt) {
      if (!muxer.adopt(a.conn, std::move(a.device_end))) {
        muxer.reset_stale(a.conn.local_port, a.conn.peer_port);
      }
    }
    for (const auto& [local, peer] : impl_->to_reset) muxer.reset_stale(local, peer);
    impl_->to_adopt.clear();
    impl_->to_reset.clear();
  }
  if (impl_->reset_owed) impl_->post_owed_reset(activation);
  impl_->worker = std::make_unique<vsock::VsockWorker>(std::move(activation), cid,
                                                       *impl_->session, impl_->refused,
                                                       impl_->gate);
}

void VsockDevice::reset() noexcept {
  std::lock_guard lock(impl_->mu);
  impl_->end_session();  // joins the thread, then closes every connection
  impl_->gate = {};      // a reset driver starts afresh: there is no event to wait for
}

uint64_t VsockDevice::refused_packets() const noexcept {
  return impl_->refused.load(std::memory_order_relaxed);
}

namespace {

/// Writes struct virtio_vsock_event { le32 id; } = TRANSPORT_RESET into the next event buffer
/// and raises the interrupt. Returns the event queue's avail->idx afterwards, or nullopt when no
/// buffer was available (or the queue is unusable).
std::optional<uint16_t> post_transport_reset(VirtioActivation& a) {
  Queue& evq = a.queues[VsockDevice::kEventQueue];
  const GuestMemory& mem = *a.memory;
  auto chain = evq.pop_chain(mem);
  if (!chain) return std::nullopt;
  Writer w(mem, *chain);
  const uint32_t id = VsockDevice::kEventTransportReset;  // little-endian on x86
  const bool written = w.write_obj(id);
  // A buffer too small for the event goes back empty (len 0), as Linux's driver expects of any
  // used event buffer it cannot parse; the reset is then not delivered.
  if (!evq.add_used(mem, chain->head(), written ? sizeof(id) : 0)) return std::nullopt;
  // After add_used published used->idx (release inside add_used).
  if (a.interrupt) a.interrupt->signal_used_buffer();
  if (!written) return std::nullopt;
  const auto idx = evq.driver_avail_idx(mem);
  return idx ? idx : std::optional<uint16_t>(evq.next_avail());
}

}  // namespace

void VsockDevice::Impl::post_owed_reset(VirtioActivation& a) {
  reset_owed = false;
  if (const auto avail = post_transport_reset(a)) {
    if (gate.armed && gate.count < UINT16_MAX) {
      ++gate.count;  // the guest has yet to handle an earlier one: wait for both
    } else {
      gate = vsock::ResetGate{true, *avail, 1};
    }
  } else {
    resets_lost.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr,
                 "forkvm: vsock: no event buffer for TRANSPORT_RESET; the restored guest keeps "
                 "stale connections until they get RST\n");
  }
}

std::vector<Queue> VsockDevice::quiesce() {
  std::lock_guard lock(impl_->mu);
  // The worker stops; the session with every host connection stays, and nothing is posted to
  // the guest: the VM being captured resumes as if nothing happened. Only a VM restored from
  // the capture gets a TRANSPORT_RESET (restore_state()).
  auto f = impl_->stop_worker();
  if (!f) throw SnapshotError("snapshot: vsock: quiesce of a device that is not activated");
  VirtioActivation& a = f->activation;
  if (a.queues.size() != 3 || a.memory == nullptr) {
    throw SnapshotError("snapshot: vsock: the worker handed back an incomplete activation");
  }
  return std::move(a.queues);
}

VsockDevice::State VsockDevice::save_state(std::span<const vsock::VsockMuxer::CarryPort> carry) const {
  std::lock_guard lock(impl_->mu);
  if (impl_->worker) {
    throw SnapshotError("snapshot: vsock: the device is running; quiesce its transport first");
  }
  State s;
  s.guest_cid = impl_->guest_cid.load(std::memory_order_relaxed);
  if (impl_->session) {
    // With a TRANSPORT_RESET still unhandled the guest is about to drop every connection, so
    // none is carried (resetting them again is harmless).
    const auto table = impl_->session->muxer.export_connections(
        impl_->gate.armed ? std::span<const vsock::VsockMuxer::CarryPort>{} : carry);
    s.connections_listed = true;
    s.carried = table.carried;
    s.stale = table.stale;
  } else {
    // Not activated since restore_state() (or ever): what that restore would still do.
    s.connections_listed = !impl_->reset_owed;
    for (const auto& a : impl_->to_adopt) s.carried.push_back(a.conn);
    s.stale = impl_->to_reset;
  }
  s.next_local_port = impl_->next_local_port;
  s.reset_pending = impl_->gate.armed;
  s.reset_event_avail = impl_->gate.armed ? impl_->gate.event_avail : 0;
  s.reset_events = impl_->gate.armed ? impl_->gate.count : 0;
  return s;
}

void VsockDevice::restore_state(const State& s) {
  auto reject = [](const std::string& what) {
    throw SnapshotError("snapshot: vsock: " + what);
  };
  if (s.guest_cid <= vsock::kHostCid || s.guest_cid >= 0xFFFF'FFFFull) {
    reject("guest_cid " + std::to_string(s.guest_cid) + " is reserved");
  }
  if (s.next_local_port < vsock::VsockMuxer::kFirstLocalPort ||
      s.next_local_port >= vsock::VsockMuxer::kEndLocalPort) {
    reject("next_local_port " + std::to_string(s.next_local_port) + " outside [2^30, 2^31)");
  }
  if (!s.reset_pending && (s.reset_event_avail != 0 || s.reset_events != 0)) {
    reject("reset_event_avail or reset_events set without reset_pending");
  }
  if (s.reset_pending && s.reset_events == 0) reject("reset_pending with reset_events 0");
  if (!s.connections_listed && (!s.carried.empty() || !s.stale.empty())) {
    reject("connections given without connections_listed");
  }
  if (s.carried.size() + s.stale.size() > kMaxListedConnections) {
    reject(std::to_string(s.carried.size() + s.stale.size()) + " connections (at most " +
           std::to_string(kMaxListedConnections) + ")");
  }
  if (s.reset_pending && !s.carried.empty()) {
    reject("carried connections with a TRANSPORT_RESET pending");
  }
  // Snapshot-controlled: every (local, peer) pair once, and credit counters a live connection
  // can have: the guest never has more than our buffer unacknowledged.
  std::vector<std::pair<uint32_t, uint32_t>> keys = s.stale;
  for (const auto& c : s.carried) {
    keys.emplace_back(c.local_port, c.peer_port);
    if (c.fwd_cnt - c.advertised_fwd > vsock::Connection::kBufAlloc) {
      reject("carried connection " + std::to_string(c.local_port) + ":" +
             std::to_string(c.peer_port) + ": fwd_cnt " + std::to_string(c.fwd_cnt) +
             " too far ahead of the advertised " + std::to_string(c.advertised_fwd));
    }
  }
  std::sort(keys.begin(), keys.end());
  if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) {
    reject("a connection is listed twice");
  }
  std::lock_guard lock(impl_->mu);
  if (impl_->worker || impl_->session) reject("restore into a device that has served");
  impl_->next_local_port = s.next_local_port;
  impl_->gate = vsock::ResetGate{s.reset_pending, s.reset_event_avail, s.reset_events};
  impl_->reset_owed = !s.connections_listed;
  impl_->to_adopt.clear();
  impl_->to_reset = s.stale;
  impl_->host_ends.clear();
  if (!s.connections_listed) return;
  impl_->guest_cid.store(s.guest_cid, std::memory_order_relaxed);
  for (const auto& c : s.carried) {
    int ends[2];
    // The device's end is non-blocking like every socket the muxer serves; the host end is
    // left blocking for its taker to set up as it likes.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
      std::fprintf(stderr, "forkvm: vsock: cannot make a socket pair for carried connection "
                           "%u:%u (%s); it is reset\n", c.local_port, c.peer_port,
                   std::strerror(errno));
      impl_->to_reset.emplace_back(c.local_port, c.peer_port);
      continue;
    }
    Fd device_end(ends[0]);
    Fd host_end(ends[1]);
    if (set_nonblocking(device_end.get()) != 0) {
      impl_->to_reset.emplace_back(c.local_port, c.peer_port);
      continue;
    }
    impl_->to_adopt.push_back(Impl::Adopted{c, std::move(device_end)});
    impl_->host_ends.push_back(Impl::HostEnd{c.peer_port, c.tag, std::move(host_end)});
  }
}

VsockDevice::Taken VsockDevice::take_connection(uint32_t guest_port) {
  std::lock_guard lock(impl_->mu);
  for (auto it = impl_->host_ends.begin(); it != impl_->host_ends.end(); ++it) {
    if (it->guest_port != guest_port) continue;
    Taken t{std::move(it->fd), it->tag};
    impl_->host_ends.erase(it);
    return t;
  }
  return Taken{};
}

uint64_t VsockDevice::reset_events_lost() const noexcept {
  return impl_->resets_lost.load(std::memory_order_relaxed);
}

}  // namespace forkvm
