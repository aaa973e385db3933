// Test helper: a virtio-net driver played against the real VirtioMmioTransport and NetDevice,
// over a 16 MiB fake guest memory, the way Linux's virtio_net drives them (virtio 1.2 §3.1.1,
// §5.1.6): features, two queues, DRIVER_OK, receive buffers posted on queue 0 and frames sent
// on queue 1 behind a 12-byte header, each kick a QueueNotify write. The backend is one end of
// an AF_UNIX SOCK_SEQPACKET socketpair; the test holds the other ("the wire").
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/fd.hpp"
#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/virtio_net.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm::testing {

/// Counts interrupts.
struct CountingTrigger : InterruptTrigger {
  std::atomic<int> count{0};
  void trigger() noexcept override { ++count; }
};

/// A socketpair(AF_UNIX, SOCK_SEQPACKET): [0] goes to the device, [1] is the test's wire.
struct FramePair {
  Fd device, wire;
  FramePair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::runtime_error("socketpair failed");
    }
    device.reset(sv[0]);
    wire.reset(sv[1]);
  }
};

/// One split queue's driver side.
struct DriverQueue {
  uint64_t desc = 0, avail = 0, used = 0;
  uint16_t size = 16;
  uint16_t avail_idx = 0;
  uint16_t next_desc = 0;
};

class NetDriver {
 public:
  static constexpr uint64_t kMemBytes = 16ull << 20;
  static constexpr uint16_t kSize = 16;
  /// Data buffers: RX at kRxData + 0x20000 * i, TX at kTxData + 0x20000 * i (128 KiB apart).
  static constexpr uint64_t kRxData = 0x100000;
  static constexpr uint64_t kTxData = 0x600000;
  static constexpr uint64_t kFeatures =
      virtio_feature::kVersion1 | virtio_net::feature::kMac | virtio_net::feature::kStatus;

  /// A device over a fresh socketpair with `mac`, behind a transport; not yet started.
  explicit NetDriver(const NetDevice::Mac& mac = {0x02, 0, 0, 0, 0, 0x01})
      : mem_(GuestMemory::create_anonymous(kMemBytes)) {
    device_ = std::make_shared<NetDevice>(FrameEndpoint::adopt(pair_.device.get()), mac);
    transport_ = std::make_unique<VirtioMmioTransport>(device_, mem_, trigger_);
    queues_[0] = DriverQueue{0x10000, 0x14000, 0x18000, kSize, 0, 0};
    queues_[1] = DriverQueue{0x20000, 0x24000, 0x28000, kSize, 0, 0};
  }
  ~NetDriver() { transport_.reset(); }

  const GuestMemory& mem() const { return mem_; }
  NetDevice& device() { return *device_; }
  VirtioMmioTransport& transport() { return *transport_; }
  int wire() const { return pair_.wire.get(); }
  CountingTrigger& trigger() { return *trigger_; }

