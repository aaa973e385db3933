// VirtioMmioTransport: the virtio-mmio register file (virtio 1.2 §4.2.2, "version 2", the
// modern layout) in front of one VirtioDevice. It owns feature negotiation, the device status
// state machine (§2.1, §3.1), the queue configuration registers, one notification eventfd per
// queue, and the InterruptStatus/InterruptACK pair; the device owns its config space and, once
// activated, its queues and its worker (see virtio_device.hpp for the split).
//
// Every register value is guest-controlled and checked where it is written; nothing here
// throws to the vCPU. A driver mistake is ignored and counted (ignored_accesses()); a queue
// that fails validation at DRIVER_OK, or a device whose activate() throws, turns into
// DEVICE_NEEDS_RESET plus a config-change interrupt (§2.1.2).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/event_fd.hpp"
#include "devices/bus.hpp"
#include "devices/virtio/queue.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

class GuestMemory;

/// Thrown when a transport cannot be built for a device (it does not offer
/// VIRTIO_F_VERSION_1, has no queues or a queue with QueueNumMax 0) or the host is out of
/// eventfds. Setup path only.
class VirtioTransportError : public Error {
 public:
  using Error::Error;
};

/// Register offsets of the virtio-mmio window (virtio 1.2 §4.2.2, Table "MMIO Device Register
/// Layout"). All registers are 32 bits wide; device config space starts at kConfig.
namespace virtio_mmio {
inline constexpr uint64_t kMagicValue = 0x000;         ///< R: 0x74726976 ("virt")
inline constexpr uint64_t kVersion = 0x004;            ///< R: 2
inline constexpr uint64_t kDeviceId = 0x008;           ///< R
inline constexpr uint64_t kVendorId = 0x00c;           ///< R
inline constexpr uint64_t kDeviceFeatures = 0x010;     ///< R: 32 bits selected by ...Sel
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;  ///< W
inline constexpr uint64_t kDriverFeatures = 0x020;     ///< W: 32 bits selected by ...Sel
inline constexpr uint64_t kDriverFeaturesSel = 0x024;  ///< W
inline constexpr uint64_t kQueueSel = 0x030;           ///< W
inline constexpr uint64_t kQueueNumMax = 0x034;        ///< R
inline constexpr uint64_t kQueueNum = 0x038;           ///< W
inline constexpr uint64_t kQueueReady = 0x044;         ///< RW
inline constexpr uint64_t kQueueNotify = 0x050;        ///< W: the queue index
inline constexpr uint64_t kInterruptStatus = 0x060;    ///< R
inline constexpr uint64_t kInterruptAck = 0x064;       ///< W
inline constexpr uint64_t kStatus = 0x070;             ///< RW
inline constexpr uint64_t kQueueDescLow = 0x080;       ///< W
inline constexpr uint64_t kQueueDescHigh = 0x084;      ///< W
inline constexpr uint64_t kQueueDriverLow = 0x090;     ///< W (available ring)
inline constexpr uint64_t kQueueDriverHigh = 0x094;    ///< W
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;     ///< W (used ring)
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;    ///< W
inline constexpr uint64_t kShmSel = 0x0ac;             ///< W: shared memory region id
inline constexpr uint64_t kShmLenLow = 0x0b0;          ///< R: -1 = no such region
inline constexpr uint64_t kShmLenHigh = 0x0b4;         ///< R
inline constexpr uint64_t kShmBaseLow = 0x0b8;         ///< R
inline constexpr uint64_t kShmBaseHigh = 0x0bc;        ///< R
inline constexpr uint64_t kConfigGeneration = 0x0fc;   ///< R
inline constexpr uint64_t kConfig = 0x100;             ///< device config space, any width

inline constexpr uint32_t kMagic = 0x74726976;  ///< "virt", little-endian
inline constexpr uint32_t kVersion2 = 2;        ///< the modern (non-legacy) interface
/// VendorID reported to the driver (Linux only prints it): "FKVM" little-endian.
inline constexpr uint32_t kForkvmVendorId = 0x4d564b46;
}  // namespace virtio_mmio

/// Device status bits (virtio 1.2 §2.1).
namespace virtio_status {
inline constexpr uint32_t kAcknowledge = 1;
inline constexpr uint32_t kDriver = 2;
inline constexpr uint32_t kDriverOk = 4;
inline constexpr uint32_t kFeaturesOk = 8;
inline constexpr uint32_t kDeviceNeedsReset = 0x40;
inline constexpr uint32_t kFailed = 0x80;
}  // namespace virtio_status

