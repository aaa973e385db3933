// VirtioDevice: what a virtio device type (vsock, blk, net) implements, and what the
// virtio-mmio transport (mmio_transport.hpp) hands it when the driver sets DRIVER_OK.
//
// Split of work (Firecracker's VirtioDevice/MmioTransport shape):
// - the transport owns the register file, feature negotiation, the status state machine, the
//   queue configuration, one notification eventfd per queue and the interrupt status;
// - the device owns its config space and, once activated, its queues and its worker thread.
// Queue notifications always reach the device as a readable eventfd: KVM signals it directly
// (KVM_IOEVENTFD on QueueNotify with the queue index as datamatch), and the transport signals
// the same eventfd when a QueueNotify write reaches it as an MMIO exit (tests, or no ioeventfd).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

class GuestMemory;

/// Feature bits common to all devices (virtio 1.2 §6).
namespace virtio_feature {
inline constexpr uint64_t kVersion1 = 1ull << 32;  ///< VIRTIO_F_VERSION_1: modern device
}  // namespace virtio_feature

/// Device IDs (virtio 1.2 §5).
namespace virtio_id {
inline constexpr uint32_t kNet = 1;
inline constexpr uint32_t kBlock = 2;
inline constexpr uint32_t kVsock = 19;
}  // namespace virtio_id

/// How an interrupt reaches the guest: an irqfd eventfd in the VMM, a recorder in tests.
class InterruptTrigger {
 public:
  virtual ~InterruptTrigger() = default;
  /// Raises the device's interrupt once (edge). Thread-safe, never throws.
  virtual void trigger() noexcept = 0;
};

/// The InterruptStatus register (virtio 1.2 §4.2.2, offset 0x60) and the line behind it.
/// Devices set bits and trigger; the driver clears bits through InterruptACK (0x64).
class VirtioInterrupt {
 public:
  static constexpr uint32_t kUsedBuffer = 1u << 0;    ///< a queue has new used buffers
  static constexpr uint32_t kConfigChange = 1u << 1;  ///< config space or status changed

  explicit VirtioInterrupt(std::shared_ptr<InterruptTrigger> trigger)
      : trigger_(std::move(trigger)) {}

  /// Sets kUsedBuffer and raises the interrupt. Call after add_used() published used->idx.
  void signal_used_buffer() noexcept { signal(kUsedBuffer); }
  /// Sets kConfigChange and raises the interrupt (e.g. after DEVICE_NEEDS_RESET).
  void signal_config_change() noexcept { signal(kConfigChange); }
  /// Current InterruptStatus.
  uint32_t status() const noexcept { return status_.load(std::memory_order_acquire); }
  /// InterruptACK: clears `bits`.
  void ack(uint32_t bits) noexcept { status_.fetch_and(~bits, std::memory_order_acq_rel); }
  /// Clears everything (device reset).
  void clear() noexcept { status_.store(0, std::memory_order_release); }
  /// Snapshot restore: sets InterruptStatus to `bits` without raising the line (retrigger()
  /// does that once the device runs again).
  void restore(uint32_t bits) noexcept { status_.store(bits, std::memory_order_release); }
  /// Raises the line again when a status bit is pending: after a restore the edge the guest
  /// may not have taken before the snapshot is delivered anew (a spurious one is harmless: the
  /// driver reads InterruptStatus and finds what it finds).
  void retrigger() noexcept {
    if (status() != 0 && trigger_) trigger_->trigger();
  }

 private:
  void signal(uint32_t bit) noexcept {
    // Release: the used ring writes must be visible before the driver sees the status bit.
    status_.fetch_or(bit, std::memory_order_acq_rel);
    if (trigger_) trigger_->trigger();
  }

  std::atomic<uint32_t> status_{0};
  std::shared_ptr<InterruptTrigger> trigger_;
};

