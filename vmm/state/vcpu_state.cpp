#include "vmm/state/vcpu_state.hpp"

#include <cstring>
#include <string>

#include "forkvm/errors.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/state/msr_list.hpp"

namespace forkvm::state {

VcpuState VcpuState::capture(const VmFd& vm, const VcpuFd& vcpu, std::span<const uint32_t> msrs) {
  VcpuState s;
  s.tsc_khz = vcpu.get_tsc_khz();
  s.cpuid = vcpu.get_cpuid2();
  s.mp_state = vcpu.get_mp_state();
  s.regs = vcpu.get_regs();
  s.sregs = vcpu.get_sregs();
  s.xsave = vcpu.get_xsave(vm.xsave2_size());
  s.xcrs = vcpu.get_xcrs();
  s.debugregs = vcpu.get_debugregs();
  s.lapic = vcpu.get_lapic();
  s.msrs.resize(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) s.msrs[i].index = msrs[i];
  // KVM_GET_MSRS stops at the first MSR it cannot read and returns how many it did: a short
  // count would silently drop state, so it is an error naming the MSR.
  const size_t got = vcpu.get_msrs(s.msrs);
  if (got != s.msrs.size()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", s.msrs[got].index);
    throw KvmError(std::string("KVM_GET_MSRS read ") + std::to_string(got) + " of " +
                       std::to_string(s.msrs.size()) + " MSRs; MSR " + hex + " is not readable",
                   EINVAL);
  }
  restore_order(s.msrs);
  s.events = vcpu.get_vcpu_events();
  s.events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
  return s;
}

void VcpuState::restore(const VmFd& vm, const VcpuFd& vcpu) const {
  restore_ahead(vm, vcpu);
  restore_live(vcpu);
}

namespace {

// The LVT timer register and the timer's initial count (TMICT) in the LAPIC register page as
// KVM_GET_LAPIC lays it out (SDM Vol. 3A Table 10-1), and the LVT timer's TSC-deadline mode
// (bits 18:17 = 2, §10.5.4).
constexpr uint32_t kApicLvtTimer = 0x320;
constexpr uint32_t kApicTimerInitialCount = 0x380;
constexpr uint32_t kApicTimerTscDeadline = 0x2;

uint32_t apic_reg(const kvm_lapic_state& lapic, uint32_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, lapic.regs + offset, sizeof v);
  return v;
}

}  // namespace

bool restored_live(uint32_t index, bool lapic_ahead) {
  if (index == msr::kTsc || index == msr::kTscAdjust || index == msr::kTscDeadline) return true;
  const bool paravirtual = index == msr::kKvmWallClockOld || index == msr::kKvmSystemTimeOld ||
                           (index >= msr::kKvmPvFirst && index <= msr::kKvmPvLast);
  return paravirtual && !lapic_ahead;
}

bool VcpuState::lapic_ahead() const {
  // Values from the snapshot, read as KVM will take them (arch/x86/kvm/lapic.c): a TMICT of 0
  // stops the one-shot and periodic modes (no host timer); the TSC-deadline mode counts only
  // when TSC_DEADLINE is written (live half), and KVM honours that mode only when the guest's
  // CPUID offers it (leaf 1, ECX bit 24), else it takes the mode as one-shot and TMICT counts.
  if (apic_reg(lapic, kApicTimerInitialCount) == 0) return true;
  const uint32_t mode = (apic_reg(lapic, kApicLvtTimer) >> 17) & 3;
  if (mode != kApicTimerTscDeadline) return false;
  for (const auto& leaf : cpuid) {
    if (leaf.function == 1 && leaf.index == 0) return (leaf.ecx & (1u << 24)) != 0;
  }
  return false;
}

void VcpuState::restore_ahead(const VmFd& vm, const VcpuFd& vcpu) const {
  const uint32_t xsave2 = vm.xsave2_size();
  const size_t host_xsave = std::max<size_t>(kXsaveLegacySize, xsave2);
  if (xsave.size() > host_xsave) {
    throw SnapshotError("vcpu state: the XSAVE area is " + std::to_string(xsave.size()) +
                        " bytes but this host's KVM uses " + std::to_string(host_xsave) +
                        " (the snapshot uses extended state this host does not offer)");
  }
  // Step 0 only when needed: KVM_SET_TSC_KHZ to a different frequency needs TSC scaling.
  if (tsc_khz != 0 && tsc_khz != vcpu.get_tsc_khz()) vcpu.set_tsc_khz(tsc_khz);
  vcpu.set_cpuid2(cpuid);                    // 1
  vcpu.set_mp_state(mp_state);               // 2
  vcpu.set_regs(regs);                       // 3
  vcpu.set_sregs(sregs);                     // 4
  vcpu.set_xsave(xsave, xsave2);             // 5
  vcpu.set_xcrs(xcrs);                       // 6
  vcpu.set_debugregs(debugregs);             // 7
  const bool early = lapic_ahead();
  if (early) vcpu.set_lapic(lapic);          // 8, when no LAPIC timer runs on host time
  std::vector<kvm_msr_entry> ahead;          // 9, the MSRs that do not move with time
  ahead.reserve(msrs.size());
  for (const auto& e : msrs) {
    if (!restored_live(e.index, early)) ahead.push_back(e);
  }
  restore_order(ahead);  // order enforced here, whatever the input
  if (!ahead.empty()) vcpu.set_msrs(ahead);
  if (early) vcpu.set_vcpu_events(events);   // 10
}

