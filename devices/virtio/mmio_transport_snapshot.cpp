// VirtioMmioTransport's snapshot half: quiesce / save_state / resume on the VM being
// snapshotted, restore_state on a freshly built one. See devices/SNAPSHOT.md for the order.
#include <string>

#include "devices/virtio/mmio_transport.hpp"
#include "memory/guest_memory.hpp"

namespace forkvm {
namespace {

namespace st = virtio_status;

constexpr uint32_t kAckDriver = st::kAcknowledge | st::kDriver;

/// The status values write_status() can produce: a prefix of the §3.1.1 sequence, optionally
/// with FAILED (which the driver may add at any point, §2.1.1).
bool legal_status(uint32_t status) {
  const uint32_t steps = status & ~st::kFailed;
  return steps == 0 || steps == st::kAcknowledge || steps == kAckDriver ||
         steps == (kAckDriver | st::kFeaturesOk) ||
         steps == (kAckDriver | st::kFeaturesOk | st::kDriverOk);
}

}  // namespace

void VirtioMmioTransport::quiesce() {
  std::lock_guard lock(mu_);
  if (!activated_ || quiesced_) return;
  // The device joins its worker here; a worker calling needs_reset meanwhile takes only
  // fault_->mu, never mu_, so this cannot deadlock (as in reset_locked()).
  std::vector<Queue> queues = device_->quiesce();
  quiesced_ = true;  // the device is stopped from here on, whatever it handed back
  if (queues.size() != queues_.size()) {
    throw SnapshotError("snapshot: virtio-" + name_ + ": device handed back " +
                        std::to_string(queues.size()) + " queues, expected " +
                        std::to_string(queues_.size()));
  }
  live_queues_ = std::move(queues);
}

bool VirtioMmioTransport::quiesced() const {
  std::lock_guard lock(mu_);
  return quiesced_;
}

VirtioMmioTransport::State VirtioMmioTransport::save_state() const {
  std::lock_guard lock(mu_);
  if (activated_ && (!quiesced_ || live_queues_.size() != queues_.size())) {
    throw SnapshotError("snapshot: virtio-" + name_ +
                        ": the device is running; quiesce() the transport before saving it");
  }
  State s;
  s.device_id = device_id_;
  s.status = status_;
  {
    std::lock_guard fault_lock(fault_->mu);
    s.needs_reset = fault_->needs_reset;
    s.needs_reset_reason = fault_->needs_reset ? fault_->reason : std::string();
  }
  if (s.needs_reset_reason.size() > kMaxReasonBytes) s.needs_reset_reason.resize(kMaxReasonBytes);
  s.activated = activated_;
  s.device_features_sel = device_features_sel_;
  s.driver_features_sel = driver_features_sel_;
  s.driver_features = driver_features_;
  s.queue_sel = queue_sel_;
  const std::vector<Queue>& source = activated_ ? live_queues_ : queues_;
  for (size_t i = 0; i < source.size(); ++i) {
    s.queues.push_back(QueueEntry{queue_ready_[i], source[i].save_state()});
  }
  s.interrupt_status = interrupt_->status();
  return s;
}

void VirtioMmioTransport::resume() noexcept {
  std::lock_guard lock(mu_);
  if (!quiesced_) return;
  quiesced_ = false;
  std::vector<Queue> queues = std::move(live_queues_);
  live_queues_.clear();
  {
    std::lock_guard fault_lock(fault_->mu);
    if (fault_->needs_reset) return;  // the device had stopped serving; the driver resets it
  }
  const uint64_t epoch = current_epoch();
  const std::string failure = start_device(std::move(queues), epoch);
  if (!failure.empty()) {
    activated_ = false;
    set_needs_reset(fault_, interrupt_, epoch, name_, failure);
    return;
  }
  kick_all_queues();
}

void VirtioMmioTransport::check_restorable(const State& s, std::vector<Queue>& restored) const {
  const std::string component = "virtio-mmio[" + name_ + "]";
  auto reject = [&component](const std::string& what) {
    throw SnapshotError("snapshot: " + component + ": " + what);
  };
  if (status_ != 0 || activated_) reject("restore needs a transport no driver has used");
  if (s.device_id != device_id_) {
    reject("device_id " + std::to_string(s.device_id) + " does not match this device's " +
           std::to_string(device_id_));
  }
  if (s.queues.size() != queues_.size()) {
    reject(std::to_string(s.queues.size()) + " queues, this device has " +
           std::to_string(queues_.size()));
  }
  if ((s.status & ~(kAckDriver | st::kFeaturesOk | st::kDriverOk | st::kFailed)) != 0 ||
      !legal_status(s.status)) {
    reject("status " + std::to_string(s.status) + " is not a state the driver can reach");
  }
  if ((s.driver_features & ~device_features_) != 0) {
    reject("driver_features include bits the device does not offer");
  }
  if ((s.status & st::kFeaturesOk) != 0 && (s.driver_features & virtio_feature::kVersion1) == 0) {
    reject("FEATURES_OK without VIRTIO_F_VERSION_1");
  }
  if ((s.status & st::kDriver) == 0 && s.driver_features != 0) {
    reject("driver_features set before the DRIVER status bit");
  }
  if (s.activated && (s.status & st::kDriverOk) == 0) reject("activated without DRIVER_OK");
  if (s.needs_reset_reason.size() > kMaxReasonBytes) reject("needs_reset_reason too long");
  if (!s.needs_reset && !s.needs_reset_reason.empty()) {
    reject("needs_reset_reason without DEVICE_NEEDS_RESET");
  }
  constexpr uint32_t kInterruptBits = VirtioInterrupt::kUsedBuffer | VirtioInterrupt::kConfigChange;
  if ((s.interrupt_status & ~kInterruptBits) != 0) {
    reject("interrupt_status " + std::to_string(s.interrupt_status) + " has undefined bits");
  }
  restored.clear();
  for (size_t i = 0; i < s.queues.size(); ++i) {
    const QueueEntry& e = s.queues[i];
    const std::string where = component + ".queues[" + std::to_string(i) + "]";
    // Only an activation validates a queue and makes progress on it: and only enabled ones.
    if ((e.queue.ready || e.queue.error != QueueError::kNone) && !(s.activated && e.enabled)) {
      throw SnapshotError("snapshot: " + where +
                          ": ready or broken, but the transport never activated it");
    }
    if (s.activated && !s.needs_reset && e.enabled && !e.queue.ready) {
      throw SnapshotError("snapshot: " + where + ": enabled queue of a running device not ready");
    }
    Queue q = queues_[i];  // same QueueNumMax as the device reports
    q.restore_state(e.queue, memory_, where);
    restored.push_back(std::move(q));
  }
}

void VirtioMmioTransport::restore_state(const State& s) {
  std::lock_guard lock(mu_);
  std::vector<Queue> restored;
  check_restorable(s, restored);  // throws before anything changes
  status_ = s.status;
  device_features_sel_ = s.device_features_sel;
  driver_features_sel_ = s.driver_features_sel;
  driver_features_ = s.driver_features;
  queue_sel_ = s.queue_sel;
  uint64_t epoch = 0;
  {
    std::lock_guard fault_lock(fault_->mu);
    fault_->needs_reset = s.needs_reset;
    fault_->reason = s.needs_reset_reason;
    epoch = fault_->epoch;
  }
  for (size_t i = 0; i < restored.size(); ++i) queue_ready_[i] = s.queues[i].enabled;
  // Before activation: the device's first used buffer ORs its bit into the restored status.
  interrupt_->restore(s.interrupt_status);
  if (!s.activated) {
    // The transport keeps the configuration; the driver finishes its handshake as it would
    // have before the snapshot.
    queues_ = std::move(restored);
    interrupt_->retrigger();
    return;
  }
  // An activated transport keeps only the configuration; the device gets the live queues.
  for (size_t i = 0; i < restored.size(); ++i) {
    Queue config(queues_[i].max_size());
    config.set_size(restored[i].size());
    config.set_desc_table(restored[i].desc_table());
    config.set_avail_ring(restored[i].avail_ring());
    config.set_used_ring(restored[i].used_ring());
    queues_[i] = config;
  }
  if (s.needs_reset) {
    // The device had stopped serving before the snapshot; the driver will reset it. It stays
    // stopped, holding its queues as if quiesced (so a later snapshot saves them), and is
    // marked activated so that the driver's reset reaches it, as it would have.
    activated_ = true;
    quiesced_ = true;
    live_queues_ = std::move(restored);
    interrupt_->retrigger();
    return;
  }
  const std::string failure = start_device(std::move(restored), epoch);
  if (!failure.empty()) {
    reset_locked();
    throw SnapshotError("snapshot: virtio-mmio[" + name_ + "]: " + failure);
  }
  kick_all_queues();
  interrupt_->retrigger();
}

}  // namespace forkvm
