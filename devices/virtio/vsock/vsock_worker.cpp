#include "devices/virtio/vsock/vsock_worker.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>

#include <seccomp.h>

#include "base/text.hpp"
#include "base/thread_filter.hpp"
#include "base/thread_launcher.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"
#include "devices/virtio/vsock/vsock_tx.hpp"

namespace forkvm::vsock {
namespace {

/// The worker's system calls besides the common ones (base/thread_filter.hpp): its epoll set,
/// the host side's Unix sockets (accept4 on the listener; socket(AF_UNIX) and connect for a
/// guest-initiated connection to "<uds_path>_<port>"; recv/send are recvfrom/sendto in glibc;
/// shutdown(SHUT_WR) for a guest's half-close; a zero-timeout poll for a hang-up,
/// unix_socket.cpp), and eventfd reads/writes (common).
const ThreadFilter& worker_filter() {
  static const ThreadFilter filter(
      "vsock",
      {SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(accept4),
       SCMP_SYS(connect), SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(shutdown),
       SCMP_SYS(poll), SCMP_SYS(ppoll)},
      {}, {.socket_families = {AF_UNIX}});
  return filter;
}

}  // namespace

VsockWorker::VsockWorker(VirtioActivation activation, uint64_t guest_cid, VsockSession& session,
                         std::atomic<uint64_t>& refused, ResetGate gate)
    : act_(std::move(activation)),
      guest_cid_(guest_cid),
      refused_(refused),
      epoll_(session.epoll),
      muxer_(session.muxer),
      wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      gate_(gate),
      tx_payload_(kMaxPayload) {
  if (!wake_) throw VsockError(std::string("vsock: eventfd: ") + errno_text(errno));
  registered_ = true;  // from here a throw leaves through unregister() below
  try {
    for (uint64_t i = 0; i < act_.queue_events.size(); ++i) {
      if (!epoll_.add(act_.queue_events[i], EPOLLIN, i)) {
        throw VsockError("vsock: epoll add queue " + std::to_string(i) + " eventfd: " +
                         errno_text(errno));
      }
    }
    if (!epoll_.add(wake_.get(), EPOLLIN, kWakeToken)) {
      throw VsockError(std::string("vsock: epoll add wake eventfd: ") + errno_text(errno));
    }
    try {
      thread_ = start_thread([this] { run(); });
    } catch (const std::system_error& e) {
      throw VsockError(std::string("vsock: cannot start the worker thread: ") + e.what());
    }
  } catch (...) {
    unregister();  // the session outlives this failed worker: leave its epoll set clean
    throw;
  }
}

VsockWorker::~VsockWorker() {
  stop();
  unregister();
  // The queues go back with act_; the connections stay in the session.
}

void VsockWorker::unregister() noexcept {
  if (!registered_) return;
  registered_ = false;
  for (const int fd : act_.queue_events) epoll_.remove(fd);  // "not registered" is ignored
  epoll_.remove(wake_.get());
}

void VsockWorker::stop() noexcept {
  // Release: the worker's acquire load of stop_ after the wake sees it.
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

VsockWorker::Finished VsockWorker::finish() noexcept {
  stop();  // joined: from here on this thread owns the queues
  unregister();  // before act_ (and with it the queue eventfds) moves out
  if (held_rx_) {
    // The buffer was the last one popped from RX (process_rx only pops when it has nothing
    // held), so giving it back is exact: the driver still sees it as available.
    act_.queues[VsockDevice::kRxQueue].undo_pop();
    held_rx_.reset();
  }
  Finished f;
  f.next_local_port = muxer_.next_local_port();
  f.gate = gate_;
  f.activation = std::move(act_);
  return f;
}

bool VsockWorker::rx_allowed() noexcept {
  if (!gate_.armed) return true;
  const auto idx = act_.queues[VsockDevice::kEventQueue].driver_avail_idx(*act_.memory);
  // An unreadable event queue cannot acknowledge anything: do not block RX forever on it.
  // Wrapping distance: avail->idx is a free-running 16-bit counter.
  if (!idx || static_cast<uint16_t>(*idx - gate_.event_avail) >= gate_.count) gate_.armed = false;
  return !gate_.armed;
}

void VsockWorker::drain_eventfd(int fd) noexcept {
  uint64_t value = 0;
  // Non-blocking eventfds (the transport's and ours): one read clears the counter.
  [[maybe_unused]] const ssize_t n = ::read(fd, &value, sizeof(value));
}

int VsockWorker::timeout_ms(Clock::time_point now) const noexcept {
  // Every source of work is a descriptor in the epoll set (queue notifications, host sockets,
  // the listener, the wake eventfd) or a muxer deadline, so with no deadline the worker sleeps
  // until an event: an idle VM's worker costs no wake-ups.
  const auto deadline = muxer_.next_deadline();
  if (!deadline) return -1;
  if (*deadline <= now) return 0;
  const auto ms =
      std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
  // epoll_wait takes an int: a deadline further off than ~24 days wakes early, harmlessly.
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

void VsockWorker::run() noexcept {
  worker_filter().install();
  try {
    // The driver may have posted RX buffers and TX packets before DRIVER_OK's activation, with
    // their notifications already consumed: look at both rings once before waiting.
    Clock::time_point now = Clock::now();
    process_tx(now);
    process_rx(now);
    muxer_.sync(now);
    std::array<epoll_event, 64> events{};
    while (!stop_.load(std::memory_order_acquire) && !failed_) {
      const int n = epoll_.wait(events, timeout_ms(now));
      now = Clock::now();
      for (int i = 0; i < n; ++i) {
        const uint64_t token = events[static_cast<size_t>(i)].data.u64;
        if (token < act_.queue_events.size()) {
          // A notification only says "look at the ring", which happens below for every queue
          // anyway. The event queue's buffers are kept for TRANSPORT_RESET (snapshots).
          drain_eventfd(act_.queue_events[token]);
        } else if (token == kWakeToken) {
          drain_eventfd(wake_.get());
        } else if (VsockMuxer::owns(token)) {
          muxer_.on_event(token, events[static_cast<size_t>(i)].events, now);
        }
      }
      if (stop_.load(std::memory_order_acquire)) break;
      muxer_.on_timer(now);
      // TX first: guest packets free credit and queue answers that RX then delivers. If TX
      // paused on backpressure and RX made room, take another round.
      process_tx(now);
      if (process_rx(now) && tx_deferred_ && !muxer_.backlogged()) {
        process_tx(now);
        process_rx(now);
      }
      muxer_.sync(now);
    }
  } catch (const std::exception& e) {
    // Only std::bad_alloc should get here (queue chains, connection buffers): the VM stops.
    failed_ = true;
    act_.fail(std::string("vsock: worker stopped: ") + e.what());
  } catch (...) {
    failed_ = true;
    act_.fail("vsock: worker stopped: an exception that is not a std::exception");
  }
}

void VsockWorker::fail(const std::string& reason) noexcept {
  if (failed_) return;
  failed_ = true;  // run() stops; the device stays silent until the driver resets it
  if (act_.needs_reset) act_.needs_reset("vsock: " + reason);
}

void VsockWorker::process_tx(Clock::time_point now) {
  if (failed_) return;
  Queue& q = act_.queues[VsockDevice::kTxQueue];
  bool used = false;
  tx_deferred_ = false;
  for (;;) {
    if (muxer_.backlogged()) {
      tx_deferred_ = true;  // leave the rest in the ring until RX drains the RSTs
      break;
    }
    auto chain = q.pop_chain(*act_.memory);
    if (!chain) break;
    if (!handle_tx_chain(*act_.memory, *chain, guest_cid_, muxer_, tx_payload_.span(), now)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
    }
    // The payload was copied out, so the buffer goes back at once; TX chains carry nothing
    // for the driver, hence len 0 (virtio 1.2 §5.10.6.1).
    if (!q.add_used(*act_.memory, chain->head(), 0)) break;
    used = true;
  }
  // Signal after add_used published used->idx (release inside add_used).
  if (used) act_.interrupt->signal_used_buffer();
  if (q.broken()) fail("tx queue: " + q.error_reason());
}

bool VsockWorker::process_rx(Clock::time_point now) {
  if (failed_) return false;
  // Until the guest has handled TRANSPORT_RESET nothing is delivered (the gate's comment says
  // why). The event queue's notification wakes the loop, which comes back here.
  if (!rx_allowed()) return false;
  Queue& q = act_.queues[VsockDevice::kRxQueue];
  const GuestMemory& mem = *act_.memory;
  bool used = false;
  while (muxer_.has_rx_work()) {
    std::optional<DescriptorChain> chain;
    if (held_rx_) {
      chain = std::move(held_rx_);
      held_rx_.reset();
    } else {
      chain = q.pop_chain(mem);
    }
    if (!chain) break;  // no buffers: the RX notification brings us back
    Writer writer(mem, *chain);
    if (writer.available() < kHeaderBytes) {
      // Guest-controlled: a buffer too small for any packet. Return it empty and go on.
      refused_.fetch_add(1, std::memory_order_relaxed);
      if (!q.add_used(mem, chain->head(), 0)) break;
      used = true;
      continue;
    }
    const size_t room = std::min<size_t>(writer.available() - kHeaderBytes, kMaxPayload);
    auto pkt = muxer_.next_rx(room, now);
    if (!pkt) {
      if (room == 0 && muxer_.has_rx_work()) {
        // Only data is waiting and this buffer holds a bare header: give it back unused.
        if (!q.add_used(mem, chain->head(), 0)) break;
        used = true;
        continue;
      }
      held_rx_ = std::move(chain);  // readiness was stale; keep the buffer for next time
      break;
    }
    writer.write(encode(pkt->header));
    writer.write(pkt->payload);
    if (!q.add_used(mem, chain->head(), static_cast<uint32_t>(writer.bytes_written()))) break;
    used = true;
  }
  // Signal only after add_used published used->idx (release inside add_used).
  if (used) act_.interrupt->signal_used_buffer();
  if (q.broken()) fail("rx queue: " + q.error_reason());
  return used;
}

}  // namespace forkvm::vsock
