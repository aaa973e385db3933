#include "devices/virtio/mmio_transport.hpp"

#include <cstdio>
#include <cstring>
#include <exception>

#include "memory/guest_memory.hpp"

namespace forkvm {
namespace {

namespace reg = virtio_mmio;
namespace st = virtio_status;

/// Status bits a driver may write (DEVICE_NEEDS_RESET belongs to the device).
constexpr uint32_t kDriverStatusBits =
    st::kAcknowledge | st::kDriver | st::kDriverOk | st::kFeaturesOk | st::kFailed;
/// The largest split-queue size (virtio 1.2 §2.7: Queue Size up to 32768).
constexpr uint16_t kMaxQueueSize = 32768;

/// Rate-limited log for rare guest-caused device errors: the first few, then every 2^k-th.
void log_device_error(const std::string& device, const std::string& what) {
  static std::atomic<uint64_t> count{0};
  const uint64_t n = count.fetch_add(1, std::memory_order_relaxed);
  if (n < 4 || (n & (n - 1)) == 0) {
    std::fprintf(stderr, "forkvm: virtio-%s: %s (%llu device errors so far)\n", device.c_str(),
                 what.c_str(), static_cast<unsigned long long>(n + 1));
  }
}

uint32_t load_u32(std::span<const uint8_t> data) {
  uint32_t v = 0;
  std::memcpy(&v, data.data(), sizeof v);
  return v;
}

/// Replaces the low or high 32 bits of `old`.
uint64_t with_half(uint64_t old, uint32_t value, bool high) {
  return high ? (old & 0xffffffffull) | (uint64_t{value} << 32)
              : (old & ~0xffffffffull) | value;
}

bool is_register_access(uint64_t offset, size_t size) {
  return size == 4 && offset % 4 == 0;
}

}  // namespace

VirtioMmioTransport::VirtioMmioTransport(std::shared_ptr<VirtioDevice> device,
                                         const GuestMemory& memory,
                                         std::shared_ptr<InterruptTrigger> trigger)
    : device_(std::move(device)),
      memory_(memory),
      interrupt_(std::make_shared<VirtioInterrupt>(std::move(trigger))),
      name_(device_ ? device_->name() : std::string()),
      device_id_(device_ ? device_->device_id() : 0),
      device_features_(device_ ? device_->device_features() : 0) {
  if (!device_) throw VirtioTransportError("virtio-mmio: no device");
  // A version-2 transport serves modern drivers only; Linux refuses such a device without
  // VIRTIO_F_VERSION_1 (drivers/virtio/virtio_mmio.c, vm_finalize_features).
  if ((device_features_ & virtio_feature::kVersion1) == 0) {
    throw VirtioTransportError("virtio-" + name_ + ": device does not offer VIRTIO_F_VERSION_1");
  }
  const std::vector<uint16_t> sizes = device_->queue_max_sizes();
  if (sizes.empty()) throw VirtioTransportError("virtio-" + name_ + ": device has no queues");
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0 || sizes[i] > kMaxQueueSize) {
      throw VirtioTransportError("virtio-" + name_ + ": queue " + std::to_string(i) +
                                 " has QueueNumMax " + std::to_string(sizes[i]) +
                                 " (must be 1.." + std::to_string(kMaxQueueSize) + ")");
    }
    queues_.emplace_back(sizes[i]);
  }
  queue_ready_.assign(sizes.size(), false);
  queue_events_.resize(sizes.size());  // EventFd() may throw EventFdError
}

VirtioMmioTransport::~VirtioMmioTransport() { reset_device(); }

int VirtioMmioTransport::queue_event(size_t index) const noexcept {
  return index < queue_events_.size() ? queue_events_[index].fd() : -1;
}

uint32_t VirtioMmioTransport::status() const {
  std::lock_guard lock(mu_);
  std::lock_guard fault_lock(fault_->mu);
  return status_ | (fault_->needs_reset ? st::kDeviceNeedsReset : 0);
}

