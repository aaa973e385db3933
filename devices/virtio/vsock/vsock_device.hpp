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
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock/connection.hpp"
#include "devices/virtio/vsock/muxer.hpp"

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
  /// resuming: its host connections carry on. After restore_state() it first takes over the
  /// carried connections and resets the stale ones, or posts TRANSPORT_RESET (see there). Throws VsockError when the activation does not hold three
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

  /// Snapshot state. A capture lists the connections: those the capturer asked to carry
  /// (save_state's `carry_guest_ports`) that are established with nothing in flight are taken
  /// over by a VM restored from it (take_connection()); every other one is reset there with an
  /// RST of its own. Firecracker resets them all with TRANSPORT_RESET (#2218: the control
  /// protocol does not survive lost packets); here nothing is lost, because the restored guest
  /// holds exactly the state the capture's device agreed with. Snapshots made before the list
  /// existed (connections_listed false) still get a TRANSPORT_RESET.
  struct State {
    uint64_t guest_cid = 0;        ///< The CID when the snapshot was taken (see restore_state).
    uint32_t next_local_port = 0;  ///< Next host-side local port, in [2^30, 2^31).
    bool reset_pending = false;    ///< TRANSPORT_RESET posted, not yet handled by the guest.
    uint16_t reset_event_avail = 0;  ///< Event queue avail->idx after the first unhandled one.
    uint16_t reset_events = 0;     ///< Resets posted and not yet handled (>= 1 when pending).
    bool connections_listed = false;  ///< `carried` and `stale` are the whole table.
    std::vector<vsock::Connection::Carried> carried;  ///< taken over at restore
    std::vector<std::pair<uint32_t, uint32_t>> stale;  ///< (local, peer) ports, reset at restore
    /// Field equality.
    bool operator==(const State&) const = default;
  };
  /// Most connections a state may list (carried + stale): the muxer's table size.
  static constexpr size_t kMaxListedConnections = 1023;

  /// Snapshot (through VirtioMmioTransport::quiesce): stops the worker and returns the three
  /// queues. Every host connection stays open (its bytes wait in the socket) and nothing is
  /// posted to the guest, so the captured VM resumes (activate()) undisturbed: a fork or
  /// snapshot does not touch the parent's agent connection (a VM made from the capture gets
  /// its own host end of a carried connection, see restore_state()). Throws SnapshotError when the
  /// device is not activated.
  std::vector<Queue> quiesce() override;
  /// Captures the device state, listing the connections: those to a guest port in `carry`
  /// are carried, with its tag, when they can be (Connection::carried()), unless a
  /// TRANSPORT_RESET is still unhandled (the guest will drop them all). The caller promises
  /// that nothing is half-sent on a carried connection in either direction at its own level
  /// (a message boundary). Throws SnapshotError while the worker runs (quiesce first).
  State save_state(std::span<const vsock::VsockMuxer::CarryPort> carry = {}) const;
  /// Applies `state` to a device that has never served, before its transport's restore_state()
  /// activates it. With a listed table, the device takes the snapshot's guest CID (the guest
  /// keeps it: its host side is this device's own socket path, so CIDs need not differ between
  /// VMs), makes a socket pair for every carried connection (take_connection() hands out the
  /// host end) and, at that first activation, queues an RST for every stale one; a carried
  /// connection whose socket pair cannot be made is reset too. Without a listed table, that
  /// first activation posts VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue and raises the
  /// interrupt before the worker starts, and arms the RX gate until the guest has handled it
  /// (as well as any reset the snapshot's guest had not handled yet); if the driver left no
  /// event buffer the reset cannot be posted (counted in reset_events_lost()); the device keeps
  /// the CID it was built with, which the guest re-reads from config space when it handles
  /// TRANSPORT_RESET (Linux virtio_vsock_update_guest_cid). Throws SnapshotError on an invalid
  /// state (a reserved CID, ports out of range, duplicate or too many connections, credit
  /// counters that cannot hold) or a device that has served.
  void restore_state(const State& state);
  /// A carried connection handed out by take_connection().
  struct Taken {
    Fd fd;             ///< empty when there was none
    uint32_t tag = 0;  ///< the capturer's tag (save_state's `carry`)
  };
  /// The host end of the carried connection to guest port `guest_port` (the first one, if
  /// several), a connected Unix stream socket: bytes written to it reach the guest's socket, and
  /// what the guest sends arrives on it. Empty when there is none (or it was taken). A carried
  /// connection nobody takes stays open until the device ends; closing the returned descriptor
  /// closes it as any host program's would.
  Taken take_connection(uint32_t guest_port);
  /// TRANSPORT_RESET events that could not be posted because the event queue had no buffer.
  uint64_t reset_events_lost() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