/// The virtio-mmio transport for one device, mapped on the MMIO bus over a 4 KiB slot.
/// read()/write() run on vCPU threads (any number, concurrently) and are serialized by an
/// internal mutex; QueueNotify, InterruptStatus/ACK and config space do not take it.
class VirtioMmioTransport : public BusDevice {
 public:
  /// Builds the register file for `device`, creating one eventfd per queue (QueueNumMax from
  /// device->queue_max_sizes()). `memory` (guest RAM) must outlive the transport; the
  /// interrupt raised through `trigger` is shared with the device at activation.
  /// Throws VirtioTransportError or EventFdError.
  VirtioMmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                      std::shared_ptr<InterruptTrigger> trigger);
  /// Resets the device (reset_device()) so its worker is gone before the queue eventfds close.
  ~VirtioMmioTransport() override;
  VirtioMmioTransport(const VirtioMmioTransport&) = delete;
  VirtioMmioTransport& operator=(const VirtioMmioTransport&) = delete;

  /// BusDevice: a register read. Registers need an aligned 4-byte access; anything else below
  /// kConfig reads as 0 and is counted. Never throws.
  void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
  /// BusDevice: a register write (same width rule). Never throws.
  void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

  /// Number of queues the device has.
  size_t queue_count() const noexcept { return queue_events_.size(); }
  /// The eventfd signalled when the driver notifies queue `index` (for KVM_IOEVENTFD with
  /// datamatch = index on kQueueNotify), or -1 for an index out of range.
  int queue_event(size_t index) const noexcept;
  /// The interrupt status register and line shared with the device.
  const std::shared_ptr<VirtioInterrupt>& interrupt() const noexcept { return interrupt_; }
  /// The device behind this transport.
  VirtioDevice& device() const noexcept { return *device_; }

  /// The Status register as the driver reads it (DEVICE_NEEDS_RESET included).
  uint32_t status() const;
  /// Whether the device is running: DRIVER_OK was accepted and activate() succeeded.
  bool activated() const;
  /// Why DEVICE_NEEDS_RESET was set (empty when it is not).
  std::string needs_reset_reason() const;
  /// Guest accesses that were ignored: wrong width, unknown or read-only register, queue
  /// configuration after DRIVER_OK or for a missing queue, an out-of-order status write.
  uint64_t ignored_accesses() const noexcept {
    return ignored_.load(std::memory_order_relaxed);
  }

  /// Where the device reports that it cannot go on (VirtioActivation::failed): the VM stops with
  /// the reason. Set once, before the guest runs (activations after it carry it).
  void set_failure_handler(std::function<void(const std::string& reason)> handler) {
    std::lock_guard lock(mu_);
    failure_handler_ = std::move(handler);
  }

  /// A full device reset as if the driver wrote 0 to Status: device->reset() (synchronous),
  /// queues and features forgotten, interrupt status cleared. For VM teardown: once it
  /// returns no device thread touches guest memory. Idempotent, never throws.
  void reset_device() noexcept;

  /// One queue's part of the snapshot state.
  struct QueueEntry {
    bool enabled = false;  ///< The QueueReady register (the driver enabled the queue).
    Queue::State queue;    ///< Configuration, and progress once activated.
    /// Field equality.
    bool operator==(const QueueEntry&) const = default;
  };

  /// Snapshot state of the register file, the queues and the interrupt status. The device's own
  /// state (vsock: VsockDevice::State) is saved separately. Restoring needs a transport built
  /// for the same kind of device (device_id) with the same number of queues.
  struct State {
    uint32_t device_id = 0;            ///< DeviceID of the device behind the transport.
    uint32_t status = 0;               ///< Status bits the driver set (not DEVICE_NEEDS_RESET).
    bool needs_reset = false;          ///< DEVICE_NEEDS_RESET is set.
    std::string needs_reset_reason;    ///< Why (empty when not set).
    bool activated = false;            ///< DRIVER_OK was accepted and the device activated.
    uint32_t device_features_sel = 0;  ///< DeviceFeaturesSel.
    uint32_t driver_features_sel = 0;  ///< DriverFeaturesSel.
    uint64_t driver_features = 0;      ///< Features the driver accepted (subset of offered).
    uint32_t queue_sel = 0;            ///< QueueSel (any value; checked when used).
    std::vector<QueueEntry> queues;    ///< One per queue, in index order.
    uint32_t interrupt_status = 0;     ///< InterruptStatus (VirtioInterrupt bits).
    /// Field equality.
    bool operator==(const State&) const = default;
  };

  /// Longest needs_reset_reason a restored state may carry.
  static constexpr size_t kMaxReasonBytes = 4096;

  /// Snapshot step 1, with the vCPUs paused and before the vCPU/VM state and guest memory are
  /// captured: stops an activated device and takes its queues back (VirtioDevice::quiesce), so
  /// the saved rings are at rest. Does nothing when the device is not activated or already
  /// quiesced. Throws SnapshotError when the device has no snapshot support (it keeps running)
  /// or hands back the wrong number of queues (it is then stopped; resume() restarts it).
  void quiesce();
  /// Whether quiesce() has stopped the device and resume() has not yet restarted it.
  bool quiesced() const;
  /// Captures the transport. Throws SnapshotError when the device is activated but not
  /// quiesced (its queues are moving under a running worker).
  State save_state() const;
  /// Snapshot step 3 for the VM that keeps running: re-activates the device with the queues
  /// quiesce() took back, without any driver handshake, and re-kicks every queue so the device
  /// looks at what the driver queued meanwhile. A device whose DEVICE_NEEDS_RESET is set stays
  /// stopped. Does nothing unless quiesced. Never throws; an activation failure becomes
  /// DEVICE_NEEDS_RESET as at DRIVER_OK.
  void resume() noexcept;
  /// Restores `state` into a transport that was just built and never used by a driver. All
  /// checks happen before anything changes: device_id and queue count match, the status is a
  /// legal step of the virtio 1.2 §3.1.1 sequence (optionally with FAILED), driver features are
  /// a subset of the device's and include VERSION_1 from FEATURES_OK on, `activated` implies
  /// DRIVER_OK, only queues of an activated transport are ready, each queue passes
  /// Queue::restore_state (rings inside guest memory, size <= QueueNumMax), InterruptStatus has
  /// only defined bits. A state that was activated (without DEVICE_NEEDS_RESET) activates the
  /// device with the restored queues, then every queue is re-kicked and a pending interrupt
  /// raised again. Throws SnapshotError naming the device and field; an activation failure
  /// throws too, after resetting the transport.
  void restore_state(const State& state);

 private:
  /// DEVICE_NEEDS_RESET is set from device threads (the needs_reset callback) without the
  /// register mutex: the device may call it from inside activate() (which runs under that
  /// mutex) or from a worker that device->reset() is joining (also under it). The epoch makes
  /// a callback from an earlier activation a no-op. Shared so that a callback outliving the
  /// transport stays harmless.
  struct Fault {
    std::mutex mu;
    uint64_t epoch = 0;
    bool needs_reset = false;
    std::string reason;
  };

  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_queue_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  bool advance_status(uint32_t bit);
  void activate();
  /// Hands `queues` to the device with a fresh VirtioActivation for `epoch`. Returns an empty
  /// string on success (activated_ is set) or why activate() failed (the device was reset).
  std::string start_device(std::vector<Queue> queues, uint64_t epoch);
  /// Signals every queue's eventfd: the device re-reads every ring.
  void kick_all_queues() const noexcept;
  uint64_t current_epoch() const;
  void check_restorable(const State& state, std::vector<Queue>& restored) const;
  void reset_locked() noexcept;
  /// Sets DEVICE_NEEDS_RESET for `epoch` (ignored when stale) and raises a config interrupt.
  static void set_needs_reset(const std::shared_ptr<Fault>& fault,
                              const std::shared_ptr<VirtioInterrupt>& interrupt, uint64_t epoch,
                              const std::string& device_name, const std::string& reason);
  void ignore() noexcept { ignored_.fetch_add(1, std::memory_order_relaxed); }

  const std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& memory_;
  const std::shared_ptr<VirtioInterrupt> interrupt_;
  const std::shared_ptr<Fault> fault_ = std::make_shared<Fault>();
  const std::string name_;
  const uint32_t device_id_;
  const uint64_t device_features_;
  /// One per queue, created at construction and never changed: read without the mutex.
  std::vector<EventFd> queue_events_;

  mutable std::mutex mu_;  // guards everything below
  uint32_t status_ = 0;    // driver-visible bits except DEVICE_NEEDS_RESET (kept in fault_)
  bool activated_ = false;
  std::function<void(const std::string& reason)> failure_handler_;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;  // already masked to device_features_
  uint32_t queue_sel_ = 0;
  std::vector<Queue> queues_;     // configuration only; copies go to the device
  std::vector<bool> queue_ready_;
  bool quiesced_ = false;         // quiesce() took the device's queues; resume() gives them back
  std::vector<Queue> live_queues_;  // the device's queues while quiesced

  std::atomic<uint64_t> ignored_{0};
};

}  // namespace forkvm