  uint32_t r(uint64_t offset) {
    std::array<uint8_t, 4> b{};
    transport_->read(offset, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  void w(uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> b;
    std::memcpy(b.data(), &value, 4);
    transport_->write(offset, b);
  }

  /// The driver's handshake up to DRIVER_OK (§3.1.1). Returns the Status read back.
  uint32_t start(uint64_t features = kFeatures) {
    namespace reg = virtio_mmio;
    namespace st = virtio_status;
    w(reg::kStatus, st::kAcknowledge);
    w(reg::kStatus, st::kAcknowledge | st::kDriver);
    w(reg::kDriverFeaturesSel, 0);
    w(reg::kDriverFeatures, static_cast<uint32_t>(features));
    w(reg::kDriverFeaturesSel, 1);
    w(reg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
    for (uint32_t i = 0; i < 2; ++i) {
      const DriverQueue& q = queues_[i];
      w(reg::kQueueSel, i);
      w(reg::kQueueNum, q.size);
      w(reg::kQueueDescLow, static_cast<uint32_t>(q.desc));
      w(reg::kQueueDescHigh, 0);
      w(reg::kQueueDriverLow, static_cast<uint32_t>(q.avail));
      w(reg::kQueueDriverHigh, 0);
      w(reg::kQueueDeviceLow, static_cast<uint32_t>(q.used));
      w(reg::kQueueDeviceHigh, 0);
      w(reg::kQueueReady, 1);
    }
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
    return r(reg::kStatus);
  }

  /// Writes descriptor `i` of queue `q`.
  void set_desc(uint16_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    mem_.write_obj(queues_[q].desc + 16ull * i, VirtqDesc{addr, len, flags, next});
  }
  /// Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT in queue `q`'s avail->flags.
  void set_no_interrupt(uint16_t q, bool on) {
    mem_.store_u16(queues_[q].avail, on ? 1 : 0, std::memory_order_relaxed);
  }

  /// Puts `head` in queue `q`'s available ring and kicks (QueueNotify).
  void publish(uint16_t q, uint16_t head, bool kick = true) {
    DriverQueue& dq = queues_[q];
    mem_.write_obj<uint16_t>(dq.avail + 4 + 2ull * (dq.avail_idx % dq.size), head);
    ++dq.avail_idx;
    // Release: the ring entry and the descriptors are visible before the new idx.
    mem_.store_u16(dq.avail + 2, dq.avail_idx, std::memory_order_release);
    if (kick) w(virtio_mmio::kQueueNotify, q);
  }
  /// Lays out buffers {gpa, len, writable} as one chain on fresh descriptors of queue `q`;
  /// returns the head.
  struct Buf {
    uint64_t gpa;
    uint32_t len;
    bool writable;
  };
  uint16_t chain(uint16_t q, const std::vector<Buf>& bufs) {
    DriverQueue& dq = queues_[q];
    const uint16_t head = dq.next_desc;
    for (size_t k = 0; k < bufs.size(); ++k) {
      const auto i = static_cast<uint16_t>((head + k) % dq.size);
      const bool last = k + 1 == bufs.size();
      set_desc(q, i, bufs[k].gpa, bufs[k].len,
               static_cast<uint16_t>((last ? 0 : kVirtqDescFNext) | (bufs[k].writable ? kVirtqDescFWrite : 0)),
               static_cast<uint16_t>(last ? 0 : (i + 1) % dq.size));
    }
    dq.next_desc = static_cast<uint16_t>((head + bufs.size()) % dq.size);
    return head;
  }

  /// Posts one receive buffer of `len` bytes at kRxData + 0x20000 * slot (one descriptor, as
  /// Linux's add_recvbuf_small with VERSION_1). Returns its head.
  uint16_t post_rx(uint32_t len, uint16_t slot, bool kick = true) {
    const uint16_t head = chain(virtio_net::kRxQueue, {{rx_buffer(slot), len, true}});
    publish(virtio_net::kRxQueue, head, kick);
    return head;
  }
  static uint64_t rx_buffer(uint16_t slot) { return kRxData + 0x20000ull * slot; }

  /// Sends `frame` behind a zeroed header: header and frame in one descriptor (`split` false)
  /// or two (Linux uses either). Returns the head.
  uint16_t send(const std::vector<uint8_t>& frame, uint16_t slot = 0, bool split = false) {
    const uint64_t at = kTxData + 0x20000ull * slot;
    mem_.write_obj(at, virtio_net::Header{});
    mem_.write(at + virtio_net::kHeaderBytes, frame);
    const auto total = static_cast<uint32_t>(virtio_net::kHeaderBytes + frame.size());
    const uint16_t head =
        split ? chain(virtio_net::kTxQueue, {{at, static_cast<uint32_t>(virtio_net::kHeaderBytes), false},
                                      {at + virtio_net::kHeaderBytes, static_cast<uint32_t>(frame.size()), false}})
              : chain(virtio_net::kTxQueue, {{at, total, false}});
    publish(virtio_net::kTxQueue, head);
    return head;
  }

  /// used->idx of queue `q`.
  // Acquire: the used elements and buffers the idx covers are visible after it.
  uint16_t used_idx(uint16_t q) const {
    return mem_.load_u16(queues_[q].used + 2, std::memory_order_acquire).value();
  }
  /// Used element `slot` of queue `q` as {id, len}.
  std::pair<uint32_t, uint32_t> used_elem(uint16_t q, uint16_t slot) const {
    const uint64_t at = queues_[q].used + 4 + 8ull * (slot % queues_[q].size);
    return {mem_.read_obj<uint32_t>(at), mem_.read_obj<uint32_t>(at + 4)};
  }
  /// Waits (up to 5 s) until queue `q`'s used->idx reaches `idx`.
  bool wait_used(uint16_t q, uint16_t idx) const {
    using namespace std::chrono_literals;
    for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
      if (used_idx(q) == idx) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  /// Bytes of guest memory.
  std::vector<uint8_t> read(uint64_t gpa, size_t len) const {
    std::vector<uint8_t> v(len);
    mem_.read(gpa, v);
    return v;
  }

 private:
  FramePair pair_;
  GuestMemory mem_;
  std::shared_ptr<CountingTrigger> trigger_ = std::make_shared<CountingTrigger>();
  std::shared_ptr<NetDevice> device_;
  std::unique_ptr<VirtioMmioTransport> transport_;
  std::array<DriverQueue, 2> queues_{};
};

/// An Ethernet frame of `len` bytes: broadcast destination, a source, EtherType 0x88b5 (local
/// experimental), then bytes that depend on `seed`.
inline std::vector<uint8_t> frame(size_t len, uint8_t seed = 1) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  if (len >= 14) {
    std::memset(f.data(), 0xff, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
  }
  return f;
}

}  // namespace forkvm::testing
