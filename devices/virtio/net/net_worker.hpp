// NetWorker: the one thread that moves frames for an activated virtio-net device, between its
// two queues and its FrameEndpoint, from activate() to reset()/quiesce().
//
// It polls four descriptors: a stop eventfd, the RX and TX queue notifications, and the
// backend (POLLIN only while the guest has posted a receive buffer, POLLOUT only while a
// transmitted frame waits for room). Each round:
// 1. TX (virtio 1.2 §5.1.6.2): each chain's device-readable part is the 12-byte header, then
//    the frame. With a backend that carries headers (a TAP with IFF_VNET_HDR) the header goes
//    along in front of the frame once net_header.hpp's checked_tx_header() accepts it (else
//    the chain is completed unsent, tx_bad); otherwise it is dropped (no offload was offered
//    that it could ask for). The frame is written to the backend whole. A chain shorter than a header plus an Ethernet header or longer than
//    a header plus kMaxFrameBytes is completed unsent (used length 0, counted tx_bad). When
//    the backend says EAGAIN, the frame and its chain are kept (in flight) and the worker waits
//    for POLLOUT before it takes the next chain, so frames leave in ring order.
// 2. RX (§5.1.6.3, §5.1.6.4): while the RX ring has a chain, one frame is read from the backend
//    and written after a header with num_buffers = 1: the backend's own header as
//    guest_rx_header() lets it through, or a zeroed one; the used length is 12 + frame.
//    A frame that does not fit the chain is dropped (counted) and the chain is given back
//    (Queue::undo_pop) for the next frame. With no chain available the backend is not polled
//    for input until the guest notifies the RX queue: frames wait in the backend's own queue
//    (the socket buffer, the TAP's queue, which drops when full like any NIC), never in
//    forkvm, and nothing spins.
// 3. One used-buffer interrupt for whatever the round completed, unless the driver set
//    VIRTQ_AVAIL_F_NO_INTERRUPT on every queue that completed something (Queue::interrupt_wanted).
// A round does at most a queue's worth of chains per queue before polling again (with a zero
// timeout), so a stop request is seen promptly however busy the guest is. A queue that breaks
// (malformed ring or chain: Queue's checks) calls needs_reset and the worker parks until it is
// stopped, touching nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "base/event_fd.hpp"
#include "devices/virtio/net/net_backend.hpp"
#include "devices/virtio/net/net_counters.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace forkvm::virtio_net {

/// The worker thread of one activation (file comment).
class NetWorker {
 public:
  /// Starts the thread over `activation` (two ready queues, two eventfds: checked by the
  /// device). `backend` and `counters` must outlive the worker. Throws EventFdError or
  /// std::system_error when the thread cannot start.
  NetWorker(VirtioActivation activation, FrameEndpoint& backend, AtomicCounters& counters);
  /// Stops and joins the thread.
  ~NetWorker();
  NetWorker(const NetWorker&) = delete;
  NetWorker& operator=(const NetWorker&) = delete;

  /// Stops and joins the thread (idempotent): afterwards nothing touches guest memory or the
  /// backend.
  void stop() noexcept;
  /// stop(), then gives the queues back with nothing in flight: a transmit chain whose frame
  /// the backend had not taken yet is returned to the available ring (Queue::undo_pop: it is
  /// always the last chain popped from the TX queue, with no add_used since), so it is sent
  /// again by whichever worker runs next. Receive chains are never held between rounds.
  std::vector<Queue> take_queues();

 private:
  /// What one pass over a queue left behind.
  enum class Progress {
    kIdle,    ///< nothing more to do until a notification or the backend wakes us
    kMore,    ///< the per-round budget ran out with work left: poll without waiting
    kBroken,  ///< the queue broke (needs_reset has been called)
  };

  void run() noexcept;
  /// The main loop; returns when stopped or a queue broke.
  void serve();
  Progress transmit();
  Progress receive();
  /// Completes `head` on `queue` with `len` bytes written; false when the queue broke.
  bool complete(Queue& queue, uint16_t head, uint32_t len);
  /// Sends the pending frame. Returns false when it must wait (EAGAIN on a live backend).
  bool flush_pending_tx();
  /// Waits for a notification, the backend or the stop event; `busy` polls without waiting.
  /// Returns false when stopped.
  bool wait(bool busy);
  Queue& rx() { return activation_.queues[kRxQueueIndex]; }
  Queue& tx() { return activation_.queues[kTxQueueIndex]; }

  static constexpr size_t kRxQueueIndex = 0;
  static constexpr size_t kTxQueueIndex = 1;

  VirtioActivation activation_;
  FrameEndpoint& backend_;
  AtomicCounters& counters_;
  EventFd stop_;
  std::atomic<bool> stopping_{false};
  /// The backend carries a virtio-net header per frame (FrameEndpoint::vnet_header()).
  const bool vnet_;
  /// Bounce buffers: one frame each way with room for a header in front (RX one byte more, to
  /// see a TAP frame that was cut).
  std::vector<uint8_t> tx_buf_;
  std::vector<uint8_t> rx_buf_;
  /// The TX chain whose frame (tx_buf_[0, tx_len_)) waits for the backend.
  std::optional<uint16_t> tx_pending_;
  size_t tx_len_ = 0;
  /// The RX ring was empty: the backend is not polled for input until the guest notifies RX.
  bool rx_blocked_ = false;
  /// The backend reported POLLHUP/POLLERR while input was not being read: left out of the poll
  /// set until the guest notifies RX (else the level-triggered hang-up would wake us forever).
  bool backend_parked_ = false;
  /// The backend can never deliver again (EOF of a sequenced-packet socket, a fatal error):
  /// frames sent to it are dropped and it is not polled.
  bool backend_down_ = false;
  /// The last poll reported POLLOUT; an EAGAIN right after it waits 1 ms instead of polling
  /// POLLOUT again, so a backend that claims room it does not have cannot make us spin.
  bool pollout_woke_ = false;
  bool tx_backoff_ = false;
  /// A chain was completed on RX / TX since the last interrupt.
  bool rx_used_ = false;
  bool tx_used_ = false;
  std::thread thread_;
};

}  // namespace forkvm::virtio_net
