// VsockDevice: the virtio socket device (virtio 1.2 §5.10) with a Firecracker-compatible host
// side over Unix sockets (Firecracker docs/vsock.md):
// - host-initiated: a host program connects to uds_path, writes "CONNECT <port>\n" and, once
//   the guest accepts, reads "OK <local_port>\n"; then bytes flow both ways;
// - guest-initiated: a guest connect to (CID 2, port P) becomes a connect() to
//   "<uds_path>_<P>", answered with RESPONSE on success and RST otherwise.
// One worker thread per activation multiplexes the three queue eventfds, the listener, every
// connection's socket and a wake eventfd on one epoll set (vsock_worker.cpp); the protocol
// lives in packet.* (headers), connection.* (state and credit) and muxer.* (the table).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/virtio_device.hpp"

namespace forkvm {

/// The virtio-vsock device (device ID 19) for one guest CID and one host Unix socket path.
class VsockDevice : public VirtioDevice {
 public:
  /// Queue indices (virtio 1.2 §5.10.2).
  static constexpr size_t kRxQueue = 0;     ///< device -> driver packets
  static constexpr size_t kTxQueue = 1;     ///< driver -> device packets
  static constexpr size_t kEventQueue = 2;  ///< device -> driver events (TRANSPORT_RESET)
  /// QueueNumMax of every queue (Firecracker: 256).
  static constexpr uint16_t kQueueSize = 256;

  /// Binds and listens on `uds_path` right away, so host programs can connect before the
  /// guest driver is up (their CONNECT waits in the backlog until activation). Throws
  /// ConfigError when `guest_cid` is reserved (0, 1, 2, or >= 2^32 - 1: virtio 1.2 §5.10.4 keeps
  /// the upper 32 bits zero) and VsockError naming the path when it cannot listen there (a live
  /// listener, a non-socket file, a path too long); a stale socket file with no listener is
  /// replaced.
  VsockDevice(uint64_t guest_cid, std::string uds_path);
  /// Stops the worker (as reset()), closes every socket and unlinks uds_path.
  ~VsockDevice() override;
  VsockDevice(const VsockDevice&) = delete;
  VsockDevice& operator=(const VsockDevice&) = delete;

  /// The guest's CID (config space field guest_cid).
  uint64_t guest_cid() const noexcept;
  /// The host socket path.
  const std::string& uds_path() const noexcept;

  std::string name() const override { return "vsock"; }
  uint32_t device_id() const noexcept override { return virtio_id::kVsock; }
  /// VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_STREAM; no seqpacket, no EVENT_IDX, no indirect.
  uint64_t device_features() const noexcept override;
  /// Three queues of kQueueSize.
  std::vector<uint16_t> queue_max_sizes() const override;
  /// Config space (virtio 1.2 §5.10.4): le64 guest_cid at offset 0; 8 bytes, read-only.
  void read_config(uint64_t offset, std::span<uint8_t> data) const noexcept override;
  /// The config space is read-only: ignored.
  void write_config(uint64_t, std::span<const uint8_t>) noexcept override {}
  /// Takes the three queues and starts the worker. After quiesce() this is the captured VM
  /// resuming: its host connections carry on. After restore_state() it first posts
  /// TRANSPORT_RESET (see there). Throws VsockError when the activation does not hold three
  /// ready queues with three eventfds, memory and an interrupt, or when the worker's epoll set
  /// cannot be built. An activation while a worker runs starts afresh (connections closed).
  void activate(VirtioActivation activation) override;
  /// Stops and joins the worker, then closes every connection (host sockets see EOF) and drops
  /// the queues. The listener stays open for the next activation.
  void reset() noexcept override;

  /// Guest packets dropped or refused since construction (bad headers, unknown connections),
  /// for tests and metrics.
  uint64_t refused_packets() const noexcept;

  /// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (virtio 1.2 §5.10.6.8): struct virtio_vsock_event's id.
  static constexpr uint32_t kEventTransportReset = 0;

  /// Snapshot state. Connections are never saved (Firecracker #2218: the control protocol does
  /// not survive lost packets); a restored guest drops them on the TRANSPORT_RESET its device
  /// posts when it first activates, and keeps its listeners. The captured VM is not reset.
  struct State {
    uint64_t guest_cid = 0;        ///< The CID when the snapshot was taken (see restore_state).
    uint32_t next_local_port = 0;  ///< Next host-side local port, in [2^30, 2^31).
    bool reset_pending = false;    ///< TRANSPORT_RESET posted, not yet handled by the guest.
    uint16_t reset_event_avail = 0;  ///< Event queue avail->idx after the first unhandled one.
    uint16_t reset_events = 0;     ///< Resets posted and not yet handled (>= 1 when pending).
    /// Field equality.
    bool operator==(const State&) const = default;
  };

  /// Snapshot (through VirtioMmioTransport::quiesce): stops the worker and returns the three
  /// queues. Every host connection stays open (its bytes wait in the socket) and nothing is
  /// posted to the guest, so the captured VM resumes (activate()) undisturbed: a fork or
  /// snapshot does not touch the parent's agent connection. Throws SnapshotError when the
  /// device is not activated.
  std::vector<Queue> quiesce() override;
  /// Captures the device state. Throws SnapshotError while the worker runs (quiesce first).
  State save_state() const;
  /// Applies `state` to a device that has never served, before its transport's restore_state()
  /// activates it. That first activation posts VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event
  /// queue and raises the interrupt before the worker starts, and arms the RX gate until the
  /// guest has handled it (as well as any reset the snapshot's guest had not handled yet). If
  /// the driver left no event buffer the reset cannot be posted (counted in
  /// reset_events_lost()). The CID in `state` is checked (3 .. 2^32-2) but the device keeps the
  /// one it was built with: a fork gets its own CID, and the guest re-reads guest_cid from
  /// config space when it handles TRANSPORT_RESET (Linux virtio_vsock_update_guest_cid). Throws
  /// SnapshotError on an invalid state or a device that has served.
  void restore_state(const State& state);
  /// TRANSPORT_RESET events that could not be posted because the event queue had no buffer.
  uint64_t reset_events_lost() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
