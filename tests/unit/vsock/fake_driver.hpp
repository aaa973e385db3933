// Test helper: plays the guest's virtio-vsock driver against a real VsockDevice. Lays out the
// rx/tx/event split virtqueues in an anonymous guest memory, posts RX buffers, sends TX packets,
// reads used rings, and records interrupts and needs_reset. Every wait has a deadline.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.hpp"
#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/queue.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm::vsock::testing {

/// Counts interrupts.
class RecordingTrigger : public InterruptTrigger {
 public:
  void trigger() noexcept override { count.fetch_add(1); }
  std::atomic<int> count{0};
};

/// A packet the driver took from the RX used ring.
struct Received {
  Header header;
  std::vector<uint8_t> payload;
  uint32_t used_len = 0;
};

class FakeDriver {
 public:
  static constexpr uint64_t kMemBytes = 16ull << 20;
  static constexpr uint16_t kSize = 64;
  static constexpr uint32_t kRxBufBytes = kHeaderBytes + 4096;
  static constexpr uint64_t kRxData = 0x200000;  // kSize buffers of 0x2000
  static constexpr uint64_t kTxData = 0x400000;  // kSize slots of 0x20000 (hdr + payload)
  static constexpr uint64_t kEvData = 0x300000;  // kSize event buffers of 0x100
  static constexpr uint64_t kGuestCid = 3;

  FakeDriver() : mem_(GuestMemory::create_anonymous(kMemBytes)) {
    for (int q = 0; q < 3; ++q) {
      events_[q].reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    }
  }

  const GuestMemory& mem() const { return mem_; }
  int eventfd(size_t q) const { return events_[q].get(); }

  /// An activation with the three queues, real eventfds, a recording interrupt.
  VirtioActivation activation() {
    VirtioActivation a;
    a.memory = &mem_;
    a.acked_features = virtio_feature::kVersion1;
    for (uint16_t q = 0; q < 3; ++q) {
      Queue queue(256);
      queue.set_size(kSize);
      queue.set_desc_table(desc(q));
      queue.set_avail_ring(avail(q));
      queue.set_used_ring(used(q));
      if (!queue.validate(mem_)) throw std::runtime_error("queue layout invalid");
      a.queues.push_back(std::move(queue));
      a.queue_events.push_back(events_[q].get());
    }
    a.interrupt = std::make_shared<VirtioInterrupt>(trigger_);
    a.needs_reset = [this](const std::string& reason) {
      std::lock_guard lock(mu_);
      reset_reason_ = reason;
      needs_reset_.store(true);
    };
    return a;
  }

  int interrupts() const { return trigger_->count.load(); }
  /// The interrupt recorder, for a transport built over this driver's memory.
  std::shared_ptr<InterruptTrigger> trigger() const { return trigger_; }
  /// Sends later notifications to these eventfds (a transport's queue_event(q)) instead.
  void redirect_notifications(int rx, int tx, int ev) {
    notify_fd_[0] = rx;
    notify_fd_[1] = tx;
    notify_fd_[2] = ev;
  }

  // ---- ring layout (for programming a transport's queue registers) ----
  static uint64_t desc(uint16_t q) { return 0x10000ull * (q + 1); }
  static uint64_t avail(uint16_t q) { return desc(q) + 0x1000; }
  static uint64_t used(uint16_t q) { return desc(q) + 0x2000; }

  // ---- event queue ----

