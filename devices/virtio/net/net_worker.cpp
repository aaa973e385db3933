#include "devices/virtio/net/net_worker.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>
#include <string>

#include <seccomp.h>

#include "base/text.hpp"
#include "base/thread_filter.hpp"
#include "base/thread_launcher.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/net/net_header.hpp"
#include "devices/virtio/net/virtio_net.hpp"

namespace forkvm::virtio_net {
namespace {

/// Receive errors that say nothing about the backend's future (a datagram peer that went and
/// may come back, memory pressure): counted, and the backend keeps being read.
bool transient(int err) noexcept {
  return err == ECONNRESET || err == ECONNREFUSED || err == ENOBUFS || err == ENOMEM;
}

/// Reads and clears a non-blocking eventfd; EAGAIN (nothing pending) is fine.
void clear_event(int fd) noexcept {
  uint64_t n = 0;
  [[maybe_unused]] const ssize_t got = ::read(fd, &n, sizeof n);
}

/// The worker's system calls besides the common ones (base/thread_filter.hpp): poll on its
/// eventfds and the backend, and the backend's frames: read/write on a TAP (common),
/// recv/send (recvfrom/sendto in glibc) on a datagram or sequenced-packet socket.
const ThreadFilter& worker_filter() {
  static const ThreadFilter filter(
      "virtio-net", {SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(recvfrom), SCMP_SYS(sendto)});
  return filter;
}

}  // namespace

NetWorker::NetWorker(VirtioActivation activation, FrameEndpoint& backend, AtomicCounters& counters)
    : activation_(std::move(activation)),
      backend_(backend),
      counters_(counters),
      vnet_(backend.vnet_header()),
      tx_buf_(kHeaderBytes + kMaxFrameBytes),
      rx_buf_(kHeaderBytes + kMaxFrameBytes + 1) {
  thread_ = start_thread([this] { run(); });
}

NetWorker::~NetWorker() { stop(); }

void NetWorker::stop() noexcept {
  stopping_.store(true);
  stop_.signal();
  if (thread_.joinable()) thread_.join();
}

std::vector<Queue> NetWorker::take_queues() {
  stop();
  if (tx_pending_) {
    tx().undo_pop();
    tx_pending_.reset();
  }
  return std::move(activation_.queues);
}

void NetWorker::run() noexcept {
  worker_filter().install();
  try {
    serve();
  } catch (const std::exception& e) {  // std::bad_alloc from a chain's segment vector
    activation_.fail(std::string("virtio-net: worker stopped: ") + e.what());
  } catch (...) {
    activation_.fail("virtio-net: worker stopped: an exception that is not a std::exception");
  }
  // Stopped, or broken: park until stop() (touching nothing) and return.
  while (!stopping_.load()) {
    pollfd s{stop_.fd(), POLLIN, 0};
    ::poll(&s, 1, -1);
  }
}

void NetWorker::serve() {
  // Work first: a restored or re-activated device may find chains the guest queued before.
  for (;;) {
    const Progress t = transmit();
    const Progress r = t == Progress::kBroken ? t : receive();
    // One interrupt for the round, unless the driver asked for none on every queue that
    // completed something (it is polling them: Linux's NAPI).
    if ((rx_used_ && rx().interrupt_wanted(*activation_.memory)) ||
        (tx_used_ && tx().interrupt_wanted(*activation_.memory))) {
      activation_.interrupt->signal_used_buffer();
    }
    rx_used_ = tx_used_ = false;
    if (t == Progress::kBroken || r == Progress::kBroken) {
      const Queue& q = tx().broken() ? tx() : rx();
      activation_.needs_reset(std::string("virtio-net: ") + (tx().broken() ? "TX" : "RX") +
                              " queue: " + q.error_reason());
      return;
    }
    if (!wait(t == Progress::kMore || r == Progress::kMore)) return;
  }
}

bool NetWorker::complete(Queue& queue, uint16_t head, uint32_t len) {
  if (!queue.add_used(*activation_.memory, head, len)) return false;
  (&queue == &rx() ? rx_used_ : tx_used_) = true;
  return true;
}

bool NetWorker::flush_pending_tx() {
  const int err = backend_.send(std::span<const uint8_t>(tx_buf_.data(), tx_len_));
  if (err == EAGAIN && !backend_down_) {
    // Wait for POLLOUT; but when POLLOUT was just reported, wait a millisecond instead.
    tx_backoff_ = pollout_woke_;
    return false;
  }
  if (err == 0) {
    AtomicCounters::add(counters_.tx_frames);
    AtomicCounters::add(counters_.tx_bytes, tx_len_ - (vnet_ ? kHeaderBytes : 0));
  } else {
    AtomicCounters::add(counters_.tx_dropped);  // the link is gone: a NIC drops, it does not stall
  }
  return true;
}

NetWorker::Progress NetWorker::transmit() {
  const GuestMemory& mem = *activation_.memory;
  for (uint32_t budget = tx().size(); budget > 0 && !stopping_.load(std::memory_order_relaxed);
       --budget) {
    if (tx_pending_) {
      if (!flush_pending_tx()) return Progress::kIdle;
      const uint16_t head = *tx_pending_;
      tx_pending_.reset();
      // The used length of a transmit chain is 0: the device wrote nothing (§2.7.8).
      if (!complete(tx(), head, 0)) return Progress::kBroken;
      continue;
    }
    std::optional<DescriptorChain> chain = tx().pop_chain(mem);
    if (!chain) return tx().broken() ? Progress::kBroken : Progress::kIdle;
    // Guest-controlled: the readable length (the walk capped it at the queue's request limit,
    // 64 MiB). Writable descriptors in a transmit chain are ignored (nothing is written).
    const uint64_t readable = chain->readable_bytes();
    if (readable < kHeaderBytes + kEthHeaderBytes || readable - kHeaderBytes > kMaxFrameBytes) {
      AtomicCounters::add(counters_.tx_bad);
      if (!complete(tx(), chain->head(), 0)) return Progress::kBroken;
      continue;
    }
    Reader reader(mem, *chain);
    const auto len = static_cast<size_t>(readable - kHeaderBytes);
    const std::optional<Header> header = reader.read_obj<Header>();
    // With a virtio-net header on the backend, the guest's header goes along once checked
    // against what was negotiated (net_header.hpp); without one nothing could be asked of it,
    // and it is dropped.
    const std::optional<Header> checked =
        header && vnet_ ? checked_tx_header(*header, activation_.acked_features, len) : header;
    const size_t head_bytes = vnet_ ? kHeaderBytes : 0;
    if (checked && vnet_) std::memcpy(tx_buf_.data(), &*checked, kHeaderBytes);
    if (!checked || reader.read(std::span<uint8_t>(tx_buf_.data() + head_bytes, len)) != len) {
      AtomicCounters::add(counters_.tx_bad);
      if (!complete(tx(), chain->head(), 0)) return Progress::kBroken;
      continue;
    }
    tx_pending_ = chain->head();
    tx_len_ = head_bytes + len;
  }
  return Progress::kMore;
}

NetWorker::Progress NetWorker::receive() {
  const GuestMemory& mem = *activation_.memory;
  if (rx_blocked_ || backend_down_ || backend_parked_) return Progress::kIdle;
  for (uint32_t budget = rx().size(); budget > 0 && !stopping_.load(std::memory_order_relaxed);
       --budget) {
    std::optional<DescriptorChain> chain = rx().pop_chain(mem);
    if (!chain) {
      if (rx().broken()) return Progress::kBroken;
      rx_blocked_ = true;  // back-pressure: frames wait in the backend until the guest posts
      return Progress::kIdle;
    }
    // Guest-controlled: a receive buffer is device-writable only (§5.1.6.3) and must hold a
    // header and an Ethernet header; anything else is returned unused (Linux drops a used
    // length that short as a runt and re-posts the buffer).
    if (!chain->readable().empty() || chain->writable_bytes() < kHeaderBytes + kEthHeaderBytes) {
      AtomicCounters::add(counters_.rx_bad_buffers);
      if (!complete(rx(), chain->head(), 0)) return Progress::kBroken;
      continue;
    }
    const FrameEndpoint::Received got = backend_.receive(rx_buf_);
    if (got.kind != FrameEndpoint::Received::Kind::kFrame) {
      rx().undo_pop();  // the chain waits for the next frame
      if (got.kind == FrameEndpoint::Received::Kind::kNone) return Progress::kIdle;
      if (got.kind == FrameEndpoint::Received::Kind::kClosed) {
        backend_down_ = true;
        return Progress::kIdle;
      }
      AtomicCounters::add(counters_.backend_errors);
      if (!transient(got.err)) backend_down_ = true;
      continue;
    }
    // The backend's frame: behind its own virtio-net header, or bare.
    const size_t head_bytes = vnet_ ? kHeaderBytes : 0;
    const size_t frame = got.length >= head_bytes ? got.length - head_bytes : 0;
    const uint64_t room = chain->writable_bytes() - kHeaderBytes;
    std::optional<Header> header = Header{};
    if (vnet_ && got.length >= head_bytes) {
      Header from_tap{};
      std::memcpy(&from_tap, rx_buf_.data(), kHeaderBytes);
      header = guest_rx_header(from_tap, activation_.acked_features);
    } else {
      header->num_buffers = 1;  // §5.1.6.4: one chain per frame without VIRTIO_NET_F_MRG_RXBUF
    }
    if (!header || frame < kEthHeaderBytes || frame > kMaxFrameBytes || frame > room) {
      rx().undo_pop();
      AtomicCounters::add(counters_.rx_dropped);
      continue;
    }
    Writer writer(mem, *chain);
    writer.write_obj(*header);
    writer.write(std::span<const uint8_t>(rx_buf_.data() + head_bytes, frame));
    AtomicCounters::add(counters_.rx_frames);
    AtomicCounters::add(counters_.rx_bytes, frame);
    if (!complete(rx(), chain->head(), static_cast<uint32_t>(writer.bytes_written()))) {
      return Progress::kBroken;
    }
  }
  return Progress::kMore;
}

bool NetWorker::wait(bool busy) {
  enum { kStop, kRx, kTx, kBackend };
  const bool backoff = tx_pending_ && (tx_backoff_ || backend_parked_);
  short backend_events = 0;
  if (!rx_blocked_ && !backend_down_ && !backend_parked_) backend_events |= POLLIN;
  if (tx_pending_ && !backoff) backend_events |= POLLOUT;
  pollfd fds[4] = {
      {stop_.fd(), POLLIN, 0},
      {activation_.queue_events[kRxQueueIndex], POLLIN, 0},
      {activation_.queue_events[kTxQueueIndex], POLLIN, 0},
      // A negative fd is skipped by poll(): hang-ups are not reported for it either.
      {backend_events != 0 ? backend_.fd() : -1, backend_events, 0},
  };
  const int timeout = busy ? 0 : backoff ? 1 : -1;
  if (::poll(fds, 4, timeout) < 0) {
    if (errno == EINTR) return true;
    activation_.needs_reset("virtio-net: poll: " + errno_text(errno));
    return false;
  }
  if (fds[kStop].revents != 0 || stopping_.load()) return false;
  tx_backoff_ = false;
  if (fds[kRx].revents != 0) {
    clear_event(activation_.queue_events[kRxQueueIndex]);
    rx_blocked_ = false;  // the guest posted buffers: read the backend again
    backend_parked_ = false;
  }
  if (fds[kTx].revents != 0) clear_event(activation_.queue_events[kTxQueueIndex]);
  const short b = fds[kBackend].revents;
  pollout_woke_ = (b & POLLOUT) != 0;
  if ((b & (POLLHUP | POLLERR)) != 0 && (backend_events & POLLIN) == 0) backend_parked_ = true;
  return true;
}

}  // namespace forkvm::virtio_net
