#include "devices/virtio/vsock/vsock_device.hpp"

#include <atomic>
#include <mutex>

#include "devices/virtio/vsock/packet.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"
#include "devices/virtio/vsock/vsock_worker.hpp"

namespace forkvm {

struct VsockDevice::Impl {
  Impl(uint64_t cid, std::string path) : guest_cid(cid), listener(std::move(path)) {}

  const uint64_t guest_cid;
  vsock::UnixListener listener;  // lives as long as the device, across resets
  std::atomic<uint64_t> refused{0};
  std::mutex mu;                 // serializes activate() and reset()
  std::unique_ptr<vsock::VsockWorker> worker;
};

namespace {

uint64_t checked_cid(uint64_t cid) {
  // 0 (hypervisor), 1 (local), 2 (host) are reserved, and so is 0xFFFFFFFF (VMADDR_CID_ANY);
  // the upper 32 bits must be zero (virtio 1.2 §5.10.4).
  if (cid <= vsock::kHostCid || cid >= 0xFFFF'FFFFull) {
    throw ConfigError("vsock guest CID " + std::to_string(cid) +
                      " is reserved (use 3 .. 4294967294)");
  }
  return cid;
}

}  // namespace

VsockDevice::VsockDevice(uint64_t guest_cid, std::string uds_path)
    : impl_(std::make_unique<Impl>(checked_cid(guest_cid), std::move(uds_path))) {}

VsockDevice::~VsockDevice() { reset(); }

uint64_t VsockDevice::guest_cid() const noexcept { return impl_->guest_cid; }

const std::string& VsockDevice::uds_path() const noexcept { return impl_->listener.path(); }

uint64_t VsockDevice::device_features() const noexcept {
  // VIRTIO_VSOCK_F_STREAM is what a driver gets even when it negotiates no type bit (virtio
  // 1.2 §5.10.3.1); offering it explicitly is harmless for drivers that predate it (Linux).
  return virtio_feature::kVersion1 | vsock::feature::kStream;
}

std::vector<uint16_t> VsockDevice::queue_max_sizes() const {
  return {kQueueSize, kQueueSize, kQueueSize};
}

void VsockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const noexcept {
  // Guest-controlled: offset and size. Only bytes inside the 8-byte config are filled.
  constexpr uint64_t kConfigBytes = 8;
  for (size_t i = 0; i < data.size(); ++i) {
    if (offset >= kConfigBytes || i >= kConfigBytes - offset) break;
    data[i] = static_cast<uint8_t>(impl_->guest_cid >> (8 * (offset + i)));
  }
}

void VsockDevice::activate(VirtioActivation activation) {
  std::lock_guard lock(impl_->mu);
  impl_->worker.reset();
  if (activation.queues.size() != 3 || activation.queue_events.size() != 3) {
    throw VsockError("vsock activate: need 3 queues and 3 eventfds, got " +
                     std::to_string(activation.queues.size()) + " and " +
                     std::to_string(activation.queue_events.size()));
  }
  if (activation.memory == nullptr || !activation.interrupt) {
    throw VsockError("vsock activate: missing guest memory or interrupt");
  }
  for (size_t i = 0; i < activation.queues.size(); ++i) {
    if (!activation.queues[i].ready()) {
      throw VsockError("vsock activate: queue " + std::to_string(i) + " is not ready");
    }
  }
  impl_->worker = std::make_unique<vsock::VsockWorker>(std::move(activation), impl_->guest_cid,
                                                       impl_->listener, impl_->refused);
}

void VsockDevice::reset() noexcept {
  std::lock_guard lock(impl_->mu);
  impl_->worker.reset();  // joins the thread, then closes every connection
}

uint64_t VsockDevice::refused_packets() const noexcept {
  return impl_->refused.load(std::memory_order_relaxed);
}

}  // namespace forkvm
