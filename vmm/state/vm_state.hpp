// VmKernelState: the VM-wide state KVM keeps in the kernel: both 8259 PICs, the IOAPIC, the
// PIT (i8254) and kvmclock.
//
// Restore order (VmKernelState::restore), after every vCPU's VcpuState (machine_state.hpp):
//   1. PIC master, 2. PIC slave, 3. IOAPIC: after the LAPICs, because setting the IOAPIC makes
//      KVM rescan its routes into each vCPU's LAPIC (and may deliver a pending level-triggered
//      line), which a later KVM_SET_LAPIC would overwrite;
//   4. PIT: KVM_SET_PIT2 reloads the counters and starts the PIT's timer, so it goes as late as
//      possible, right before the vCPUs run;
//   5. kvmclock last: KVM_SET_CLOCK sets the VM's clock offset and makes every vCPU recompute its
//      pvclock page on its next entry, against the TSC that the MSRS step just restored.
// The saved clock is restored as is (KVM_CLOCK_REALTIME and KVM_CLOCK_HOST_TSC cleared), so the
// guest's clock continues from the value it had at capture rather than jumping by the time the
// snapshot spent on disk; the guest's wall clock is the host's business after a restore.
//
// In two halves, as VcpuState's: the PICs ahead (restore_ahead: they feed a vCPU only through
// an output line that KVM samples when it injects, so no vCPU state can overwrite them), and the
// PIT and kvmclock live (restore_live), after every vCPU's live half: they move with time. The
// IOAPIC must follow the LAPICs: it goes ahead when every LAPIC did (`ioapic_ahead`,
// MachineState::irqchip_ahead()), else live, first.
#pragma once

#include <linux/kvm.h>

namespace forkvm {
class VmFd;
}

namespace forkvm::state {

/// The in-kernel irqchip, PIT and clock state of one VM.
struct VmKernelState {
  kvm_pic_state pic_master{};
  kvm_pic_state pic_slave{};
  kvm_ioapic_state ioapic{};
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};  ///< clock and flags; realtime/host_tsc kept only for inspection

  /// Reads the state of `vm`, whose vCPUs must all be paused, in the documented order. The VM
  /// must have an in-kernel irqchip and PIT (KvmError otherwise).
  static VmKernelState capture(const VmFd& vm);
  /// Writes this state into `vm` in the documented order (after the vCPUs are restored).
  void restore(const VmFd& vm) const;
  /// The PICs (file comment), before or after the vCPUs' ahead halves; then the IOAPIC when
  /// `ioapic_ahead`, which needs every vCPU's ahead half done with its LAPIC.
  void restore_ahead(const VmFd& vm, bool ioapic_ahead) const;
  /// The IOAPIC unless restore_ahead() took it (same `ioapic_ahead`), then PIT and kvmclock,
  /// after every vCPU's live half.
  void restore_live(const VmFd& vm, bool ioapic_ahead) const;

 private:
  void restore_ioapic(const VmFd& vm) const;
};

/// Field-by-field equality (padding and reserved bytes ignored).
bool operator==(const VmKernelState& a, const VmKernelState& b);

}  // namespace forkvm::state
