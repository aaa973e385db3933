// VcpuState: everything KVM holds for one x86-64 vCPU, captured while the vCPU is paused (not
// inside KVM_RUN) and restored into a freshly created vCPU of a VM that already has its
// in-kernel irqchip.
//
// Restore order (VcpuState::restore), Firecracker's (src/vmm/src/arch/x86_64/vcpu.rs), each step
// with the reason it cannot move:
//   0. TSC frequency (KVM_SET_TSC_KHZ, only when it differs): the TSC MSR value written in step 9
//      is scaled by it.
//   1. CPUID: KVM validates later state (XSAVE features, XCR0, MSRs such as SPEC_CTRL or
//      TSC_AUX) against the guest's CPUID.
//   2. MP_STATE.
//   3. REGS: KVM_SET_REGS clears pending exceptions, so it must precede VCPU_EVENTS.
//   4. SREGS: sets CR0/CR4/EFER and the APIC base (xAPIC/x2APIC mode), which LAPIC needs.
//   5. XSAVE (FPU, SSE, AVX, ... state), then
//   6. XCRS (XCR0): after XSAVE, whose header's component bitmap must agree with CPUID.
//   7. DEBUGREGS.
//   8. LAPIC: after SREGS (APIC mode) and before MSRS (TSC_DEADLINE arms the LAPIC timer only
//      when the LVT timer is already in TSC-deadline mode).
//   9. MSRS, in restore_order(): TSC first, TSC_DEADLINE last, ASYNC_PF_INT before _EN.
//  10. VCPU_EVENTS last: pending/injected exceptions, NMIs and interrupts, the interrupt shadow
//      and SMM state, which every earlier step could otherwise clear. (The TSC's three MSRs
//      touch none of it: a TSC_DEADLINE already passed only marks the timer's interrupt
//      pending in the LAPIC. So the split below may write them after this step.)
// Capture reads the same items in the same order. VM-wide state (irqchips, PIT, kvmclock) is
// restored after every vCPU: see machine_state.hpp.
//
// Restore comes in two halves, so that a VM prepared ahead of time (a template's pool) does the
// first while it waits and only the second on the fork's path. Where the split falls depends on
// the LAPIC timer (lapic_ahead()):
//   ahead (restore_ahead): steps 0-7 and the architectural MSRs of step 9 (SYSENTER, STAR and
//     LSTAR, KERNEL_GS_BASE, PAT, MTRRs, ...): nothing in them moves with time, and no later
//     step overwrites them (step 8 sets only the LAPIC's registers and timer; KVM checks these
//     MSRs against CPUID, step 1). When no LAPIC timer counts on host time (lapic_ahead()):
//     also step 8, KVM's paravirtual MSRs and step 10, in that order;
//   live (restore_live), right before the vCPU runs: the TSC, TSC_ADJUST and TSC_DEADLINE (it
//     arms a host timer against the TSC), in restore_order(). A TSC written early would have
//     run on while the VM waited. When the LAPIC timer does count on host time: first step 8
//     (KVM_SET_LAPIC restarts a one-shot or periodic count from now), then with the TSC's MSRs
//     the paravirtual ones, then step 10, all as in the one-piece order.
// The paravirtual MSRs (kvmclock's system time and wall clock, async page faults, steal time,
// PV EOI) follow step 8 in either case. Time does not move them: KVM fills kvmclock's page
// against the TSC and the clock at the vCPU's next entry, after KVM_SET_CLOCK (vm_state.hpp),
// and steal time counts from the vCPU thread's first run. Only the wall-clock MSR writes its
// page at once, against the VM's clock before KVM_SET_CLOCK, in either half: a guest reads that
// page at boot and resume, never while it runs (its wall clock after a restore is the host's
// business, vm_state.hpp).
// restore() is both halves back to back.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace forkvm {
class VcpuFd;
class VmFd;
}  // namespace forkvm

namespace forkvm::state {

/// Bytes of the legacy XSAVE area (struct kvm_xsave); KVM_CAP_XSAVE2 areas are larger.
inline constexpr size_t kXsaveLegacySize = 4096;
/// Upper bound accepted for an XSAVE area from a snapshot (AMX needs ~11 KiB).
inline constexpr size_t kXsaveMaxSize = 64 * 1024;
/// KVM_MAX_CPUID_ENTRIES.
inline constexpr size_t kMaxCpuidEntries = 256;
/// Upper bound on MSRs in one snapshot (KVM_GET_MSR_INDEX_LIST is far smaller).
inline constexpr size_t kMaxMsrs = 1024;

/// The complete KVM state of one vCPU.
struct VcpuState {
  uint32_t tsc_khz = 0;                   ///< KVM_GET_TSC_KHZ; 0 = unknown (then not restored)
  std::vector<kvm_cpuid_entry2> cpuid;    ///< KVM_GET_CPUID2: the leaves that were set
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<uint8_t> xsave;             ///< 4096 bytes, or the KVM_CAP_XSAVE2 size
  kvm_xcrs xcrs{};
  kvm_debugregs debugregs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;        ///< in restore_order()
  kvm_vcpu_events events{};

  /// Reads the state of `vcpu` (which must not be running) in the documented order. `msrs` are
  /// the indices to save (msrs_to_save()); KvmError if KVM_GET_MSRS does not return every one.
  /// VCPU_EVENTS are saved with KVM_VCPUEVENT_VALID_NMI_PENDING and _SIPI_VECTOR added to their
  /// flags, so that restoring them also restores a pending NMI and the SIPI vector.
  static VcpuState capture(const VmFd& vm, const VcpuFd& vcpu, std::span<const uint32_t> msrs);

  /// Writes this state into `vcpu` (of `vm`) in the documented order. Throws KvmError when KVM
  /// refuses a step (the message names the ioctl) and SnapshotError when the XSAVE area is
  /// larger than this host's KVM uses.
  void restore(const VmFd& vm, const VcpuFd& vcpu) const;
  /// The first half of restore() (file comment): everything that does not move with time.
  /// Throws as restore().
  void restore_ahead(const VmFd& vm, const VcpuFd& vcpu) const;
  /// The second half, after restore_ahead() and right before the vCPU runs: the TSC's MSRs,
  /// and the LAPIC, paravirtual MSRs and VCPU_EVENTS when lapic_ahead() is false. Throws
  /// KvmError.
  void restore_live(const VcpuFd& vcpu) const;
  /// True when KVM_SET_LAPIC starts no count on host time for this state, so the LAPIC, the
  /// paravirtual MSRs and VCPU_EVENTS go in the ahead half: the timer's initial count is 0, or
  /// it is in TSC-deadline mode (armed by TSC_DEADLINE, live half) and the state's CPUID offers
  /// that mode (else KVM runs the timer one-shot). Linux guests run the TSC-deadline mode
  /// wherever the CPU offers it.
  bool lapic_ahead() const;
};

/// Whether MSR `index` is restored in VcpuState's live half: the TSC, TSC_ADJUST and
/// TSC_DEADLINE always, KVM's paravirtual MSRs unless the LAPIC goes ahead (`lapic_ahead`,
/// VcpuState::lapic_ahead(); file comment).
bool restored_live(uint32_t index, bool lapic_ahead);

/// Field-by-field equality (padding ignored), for tests and save/restore/save checks.
bool operator==(const VcpuState& a, const VcpuState& b);

}  // namespace forkvm::state