void VcpuState::restore_live(const VcpuFd& vcpu) const {
  const bool early = lapic_ahead();  // the same split as restore_ahead()'s
  if (!early) vcpu.set_lapic(lapic);         // 8
  std::vector<kvm_msr_entry> live;           // 9, the TSC's: TSC first, TSC_DEADLINE last
  for (const auto& e : msrs) {
    if (restored_live(e.index, early)) live.push_back(e);
  }
  restore_order(live);
  if (!live.empty()) vcpu.set_msrs(live);
  if (!early) vcpu.set_vcpu_events(events);  // 10
}

namespace {

bool same_segment(const kvm_segment& a, const kvm_segment& b) {
  return a.base == b.base && a.limit == b.limit && a.selector == b.selector && a.type == b.type &&
         a.present == b.present && a.dpl == b.dpl && a.db == b.db && a.s == b.s && a.l == b.l &&
         a.g == b.g && a.avl == b.avl && a.unusable == b.unusable;
}

bool same_sregs(const kvm_sregs& a, const kvm_sregs& b) {
  const kvm_segment* sa[] = {&a.cs, &a.ds, &a.es, &a.fs, &a.gs, &a.ss, &a.tr, &a.ldt};
  const kvm_segment* sb[] = {&b.cs, &b.ds, &b.es, &b.fs, &b.gs, &b.ss, &b.tr, &b.ldt};
  for (int i = 0; i < 8; ++i) {
    if (!same_segment(*sa[i], *sb[i])) return false;
  }
  return a.gdt.base == b.gdt.base && a.gdt.limit == b.gdt.limit && a.idt.base == b.idt.base &&
         a.idt.limit == b.idt.limit && a.cr0 == b.cr0 && a.cr2 == b.cr2 && a.cr3 == b.cr3 &&
         a.cr4 == b.cr4 && a.cr8 == b.cr8 && a.efer == b.efer && a.apic_base == b.apic_base &&
         std::memcmp(a.interrupt_bitmap, b.interrupt_bitmap, sizeof a.interrupt_bitmap) == 0;
}

bool same_events(const kvm_vcpu_events& a, const kvm_vcpu_events& b) {
  return a.exception.injected == b.exception.injected && a.exception.nr == b.exception.nr &&
         a.exception.has_error_code == b.exception.has_error_code &&
         a.exception.pending == b.exception.pending &&
         a.exception.error_code == b.exception.error_code &&
         a.interrupt.injected == b.interrupt.injected && a.interrupt.nr == b.interrupt.nr &&
         a.interrupt.soft == b.interrupt.soft && a.interrupt.shadow == b.interrupt.shadow &&
         a.nmi.injected == b.nmi.injected && a.nmi.pending == b.nmi.pending &&
         a.nmi.masked == b.nmi.masked && a.sipi_vector == b.sipi_vector && a.flags == b.flags &&
         a.smi.smm == b.smi.smm && a.smi.pending == b.smi.pending &&
         a.smi.smm_inside_nmi == b.smi.smm_inside_nmi && a.smi.latched_init == b.smi.latched_init &&
         a.triple_fault.pending == b.triple_fault.pending &&
         a.exception_has_payload == b.exception_has_payload &&
         a.exception_payload == b.exception_payload;
}

}  // namespace

bool operator==(const VcpuState& a, const VcpuState& b) {
  auto same_cpuid = [](const kvm_cpuid_entry2& x, const kvm_cpuid_entry2& y) {
    return x.function == y.function && x.index == y.index && x.flags == y.flags &&
           x.eax == y.eax && x.ebx == y.ebx && x.ecx == y.ecx && x.edx == y.edx;
  };
  auto same_msr = [](const kvm_msr_entry& x, const kvm_msr_entry& y) {
    return x.index == y.index && x.data == y.data;
  };
  bool xcrs_equal = a.xcrs.nr_xcrs == b.xcrs.nr_xcrs && a.xcrs.flags == b.xcrs.flags;
  for (uint32_t i = 0; xcrs_equal && i < a.xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i) {
    xcrs_equal = a.xcrs.xcrs[i].xcr == b.xcrs.xcrs[i].xcr &&
                 a.xcrs.xcrs[i].value == b.xcrs.xcrs[i].value;
  }
  return a.tsc_khz == b.tsc_khz &&
         std::equal(a.cpuid.begin(), a.cpuid.end(), b.cpuid.begin(), b.cpuid.end(), same_cpuid) &&
         a.mp_state.mp_state == b.mp_state.mp_state &&
         std::memcmp(&a.regs, &b.regs, sizeof a.regs) == 0 && same_sregs(a.sregs, b.sregs) &&
         a.xsave == b.xsave && xcrs_equal &&
         std::memcmp(a.debugregs.db, b.debugregs.db, sizeof a.debugregs.db) == 0 &&
         a.debugregs.dr6 == b.debugregs.dr6 && a.debugregs.dr7 == b.debugregs.dr7 &&
         a.debugregs.flags == b.debugregs.flags &&
         std::memcmp(a.lapic.regs, b.lapic.regs, sizeof a.lapic.regs) == 0 &&
         std::equal(a.msrs.begin(), a.msrs.end(), b.msrs.begin(), b.msrs.end(), same_msr) &&
         same_events(a.events, b.events);
}

}  // namespace forkvm::state
