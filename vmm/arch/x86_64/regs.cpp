#include "vmm/arch/x86_64/regs.hpp"

#include "memory/layout.hpp"
#include "vmm/arch/x86_64/gdt.hpp"

namespace forkvm::x86 {

kvm_regs boot_regs(uint64_t entry) {
  kvm_regs regs{};
  regs.rip = entry;
  regs.rsp = layout::kBootStackPointer;
  regs.rbp = layout::kBootStackPointer;
  regs.rsi = layout::kZeroPageStart;
  regs.rflags = kBootRflags;
  return regs;
}

kvm_sregs boot_sregs(const kvm_sregs& kvm_default, uint64_t cr3) {
  constexpr auto gdt = boot_gdt();
  kvm_sregs sregs = kvm_default;
  const kvm_segment code = segment_from_gdt(gdt[kGdtCodeIndex], kGdtCodeIndex);
  const kvm_segment data = segment_from_gdt(gdt[kGdtDataIndex], kGdtDataIndex);
  sregs.cs = code;
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
  sregs.tr = segment_from_gdt(gdt[kGdtTssIndex], kGdtTssIndex);

  sregs.gdt.base = layout::kGdtStart;
  sregs.gdt.limit = static_cast<uint16_t>(layout::kGdtEntries * 8 - 1);
  sregs.idt.base = layout::kIdtStart;
  sregs.idt.limit = 8 - 1;

  sregs.cr0 |= kCr0Pe | kCr0Et | kCr0Pg;
  sregs.cr3 = cr3;
  sregs.cr4 |= kCr4Pae;
  sregs.efer |= kEferLme | kEferLma;
  return sregs;
}

kvm_fpu boot_fpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  return fpu;
}

}  // namespace forkvm::x86
