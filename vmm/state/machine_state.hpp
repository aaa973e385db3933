// MachineState: the KVM state of a whole VM (every vCPU, then the VM-wide irqchips, PIT and
// kvmclock), and the one place that fixes the order between them.
//
// Whole-machine order, capture and restore alike:
//   1. every vCPU, in index order, each in VcpuState's order (vcpu_state.hpp);
//   2. VmKernelState (vm_state.hpp): after the vCPUs because the IOAPIC restore feeds the LAPICs,
//      the PIT restore starts a timer, and KVM_SET_CLOCK must see the restored TSCs;
//   3. devices (not here: devices/ and snapshot/), after all KVM state, so that a device that
//      raises an interrupt on restore finds the irqchip already in place.
// The vCPUs must be created (KVM_CREATE_VCPU) after KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2, as
// at boot; restore sets state, it creates nothing.
#pragma once

#include <span>
#include <vector>

#include "vmm/state/vcpu_state.hpp"
#include "vmm/state/vm_state.hpp"

namespace forkvm {
class VcpuFd;
class VmFd;
}  // namespace forkvm

namespace forkvm::state {

/// Every vCPU's state and the VM-wide kernel state.
struct MachineState {
  std::vector<VcpuState> vcpus;
  VmKernelState vm;

  /// Captures `vcpu_fds` (all paused) and then `vm_fd`, saving the MSRs in `msrs` (msrs_to_save()).
  static MachineState capture(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds,
                              std::span<const uint32_t> msrs);
  /// Restores into `vm_fd` and its `vcpu_fds` (same count as captured, else SnapshotError), vCPUs
  /// first, then VM state.
  void restore(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const;
  /// restore() in two halves (vcpu_state.hpp, vm_state.hpp): restore_ahead() sets what does not
  /// move with time (every vCPU's ahead half, then the PICs, and the IOAPIC when
  /// irqchip_ahead()) and may run long before restore_live() (every vCPU's live half, then the
  /// IOAPIC unless it went ahead, PIT, kvmclock), which must come right before the vCPUs run.
  /// Both check the vCPU count (SnapshotError).
  void restore_ahead(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const;
  void restore_live(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const;
  /// True when every vCPU's LAPIC goes in the ahead half (VcpuState::lapic_ahead()): then the
  /// whole irqchip is the snapshot's once restore_ahead() returns, and devices may drive their
  /// lines before restore_live().
  bool irqchip_ahead() const;

 private:
  void check_count(size_t vcpu_fds) const;
};

}  // namespace forkvm::state
