// The vsock device's worker: one thread per activation that owns the three queues and drives
// the device's VsockSession (the muxer with every connection, and its epoll set), waiting on
// that set for queue notifications, host sockets, deadlines and its own stop signal. The
// session outlives a worker stopped for a snapshot, so the VM being captured keeps its
// connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "base/fd.hpp"
#include "base/scratch_buffer.hpp"
#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock/epoll_set.hpp"
#include "devices/virtio/vsock/muxer.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"

namespace forkvm::vsock {

/// The TRANSPORT_RESET gate (Firecracker PR #5882, #6100): after the device posted
/// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, nothing goes to the guest's RX queue until the guest has
/// handled the event. Linux's driver re-posts the event buffer after handling it
/// (virtio_transport_event_work: event_handle, then event_fill_one and a kick), so the gate
/// opens when the event queue's avail->idx has moved `count` past its value after the first
/// unhandled reset was posted: one re-posted buffer per reset. Several resets can be waiting
/// (a VM captured again before its guest handled the last one); Linux handles them in one loop,
/// re-posting after each, so opening at the first re-post would let a REQUEST through before
/// the next reset, which would kill it a moment later.
struct ResetGate {
  bool armed = false;          ///< RX is blocked until the guest acknowledges.
  uint16_t event_avail = 0;    ///< Event queue avail->idx right after the first unhandled reset.
  uint16_t count = 0;          ///< Resets posted and not yet acknowledged (>= 1 when armed).
  /// Field equality.
  bool operator==(const ResetGate&) const = default;
};

/// The host side of the device that outlives one worker: the epoll set and the muxer holding
/// every host connection. Made by the first activation after a reset (or a restore); kept while
/// the device is quiesced for a snapshot, so the original VM resumes with its connections;
/// destroyed by a driver reset or the device's end, which closes them (host programs see EOF).
struct VsockSession {
  /// Registers `listener` (which must outlive the session) in a new epoll set. Throws
  /// VsockError when the epoll set cannot be made or refuses the listener.
  VsockSession(uint64_t guest_cid, const UnixListener& listener)
      : muxer(guest_cid, listener, epoll) {}
  EpollSet epoll;
  VsockMuxer muxer;  ///< after epoll: unregisters from it and closes the sockets first
};

/// Serves one activation. Construction starts the thread; destruction stops and joins it and
/// takes its own descriptors out of the session's epoll set: when the destructor returns
/// nothing touches guest memory. The connections stay in the session.
class VsockWorker {
 public:
  /// Takes `activation` (three ready queues, their eventfds, memory, interrupt, needs_reset),
  /// which the caller has checked, and serves `session` (which must outlive the worker).
  /// `refused` counts dropped or refused guest packets. Throws VsockError when the wake
  /// eventfd, an epoll registration or the thread cannot be made. `gate` carries over from the
  /// previous activation or a snapshot.
  VsockWorker(VirtioActivation activation, uint64_t guest_cid, VsockSession& session,
              std::atomic<uint64_t>& refused, ResetGate gate);
  ~VsockWorker();

  /// What a stopped worker hands back for a snapshot.
  struct Finished {
    VirtioActivation activation;  ///< The queues (a held RX buffer given back) and the rest.
    uint32_t next_local_port = 0;  ///< The muxer's local-port cursor.
    ResetGate gate;                ///< The gate as the worker left it.
  };
  /// Stops and joins the thread and hands back the activation. The connections stay in the
  /// session. Call at most once.
  Finished finish() noexcept;
  VsockWorker(const VsockWorker&) = delete;
  VsockWorker& operator=(const VsockWorker&) = delete;

 private:
  // epoll tokens below VsockMuxer::kListenerToken: the queue eventfds are 0..2, then wake.
  static constexpr uint64_t kWakeToken = 3;

  void stop() noexcept;
  /// Takes the queue and wake eventfds out of the session's epoll set (a later worker on the
  /// same session registers the same queue eventfds again).
  void unregister() noexcept;
  void run() noexcept;
  /// Whether RX may deliver: the gate is open, or the guest has just acknowledged the reset.
  bool rx_allowed() noexcept;
  void drain_eventfd(int fd) noexcept;
  void process_tx(Clock::time_point now);
  bool process_rx(Clock::time_point now);
  void fail(const std::string& reason) noexcept;
  int timeout_ms(Clock::time_point now) const noexcept;

  VirtioActivation act_;
  uint64_t guest_cid_;
  std::atomic<uint64_t>& refused_;
  EpollSet& epoll_;
  VsockMuxer& muxer_;
  Fd wake_;
  bool registered_ = false;          // the eventfds are in epoll_ (unregister() clears it)
  std::atomic<bool> stop_{false};
  ResetGate gate_;
  bool failed_ = false;              // a queue broke: needs_reset was reported
  bool tx_deferred_ = false;         // TX stopped on backpressure with chains left
  std::optional<DescriptorChain> held_rx_;  // an RX buffer popped with nothing to put in it
  ScratchBuffer tx_payload_;  // a TX packet's payload, copied out of guest RAM
  std::thread thread_;
};

}  // namespace forkvm::vsock