  /// Posts `n` event buffers (8 writable bytes each; struct virtio_vsock_event is 4) and
  /// notifies, as Linux's driver does at probe time.
  void post_event(int n) {
    for (int i = 0; i < n; ++i) {
      const uint16_t id = static_cast<uint16_t>(ev_next_desc_++ % kSize);
      write_desc(2, id, kEvData + 0x100ull * id, 8, kVirtqDescFWrite, 0);
      publish(2, id);
    }
    notify(2);
  }
  /// Waits for the next used event buffer; returns {event id, used len} and remembers the
  /// buffer for ack_event().
  std::optional<std::pair<uint32_t, uint32_t>> recv_event(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (!wait_used(2, ev_seen_, timeout)) return std::nullopt;
    const uint64_t slot = used(2) + 4 + 8ull * (ev_seen_ % kSize);
    const auto id = mem_.read_obj<uint32_t>(slot);
    const auto len = mem_.read_obj<uint32_t>(slot + 4);
    ++ev_seen_;
    last_event_desc_ = static_cast<uint16_t>(id);
    return std::pair<uint32_t, uint32_t>{mem_.read_obj<uint32_t>(kEvData + 0x100ull * id), len};
  }
  /// The guest handled the event: re-posts its buffer and kicks the event queue (Linux
  /// virtio_transport_event_work: event_handle, event_fill_one, virtqueue_kick).
  void ack_event() {
    publish(2, last_event_desc_);
    notify(2);
  }
  bool needs_reset() const { return needs_reset_.load(); }
  std::string reset_reason() {
    std::lock_guard lock(mu_);
    return reset_reason_;
  }

  // ---- RX ----

  /// Posts `n` more RX buffers (one writable descriptor of kRxBufBytes each) and notifies.
  void post_rx(int n) {
    for (int i = 0; i < n; ++i) {
      const uint16_t id = static_cast<uint16_t>(rx_next_desc_++ % kSize);
      write_desc(0, id, kRxData + 0x2000ull * id, kRxBufBytes, kVirtqDescFWrite, 0);
      publish(0, id);
    }
    notify(0);
  }

  /// Waits up to `timeout` for the next used RX buffer, decodes it, and (when `repost`) gives
  /// the same buffer back.
  std::optional<Received> recv(std::chrono::milliseconds timeout = std::chrono::seconds(5),
                               bool repost = true) {
    if (!wait_used(0, rx_seen_, timeout)) return std::nullopt;
    const uint64_t slot = used(0) + 4 + 8ull * (rx_seen_ % kSize);
    const auto id = mem_.read_obj<uint32_t>(slot);
    const auto len = mem_.read_obj<uint32_t>(slot + 4);
    ++rx_seen_;
    Received r;
    r.used_len = len;
    const uint64_t buf = kRxData + 0x2000ull * id;
    if (len >= kHeaderBytes) {
      HeaderBytes raw{};
      mem_.read(buf, raw);
      r.header = decode(raw);
      r.payload.resize(len - kHeaderBytes);
      mem_.read(buf + kHeaderBytes, r.payload);
    }
    if (repost) {
      publish(0, static_cast<uint16_t>(id));
      notify(0);
    }
    return r;
  }

  // ---- TX ----

  /// A header from the guest (src = guest CID) to the host.
  static Header from_guest(uint16_t operation, uint32_t src_port, uint32_t dst_port,
                           uint32_t buf_alloc = 65536, uint32_t fwd_cnt = 0) {
    Header h;
    h.src_cid = kGuestCid;
    h.dst_cid = kHostCid;
    h.src_port = src_port;
    h.dst_port = dst_port;
    h.type = type::kStream;
    h.op = operation;
    h.buf_alloc = buf_alloc;
    h.fwd_cnt = fwd_cnt;
    return h;
  }

  /// Sends one packet as a header descriptor plus (when there is a payload) a payload
  /// descriptor, then waits until the device returned it. `h.len` is set from the payload unless
  /// `len_override` is given. Returns false when the device did not consume it in time.
  bool send(Header h, std::span<const uint8_t> payload = {},
            std::optional<uint32_t> len_override = std::nullopt) {
    h.len = len_override.value_or(static_cast<uint32_t>(payload.size()));
    const HeaderBytes raw = encode(h);
    return send_raw(raw, payload);
  }