bool VirtioMmioTransport::activated() const {
  std::lock_guard lock(mu_);
  return activated_;
}

std::string VirtioMmioTransport::needs_reset_reason() const {
  std::lock_guard fault_lock(fault_->mu);
  return fault_->needs_reset ? fault_->reason : std::string();
}

void VirtioMmioTransport::read(uint64_t offset, std::span<uint8_t> data) noexcept {
  if (offset >= reg::kConfig) {
    // Config space: any width; the device leaves bytes past its config untouched (zeros).
    device_->read_config(offset - reg::kConfig, data);
    return;
  }
  std::memset(data.data(), 0, data.size());
  if (!is_register_access(offset, data.size())) {
    ignore();
    return;
  }
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, sizeof value);
}

void VirtioMmioTransport::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
  if (offset >= reg::kConfig) {
    device_->write_config(offset - reg::kConfig, data);
    return;
  }
  if (!is_register_access(offset, data.size())) {
    ignore();
    return;
  }
  // Guest-controlled: `value` is checked per register below.
  const uint32_t value = load_u32(data);
  switch (offset) {
    case reg::kQueueNotify:
      // No lock: the eventfds never change. Before DRIVER_OK the signal stays pending and the
      // device sees it once activated, exactly as a KVM ioeventfd would leave it.
      if (value < queue_events_.size()) {
        queue_events_[value].signal();
      } else {
        ignore();
      }
      return;
    case reg::kInterruptAck:
      interrupt_->ack(value);
      return;
    default:
      break;
  }
  std::lock_guard lock(mu_);
  write_register(offset, value);
}

uint32_t VirtioMmioTransport::read_register(uint64_t offset) {
  switch (offset) {
    case reg::kMagicValue: return reg::kMagic;
    case reg::kVersion: return reg::kVersion2;
    case reg::kDeviceId: return device_id_;
    case reg::kVendorId: return reg::kForkvmVendorId;
    case reg::kInterruptStatus: return interrupt_->status();
    case reg::kConfigGeneration:
      // The contract gives devices no way to announce a config change, so their config is
      // immutable while the driver reads it: one generation forever (virtio 1.2 §4.2.2).
      return 0;
    case reg::kShmLenLow:
    case reg::kShmLenHigh:
    case reg::kShmBaseLow:
    case reg::kShmBaseHigh:
      // No shared memory regions: a length of -1 says "no such region" (virtio 1.2 §4.2.2).
      return 0xffffffffu;
    case reg::kStatus: return status();
    default: break;
  }
  std::lock_guard lock(mu_);
  switch (offset) {
    case reg::kDeviceFeatures:
      // Selector 0: bits 0-31, 1: bits 32-63; others have no features.
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(device_features_ >> (32 * device_features_sel_));
    case reg::kQueueNumMax:
      // 0 for a queue that does not exist (virtio 1.2 §4.2.2).
      return queue_sel_ < queues_.size() ? queues_[queue_sel_].max_size() : 0;
    case reg::kQueueReady:
      return queue_sel_ < queues_.size() && queue_ready_[queue_sel_] ? 1 : 0;
    default:
      ignore();  // write-only or unknown register
      return 0;
  }
}

void VirtioMmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case reg::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case reg::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case reg::kDriverFeatures: {
      // Guest-controlled: only while negotiating (DRIVER set, FEATURES_OK not yet, §3.1.1
      // steps 4-5), only windows 0 and 1, and masked to what the device offered (§2.2).
      const bool negotiating =
          (status_ & st::kDriver) != 0 && (status_ & (st::kFeaturesOk | st::kFailed)) == 0;
      if (!negotiating || driver_features_sel_ > 1) {
        ignore();
        return;
      }
      const bool high = driver_features_sel_ == 1;
      driver_features_ = with_half(driver_features_, value, high) & device_features_;
      return;
    }
    case reg::kQueueSel:
      queue_sel_ = value;  // checked when a queue register is used
      return;
    case reg::kStatus:
      write_status(value);
      return;
    case reg::kShmSel:
      return;  // every region id is "no such region"
    default:
      write_queue_register(offset, value);
      return;
  }
}

void VirtioMmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case reg::kQueueNum:
    case reg::kQueueReady:
    case reg::kQueueDescLow:
    case reg::kQueueDescHigh:
    case reg::kQueueDriverLow:
    case reg::kQueueDriverHigh:
    case reg::kQueueDeviceLow:
    case reg::kQueueDeviceHigh:
      break;
    default:
      ignore();  // read-only or unknown register
      return;
  }
  // Guest-controlled: QueueSel must name a queue, and the configuration is frozen once the
  // device runs (virtio 1.2 §4.2.3.2 configures queues before DRIVER_OK).
  if (queue_sel_ >= queues_.size() || (status_ & st::kDriverOk) != 0) {
    ignore();
    return;
  }
  Queue& q = queues_[queue_sel_];
  switch (offset) {
    case reg::kQueueNum:
      // A value past 16 bits must not alias a valid size: 0 makes validate() refuse it.
      q.set_size(value <= 0xffff ? static_cast<uint16_t>(value) : 0);
      return;
    case reg::kQueueReady:
      queue_ready_[queue_sel_] = value == 1;
      return;
    case reg::kQueueDescLow:
    case reg::kQueueDescHigh:
      q.set_desc_table(with_half(q.desc_table(), value, offset == reg::kQueueDescHigh));
      return;
    case reg::kQueueDriverLow:
    case reg::kQueueDriverHigh:
      q.set_avail_ring(with_half(q.avail_ring(), value, offset == reg::kQueueDriverHigh));
      return;
    default:  // kQueueDeviceLow / kQueueDeviceHigh
      q.set_used_ring(with_half(q.used_ring(), value, offset == reg::kQueueDeviceHigh));
      return;
  }
}

void VirtioMmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  // Guest-controlled. The driver only ever adds bits (virtio 1.2 §3.1.1); clearing one takes a
  // reset. Unknown bits and DEVICE_NEEDS_RESET (the device's bit) make the write invalid.
  if ((value & ~kDriverStatusBits) != 0 || (value & status_) != status_) {
    ignore();
    return;
  }
  uint32_t added = value & ~status_;
  if ((added & st::kFailed) != 0) {
    status_ |= st::kFailed;  // the driver gave up; always accepted (§2.1.1)
    added &= ~st::kFailed;
  }
  // Bits in the order of §3.1.1; a refused step stops the rest of the write.
  for (const uint32_t bit : {st::kAcknowledge, st::kDriver, st::kFeaturesOk, st::kDriverOk}) {
    if ((added & bit) == 0) continue;
    if (!advance_status(bit)) {
      ignore();
      return;
    }
  }
}

bool VirtioMmioTransport::advance_status(uint32_t bit) {
  {
    std::lock_guard fault_lock(fault_->mu);
    if (fault_->needs_reset) return false;  // only a reset leaves DEVICE_NEEDS_RESET
  }
  if ((status_ & st::kFailed) != 0) return false;
  constexpr uint32_t kAckDriver = st::kAcknowledge | st::kDriver;
  switch (bit) {
    case st::kAcknowledge:
      if (status_ != 0) return false;
      break;
    case st::kDriver:
      if (status_ != st::kAcknowledge) return false;
      break;
    case st::kFeaturesOk:
      // A modern transport requires VIRTIO_F_VERSION_1 (§6.1): without it FEATURES_OK stays
      // clear, which the driver reads back as "features refused" (§3.1.1 step 6).
      if (status_ != kAckDriver || (driver_features_ & virtio_feature::kVersion1) == 0) {
        return false;
      }
      break;
    case st::kDriverOk:
      if (status_ != (kAckDriver | st::kFeaturesOk)) return false;
      status_ |= st::kDriverOk;  // set first: queue registers are frozen from here on
      activate();
      return true;
    default:
      return false;
  }
  status_ |= bit;
  return true;
}