/// Everything a device receives at activation (DRIVER_OK with every enabled queue valid).
struct VirtioActivation {
  /// Guest RAM; outlives the device.
  const GuestMemory* memory = nullptr;
  /// Features the driver accepted (already masked to device_features()).
  uint64_t acked_features = 0;
  /// The device's queues, validated and ready, in queue-index order. Owned by the device
  /// from now on; the transport keeps only their configuration. The vector always has one
  /// entry per queue: a queue the driver did not enable (QueueReady 0, e.g. a virtio-net
  /// control queue that was not negotiated) is present but not ready(), so it pops nothing.
  std::vector<Queue> queues;
  /// One eventfd per queue, readable when the driver notified that queue. Owned by the
  /// transport (valid until the transport is destroyed); the device reads them to clear them.
  /// They are non-blocking (EFD_NONBLOCK), so a read with nothing pending fails with EAGAIN.
  std::vector<int> queue_events;
  /// The interrupt status register and line.
  std::shared_ptr<VirtioInterrupt> interrupt;
  /// Reports a fatal device error (a broken queue, a failed backend): the transport sets
  /// DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) and raises a config-change interrupt. The device
  /// must stop using its queues after calling it. Thread-safe.
  std::function<void(const std::string& reason)> needs_reset;
  /// Reports that the device cannot go on for a reason that is not the driver's: an exception
  /// on its worker (the host out of memory, a bug). The VM stops with StopReason::kDeviceError
  /// and `reason` (VirtioMmioTransport::set_failure_handler). Thread-safe. Empty when the
  /// transport has no handler (a device driven alone in a test): fail() uses needs_reset then.
  std::function<void(const std::string& reason)> failed;

  /// failed(reason) when set, else needs_reset(reason). Never throws.
  void fail(const std::string& reason) const noexcept {
    try {
      if (failed) {
        failed(reason);
      } else if (needs_reset) {
        needs_reset(reason);
      }
    } catch (...) {
      // Out of memory passing the reason on: nothing more can be done from a worker.
    }
  }
};

/// A virtio device type behind a transport. Methods other than activate()/reset() may be
/// called from vCPU threads concurrently with the device's own worker, so implementations
/// keep config-space state immutable or atomic. Nothing here may throw because of guest input.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  /// Short name for logs and errors ("vsock").
  virtual std::string name() const = 0;
  /// DeviceID register (virtio_id).
  virtual uint32_t device_id() const noexcept = 0;
  /// Features offered to the driver; must include virtio_feature::kVersion1.
  virtual uint64_t device_features() const noexcept = 0;
  /// QueueNumMax for each queue; the vector's size is the number of queues.
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  /// Reads device config space at `offset` (from 0x100 of the MMIO window). Bytes past the
  /// config space are left as they are (the bus pre-fills zeros).
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const noexcept = 0;
  /// Writes device config space; devices with read-only config ignore it.
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) noexcept = 0;
  /// Starts serving (worker threads, backend connections). Called once per activation from a
  /// vCPU thread. A failure throws forkvm::Error; the transport then sets DEVICE_NEEDS_RESET.
  virtual void activate(VirtioActivation activation) = 0;
  /// Stops serving and forgets the queues (driver wrote status 0, or VM teardown). Must be
  /// synchronous: when it returns no device thread touches guest memory any more.
  virtual void reset() noexcept = 0;

  /// Snapshot support, called by the transport on an activated device with the vCPUs paused:
  /// stops serving (synchronously, as reset()) and hands back the queues activate() was given,
  /// with their progress (next_avail, next_used, in_flight), in queue-index order. A chain the
  /// device popped but could not use is given back (Queue::undo_pop), so the saved queues have
  /// nothing in flight that the device would forget. Host-side state that the VM keeps (the
  /// vsock device's connections, a TAP) stays with the device: the transport later
  /// re-activates it with these queues (the original VM continuing, undisturbed), or a
  /// restored transport activates a fresh device with them. The default refuses: a device
  /// without snapshot support throws SnapshotError and keeps running.
  virtual std::vector<Queue> quiesce() {
    throw SnapshotError("snapshot: virtio-" + name() + ": this device does not support snapshots");
  }
};

}  // namespace forkvm
