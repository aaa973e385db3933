#include "vmm/arch/x86_64/boot_setup.hpp"

#include <string>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/boot_params.hpp"
#include "vmm/arch/x86_64/gdt.hpp"
#include "vmm/arch/x86_64/mptable.hpp"
#include "vmm/arch/x86_64/page_tables.hpp"
#include "vmm/arch/x86_64/regs.hpp"

namespace forkvm::x86 {

kvm_regs BootPlan::regs() const { return boot_regs(kernel.entry); }

kvm_sregs BootPlan::sregs(const kvm_sregs& kvm_default) const {
  return boot_sregs(kvm_default, cr3);
}

kvm_fpu BootPlan::fpu() const { return boot_fpu(); }

BootPlan prepare_linux_boot(const GuestMemory& mem, const BootConfig& config) {
  // Caller-controlled checks that need no file go first, before anything is loaded.
  if (config.vcpu_count == 0 || config.vcpu_count > layout::kMaxVcpus) {
    throw ConfigError("vCPU count " + std::to_string(config.vcpu_count) + " is outside 1.." +
                      std::to_string(layout::kMaxVcpus));
  }
  build_e820(mem.regions());  // throws ConfigError for an unusable RAM layout

  BootPlan plan;
  plan.kernel = load_kernel(mem, config.kernel_path);
  if (config.cmdline.size() > plan.kernel.cmdline_max()) {
    // Checked again by write_cmdline; here so that a bad command line fails before the
    // initramfs, possibly large, is read.
    throw ConfigError("kernel command line is " + std::to_string(config.cmdline.size()) +
                      " bytes; this kernel accepts at most " +
                      std::to_string(plan.kernel.cmdline_max()));
  }
  if (config.initrd_path) plan.initrd = load_initrd(mem, *config.initrd_path, plan.kernel);

  ZeroPageConfig zero_page;
  zero_page.kernel_header = plan.kernel.header;
  zero_page.cmdline_size = write_cmdline(mem, config.cmdline, plan.kernel);
  if (plan.initrd) {
    // load_initrd keeps it in the region below the 3 GiB MMIO hole, so both fit in 32 bits.
    zero_page.initrd_gpa = static_cast<uint32_t>(plan.initrd->gpa);
    zero_page.initrd_size = static_cast<uint32_t>(plan.initrd->size);
  }
  write_boot_params(mem, build_boot_params(zero_page, mem.regions()));
  plan.cr3 = write_identity_page_tables(mem);
  write_gdt_and_idt(mem);
  write_mptable(mem, config.vcpu_count);
  return plan;
}

}  // namespace forkvm::x86