  /// Sends arbitrary header bytes (possibly short) and payload bytes.
  bool send_raw(std::span<const uint8_t> header_bytes, std::span<const uint8_t> payload) {
    const uint16_t slot = static_cast<uint16_t>(tx_sent_ % (kSize / 2));
    const uint16_t d0 = static_cast<uint16_t>(2 * slot);
    const uint64_t base = kTxData + 0x20000ull * slot;
    mem_.write(base, header_bytes);
    if (payload.empty()) {
      write_desc(1, d0, base, static_cast<uint32_t>(header_bytes.size()), 0, 0);
    } else {
      mem_.write(base + 0x100, payload);
      write_desc(1, d0, base, static_cast<uint32_t>(header_bytes.size()), kVirtqDescFNext,
                 static_cast<uint16_t>(d0 + 1));
      write_desc(1, static_cast<uint16_t>(d0 + 1), base + 0x100,
                 static_cast<uint32_t>(payload.size()), 0, 0);
    }
    publish(1, d0);
    ++tx_sent_;
    notify(1);
    return wait_used(1, static_cast<uint16_t>(tx_sent_ - 1), std::chrono::seconds(5));
  }

  /// Puts a packet on the TX ring and notifies without waiting for the device (it may not be
  /// running: a guest that queued a packet while the VM was being snapshotted).
  void send_nowait(Header h) {
    h.len = 0;
    const HeaderBytes raw = encode(h);
    const uint16_t slot = static_cast<uint16_t>(tx_sent_ % (kSize / 2));
    const uint16_t d0 = static_cast<uint16_t>(2 * slot);
    const uint64_t base = kTxData + 0x20000ull * slot;
    mem_.write(base, raw);
    write_desc(1, d0, base, static_cast<uint32_t>(raw.size()), 0, 0);
    publish(1, d0);
    ++tx_sent_;
    notify(1);
  }
  /// Waits until the device has returned every TX packet sent so far.
  bool wait_tx_consumed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return wait_used(1, static_cast<uint16_t>(tx_sent_ - 1), timeout);
  }

  /// Puts a head index >= the queue size on the TX available ring (a malformed queue).
  void send_bad_head() {
    publish(1, static_cast<uint16_t>(kSize + 5));
    notify(1);
  }

 private:
  void write_desc(uint16_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next) {
    mem_.write_obj(desc(q) + 16ull * i, VirtqDesc{addr, len, flags, next});
  }
  void publish(uint16_t q, uint16_t head) {
    mem_.write_obj<uint16_t>(avail(q) + 4 + 2ull * (avail_idx_[q] % kSize), head);
    ++avail_idx_[q];
    // Release: the ring entry and the descriptors are visible before the new idx.
    mem_.store_u16(avail(q) + 2, avail_idx_[q], std::memory_order_release);
  }
  void notify(uint16_t q) {
    const uint64_t one = 1;
    const int fd = notify_fd_[q] >= 0 ? notify_fd_[q] : events_[q].get();
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof(one));
  }
  // Waits until used->idx of queue q moved past `seen`.
  bool wait_used(uint16_t q, uint16_t seen, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      // Acquire: idx before the element it covers.
      const auto idx = mem_.load_u16(used(q) + 2, std::memory_order_acquire).value();
      if (static_cast<uint16_t>(idx - seen) != 0) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  GuestMemory mem_;
  Fd events_[3];
  std::shared_ptr<RecordingTrigger> trigger_ = std::make_shared<RecordingTrigger>();
  std::atomic<bool> needs_reset_{false};
  std::mutex mu_;
  std::string reset_reason_;
  uint16_t avail_idx_[3] = {0, 0, 0};
  uint32_t rx_next_desc_ = 0;
  uint16_t rx_seen_ = 0;
  uint32_t tx_sent_ = 0;
  uint32_t ev_next_desc_ = 0;
  uint16_t ev_seen_ = 0;
  uint16_t last_event_desc_ = 0;
  int notify_fd_[3] = {-1, -1, -1};
};

}  // namespace forkvm::vsock::testing
