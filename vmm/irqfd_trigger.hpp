// IrqfdTrigger: a virtio device's interrupt line through KVM_IRQFD, which a restored VM holds
// shut until its irqchip is restored.
//
// Why the hold: Vm::prepare() restores and activates the virtio devices before Vm::launch()
// restores the LAPICs and the IOAPIC (so a template's pooled VMs have their device workers
// running before any fork takes them). A device may raise its interrupt at once (a re-raised
// pending status, the vsock device's RSTs for stale connections or a TRANSPORT_RESET). An edge
// sent into the fresh irqchip would be lost: its pins are masked until KVM_SET_IRQCHIP writes the
// snapshot's redirection table over them. Held, the edge is remembered here and sent by release(),
// which launch() calls once the irqchip is the snapshot's.
#pragma once

#include <atomic>

#include "base/event_fd.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace forkvm {

/// trigger() writes the eventfd and KVM raises the GSI registered for it (an edge, which is what
/// the MP table's ISA entries declare) without an ioctl on the device thread. The eventfd is
/// owned here; KVM detaches the irqfd when it is closed. Thread-safe.
class IrqfdTrigger : public InterruptTrigger {
 public:
  /// `held`: edges are remembered, not sent, until release().
  explicit IrqfdTrigger(bool held = false) : held_(held) {}

  void trigger() noexcept override {
    if (!held_.load()) {
      event_.signal();
      return;
    }
    pending_.store(true);
    // release() may have run between the load above and the store: then it found nothing
    // pending, and this edge is sent here. Both sides are sequentially consistent, so at least
    // one of them sees the other's store (and a second edge is harmless: the driver reads
    // InterruptStatus and finds what it finds).
    if (!held_.load() && pending_.exchange(false)) event_.signal();
  }

  /// Opens the line for good and sends one edge when any came while it was held. Called once
  /// the irqchip can take it.
  void release() noexcept {
    held_.store(false);
    if (pending_.exchange(false)) event_.signal();
  }

  /// Whether the line is still held.
  bool held() const noexcept { return held_.load(); }

  /// The eventfd for KVM_IRQFD.
  int fd() const noexcept { return event_.fd(); }

 private:
  EventFd event_;
  std::atomic<bool> held_;
  std::atomic<bool> pending_{false};
};

}  // namespace forkvm
