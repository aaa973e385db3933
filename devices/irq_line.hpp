// IrqLine: how a device raises its interrupt without knowing about KVM. The VM implements it
// with KVM_IRQ_LINE on the in-kernel irqchip; tests implement it with a recorder.
#pragma once

namespace forkvm {

/// One level-triggered interrupt line (an ISA IRQ / IOAPIC pin).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  /// Drives the line high (asserted) or low. Called from vCPU and device threads; must be
  /// thread-safe and must not throw.
  virtual void set_level(bool asserted) noexcept = 0;
};

}  // namespace forkvm
