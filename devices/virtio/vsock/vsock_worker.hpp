// The vsock device's worker: one thread per activation that owns the three queues and a
// VsockMuxer, and waits on one epoll set for queue notifications, host sockets, deadlines and
// its own stop signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "base/fd.hpp"
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

/// Serves one activation. Construction starts the thread; destruction stops and joins it, then
/// closes every connection: when the destructor returns nothing touches guest memory.
class VsockWorker {
 public:
  /// Takes `activation` (three ready queues, their eventfds, memory, interrupt, needs_reset),
  /// which the caller has checked. `refused` counts dropped or refused guest packets. Throws
  /// VsockError when the epoll set, the wake eventfd or the thread cannot be created.
  /// `next_local_port` and `gate` carry over from the previous activation or a snapshot.
  VsockWorker(VirtioActivation activation, uint64_t guest_cid, const UnixListener& listener,
              std::atomic<uint64_t>& refused, uint32_t next_local_port, ResetGate gate);
  ~VsockWorker();

  /// What a stopped worker hands back for a snapshot.
  struct Finished {
    VirtioActivation activation;  ///< The queues (a held RX buffer given back) and the rest.
    uint32_t next_local_port = 0;  ///< The muxer's local-port cursor.
    ResetGate gate;                ///< The gate as the worker left it.
  };
  /// Stops and joins the thread and hands back the activation. Connections stay open until the
  /// worker is destroyed. Call at most once.
  Finished finish() noexcept;
  VsockWorker(const VsockWorker&) = delete;
  VsockWorker& operator=(const VsockWorker&) = delete;

 private:
  // epoll tokens below VsockMuxer::kListenerToken: the queue eventfds are 0..2, then wake.
  static constexpr uint64_t kWakeToken = 3;

  void stop() noexcept;
  void run() noexcept;
  /// Whether RX may deliver: the gate is open, or the guest has just acknowledged the reset.
  bool rx_allowed() noexcept;
  void drain_eventfd(int fd) noexcept;
  void process_tx(Clock::time_point now);
  bool process_rx(Clock::time_point now);
  void handle_tx_chain(const DescriptorChain& chain, Clock::time_point now);
  void fail(const std::string& reason) noexcept;
  int timeout_ms(Clock::time_point now) const noexcept;

  VirtioActivation act_;
  uint64_t guest_cid_;
  std::atomic<uint64_t>& refused_;
  EpollSet epoll_;
  VsockMuxer muxer_;
  Fd wake_;
  std::atomic<bool> stop_{false};
  ResetGate gate_;
  bool failed_ = false;              // a queue broke: needs_reset was reported
  bool tx_deferred_ = false;         // TX stopped on backpressure with chains left
  std::optional<DescriptorChain> held_rx_;  // an RX buffer popped with nothing to put in it
  std::vector<uint8_t> tx_payload_;
  std::thread thread_;
};

}  // namespace forkvm::vsock
