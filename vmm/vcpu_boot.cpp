#include "vmm/vcpu_boot.hpp"

#include "vmm/arch/x86_64/cpuid.hpp"
#include "vmm/arch/x86_64/lapic.hpp"
#include "vmm/arch/x86_64/msrs.hpp"

namespace forkvm {

void configure_vcpu_for_boot(const VcpuFd& vcpu, uint32_t index, uint32_t count,
                             std::span<const kvm_cpuid_entry2> supported_cpuid,
                             bool tsc_deadline, const x86::BootPlan& plan) {
  x86::CpuidConfig cpuid_config;
  cpuid_config.vcpu_index = index;
  cpuid_config.vcpu_count = count;
  cpuid_config.tsc_deadline = tsc_deadline;
  // Linux 6.1 on KVM takes the TSC frequency from kvm-clock (KVM_FEATURE_CLOCKSOURCE2 is passed
  // through), which is what spares it a PIT calibration; leaf 0x40000010 is filled anyway in
  // the common hypervisor format for guests that read it (see cpuid.hpp).
  cpuid_config.tsc_khz = vcpu.get_tsc_khz();
  vcpu.set_cpuid2(x86::normalize_cpuid(supported_cpuid, cpuid_config));
  vcpu.set_msrs(x86::boot_msrs());
  vcpu.set_regs(plan.regs());
  vcpu.set_sregs(plan.sregs(vcpu.get_sregs()));
  vcpu.set_fpu(plan.fpu());
  vcpu.set_lapic(x86::with_boot_lints(vcpu.get_lapic()));
}

}  // namespace forkvm
