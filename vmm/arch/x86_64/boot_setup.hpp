// Everything in guest memory that a Linux kernel needs to start through the 64-bit boot
// protocol (Documentation/x86/boot.rst "64-bit Boot Protocol"), written in one call: kernel,
// initramfs, command line, zero page with the e820 map, identity page tables, GDT/IDT and the
// MP table. The VM assembler then gives every vCPU the state from BootPlan plus its own
// normalize_cpuid() / boot_msrs() / with_boot_lints() (cpuid.hpp, msrs.hpp, lapic.hpp).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>

#include "vmm/arch/x86_64/kernel_loader.hpp"

namespace forkvm::x86 {

/// What to boot.
struct BootConfig {
  std::string kernel_path;                ///< bzImage or ELF vmlinux
  std::optional<std::string> initrd_path;  ///< initramfs (cpio, optionally compressed)
  std::string cmdline;                    ///< kernel command line, without the NUL
  uint32_t vcpu_count = 1;                ///< 1..kMaxVcpus; one MP-table processor each
};

/// Where things landed, and the register state every vCPU starts with.
struct BootPlan {
  LoadedKernel kernel;
  std::optional<LoadedInitrd> initrd;
  uint64_t cr3 = 0;  ///< identity page tables

  /// General-purpose registers for every vCPU (boot_regs(kernel.entry)).
  kvm_regs regs() const;
  /// `kvm_default` (KVM_GET_SREGS of a fresh vCPU) switched to 64-bit mode (boot_sregs).
  kvm_sregs sregs(const kvm_sregs& kvm_default) const;
  /// FPU state for every vCPU (boot_fpu).
  kvm_fpu fpu() const;
};

/// Validates `config` (ConfigError for a vCPU count outside 1..kMaxVcpus, a command line too
/// long for the kernel, or guest RAM not starting at 0 above 1 MiB) and writes the boot
/// structures into `mem`: kernel (load_kernel), initramfs (load_initrd), command line at
/// kCmdlineStart, zero page at kZeroPageStart, page tables at kPml4Start, GDT at kGdtStart,
/// IDT at kIdtStart, MP table at kMpTableStart. Throws ImageError for a bad kernel or
/// initramfs. On error guest memory may be partly written; the caller discards the VM.
BootPlan prepare_linux_boot(const GuestMemory& mem, const BootConfig& config);

}  // namespace forkvm::x86
