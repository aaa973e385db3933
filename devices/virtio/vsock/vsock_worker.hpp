// The vsock device's worker: one thread per activation that owns the three queues and a
// VsockMuxer, and waits on one epoll set for queue notifications, host sockets, deadlines and
// its own stop signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock/epoll_set.hpp"
#include "devices/virtio/vsock/muxer.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "vmm/kvm/fd.hpp"

namespace forkvm::vsock {

/// Serves one activation. Construction starts the thread; destruction stops and joins it, then
/// closes every connection: when the destructor returns nothing touches guest memory.
class VsockWorker {
 public:
  /// Takes `activation` (three ready queues, their eventfds, memory, interrupt, needs_reset),
  /// which the caller has checked. `refused` counts dropped or refused guest packets. Throws
  /// VsockError when the epoll set, the wake eventfd or the thread cannot be created.
  VsockWorker(VirtioActivation activation, uint64_t guest_cid, const UnixListener& listener,
              std::atomic<uint64_t>& refused);
  ~VsockWorker();
  VsockWorker(const VsockWorker&) = delete;
  VsockWorker& operator=(const VsockWorker&) = delete;

 private:
  // epoll tokens below VsockMuxer::kListenerToken: the queue eventfds are 0..2, then wake.
  static constexpr uint64_t kWakeToken = 3;

  void run() noexcept;
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
  bool failed_ = false;              // a queue broke: needs_reset was reported
  bool tx_deferred_ = false;         // TX stopped on backpressure with chains left
  std::optional<DescriptorChain> held_rx_;  // an RX buffer popped with nothing to put in it
  std::vector<uint8_t> tx_payload_;
  std::thread thread_;
};

}  // namespace forkvm::vsock
