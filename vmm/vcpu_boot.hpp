// Puts one vCPU into the state the 64-bit Linux boot protocol expects. Every vCPU gets the
// same registers; the application processors stay parked in KVM's in-kernel LAPIC until the
// kernel wakes them with INIT-SIPI (KVM makes vCPU 0 the bootstrap processor).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>

#include "vmm/arch/x86_64/boot_setup.hpp"
#include "vmm/kvm/vcpu_fd.hpp"

namespace forkvm {

/// Sets CPUID (normalized for this vCPU), the boot MSRs, regs, sregs, FPU and the LAPIC LINT
/// pins. The order is fixed: CPUID first, because KVM filters MSRs and features by the CPUID
/// it was given (Firecracker CHANGELOG, #6120); MSRs before registers.
void configure_vcpu_for_boot(const VcpuFd& vcpu, uint32_t index, uint32_t count,
                             std::span<const kvm_cpuid_entry2> supported_cpuid,
                             bool tsc_deadline, const x86::BootPlan& plan);

}  // namespace forkvm
