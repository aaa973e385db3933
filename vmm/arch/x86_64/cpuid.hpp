// Per-vCPU CPUID normalization: turn what KVM_GET_SUPPORTED_CPUID reports into what one vCPU
// of an N-vCPU, one-socket, one-thread-per-core machine should see (KVM_SET_CPUID2). Modelled
// on Firecracker's docs/cpu_templates/cpuid-normalization.md. Bit positions: Intel SDM Vol. 2A
// "CPUID" (leaves 1, 4, 6, 0xA, 0xB, 0x1F) and AMD APM Vol. 3 Appendix E (0x80000001,
// 0x80000008, 0x8000001D, 0x8000001E). Pure data in, data out: no KVM calls.
//
// TSC frequency (leaf 0x40000010): Linux 6.1 does not read it on KVM. The only reader is
// arch/x86/kernel/cpu/vmware.c, and only when the hypervisor signature is "VMwareVMware" (and
// then only for ECX hypercall bits; the frequency comes from the VMware backdoor port). A KVM
// guest gets its TSC frequency from kvm-clock instead: kvmclock_init() sets
// x86_platform.calibrate_tsc = kvm_get_tsc_khz (pvclock), which also forces
// X86_FEATURE_TSC_KNOWN_FREQ, so no PIT calibration happens as long as
// KVM_FEATURE_CLOCKSOURCE(2) stays set in leaf 0x40000001 (it is passed through untouched).
// With TSC_DEADLINE set in leaf 1, calibrate_APIC_clock() also skips the PIT. The leaf is
// still filled (as QEMU's vmware-cpuid-freq does) for guests other than Linux 6.1.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace forkvm::x86 {

/// CPU vendor, from the leaf 0 vendor string.
enum class CpuVendor { Intel, Amd, Other };

/// "GenuineIntel" -> Intel; "AuthenticAMD" or "HygonGenuine" (an AMD derivative with AMD's
/// topology leaves) -> Amd; anything else, or no leaf 0, -> Other.
CpuVendor cpu_vendor(std::span<const kvm_cpuid_entry2> entries);

/// The hypervisor leaves (KVM's Documentation/virt/kvm/x86/cpuid.rst).
inline constexpr uint32_t kCpuidHypervisorBase = 0x40000000;
/// VMware/QEMU "timing information" leaf: EAX = TSC kHz, EBX = LAPIC bus kHz.
inline constexpr uint32_t kCpuidTimingLeaf = 0x40000010;
/// KVM's local APIC timer runs at 1 GHz (APIC_BUS_CYCLE_NS = 1 in arch/x86/kvm/lapic.h).
inline constexpr uint32_t kKvmApicBusKhz = 1000000;

/// Leaf 1 feature bits touched by normalization (SDM Vol. 2A Table 3-10 / 3-11).
inline constexpr uint32_t kCpuid1EcxPdcm = 1u << 15;
inline constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;
inline constexpr uint32_t kCpuid1EdxHtt = 1u << 28;

/// What one vCPU's CPUID is normalized for.
struct CpuidConfig {
  uint32_t vcpu_index = 0;     ///< this vCPU: its APIC ID and x2APIC ID
  uint32_t vcpu_count = 1;     ///< vCPUs in the VM: all cores of one package, 1 thread each
  bool tsc_deadline = false;   ///< KVM_CAP_TSC_DEADLINE_TIMER: force leaf 1 ECX[24] on
  uint32_t tsc_khz = 0;        ///< KVM_GET_TSC_KHZ; non-zero adds leaf 0x40000010
};

/// Returns `supported` normalized for `config`:
///  - leaf 1: EBX[31:24] initial APIC ID = index, EBX[23:16] = vcpu_count, EBX[15:8] CLFLUSH
///    = 8 (64 bytes); ECX: HYPERVISOR set, PDCM cleared, TSC_DEADLINE set if tsc_deadline;
///    EDX: HTT set iff vcpu_count > 1;
///  - leaf 0xB (if present or the max basic leaf reaches it) and 0x1F (if present): replaced by
///    an SMT level (1 thread, shift 0), a core level (vcpu_count cores, shift
///    ceil(log2 vcpu_count)) and an invalid level; EDX = x2APIC ID = index;
///  - leaf 6: turbo (EAX[1]) cleared;
///  - Intel: leaf 4 EAX[31:26] = vcpu_count - 1, EAX[25:14] = 0 for L1/L2 (per core) and
///    vcpu_count - 1 for L3+; leaf 0xA zeroed (no PMU);
///  - AMD: 0x80000001 ECX[1] CmpLegacy iff vcpu_count > 1; 0x80000008 ECX NC = vcpu_count - 1
///    and ApicIdSize = ceil(log2 vcpu_count); 0x8000001D sharing as leaf 4; 0x8000001E
///    extended APIC ID = core ID = index, one thread per core, node 0;
///  - KVM leaves 0x40000000/0x40000001 (signature, KVM_FEATURE_* bits) passed through; with
///    tsc_khz != 0 and a hypervisor leaf present, 0x40000010 = {tsc_khz, 1 GHz bus} and
///    0x40000000 EAX raised to at least 0x40000010.
/// Every other leaf is passed through. Throws ConfigError unless
/// 1 <= vcpu_count <= kMaxVcpus and vcpu_index < vcpu_count.
std::vector<kvm_cpuid_entry2> normalize_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                              const CpuidConfig& config);

}  // namespace forkvm::x86