uint64_t VirtioMmioTransport::current_epoch() const {
  std::lock_guard fault_lock(fault_->mu);
  return fault_->epoch;
}

void VirtioMmioTransport::activate() {
  const uint64_t epoch = current_epoch();
  // Queues the driver enabled are validated; the others go to the device unvalidated, so
  // they are never ready() and pop nothing, and the vector stays indexed by queue number.
  std::vector<Queue> queues;
  for (size_t i = 0; i < queues_.size(); ++i) {
    Queue q = queues_[i];
    if (queue_ready_[i] && !q.validate(memory_)) {
      set_needs_reset(fault_, interrupt_, epoch, name_,
                      "queue " + std::to_string(i) + ": " + q.error_reason());
      return;
    }
    queues.push_back(std::move(q));
  }
  const std::string failure = start_device(std::move(queues), epoch);
  if (!failure.empty()) set_needs_reset(fault_, interrupt_, epoch, name_, failure);
}

std::string VirtioMmioTransport::start_device(std::vector<Queue> queues, uint64_t epoch) {
  VirtioActivation a;
  a.memory = &memory_;
  a.acked_features = driver_features_;
  a.interrupt = interrupt_;
  a.queues = std::move(queues);
  for (const auto& e : queue_events_) a.queue_events.push_back(e.fd());
  a.needs_reset = [fault = fault_, interrupt = interrupt_, epoch,
                   name = name_](const std::string& reason) {
    set_needs_reset(fault, interrupt, epoch, name, reason);
  };
  if (failure_handler_) {
    a.failed = [handler = failure_handler_, name = name_](const std::string& reason) {
      log_device_error(name, "failed: " + reason);
      handler(reason);
    };
  }
  try {
    device_->activate(std::move(a));
    activated_ = true;
    return {};
  } catch (const std::exception& e) {
    device_->reset();  // stop anything a half-done activation started
    return std::string("activation failed: ") + e.what();
  } catch (...) {
    device_->reset();
    return "activation failed";
  }
}

void VirtioMmioTransport::kick_all_queues() const noexcept {
  for (const auto& e : queue_events_) e.signal();
}

void VirtioMmioTransport::set_needs_reset(const std::shared_ptr<Fault>& fault,
                                          const std::shared_ptr<VirtioInterrupt>& interrupt,
                                          uint64_t epoch, const std::string& device_name,
                                          const std::string& reason) {
  {
    std::lock_guard fault_lock(fault->mu);
    if (fault->epoch != epoch || fault->needs_reset) return;  // stale, or already set
    fault->needs_reset = true;
    fault->reason = reason;
  }
  log_device_error(device_name, "needs reset: " + reason);
  // After the bit is visible to a status read: the driver's interrupt handler reads Status.
  interrupt->signal_config_change();
}

void VirtioMmioTransport::reset_device() noexcept {
  std::lock_guard lock(mu_);
  reset_locked();
}

void VirtioMmioTransport::reset_locked() noexcept {
  // Order: stop the device first (synchronous), so no worker can raise an interrupt bit or
  // set DEVICE_NEEDS_RESET after they are cleared below; then bump the epoch so any callback
  // still held from the old activation is ignored.
  if (activated_) device_->reset();
  activated_ = false;
  quiesced_ = false;
  live_queues_.clear();
  {
    std::lock_guard fault_lock(fault_->mu);
    ++fault_->epoch;
    fault_->needs_reset = false;
    fault_->reason.clear();
  }
  for (auto& q : queues_) q.reset();
  queue_ready_.assign(queue_ready_.size(), false);
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  interrupt_->clear();
  // Drop notifications the old driver left pending, so a new activation starts quiet.
  for (const auto& e : queue_events_) e.consume();
}

}  // namespace forkvm
