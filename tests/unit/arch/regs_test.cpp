#include "vmm/arch/x86_64/regs.hpp"

#include <gtest/gtest.h>

#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

TEST(Regs, BootRegisters) {
  const kvm_regs r = boot_regs(0x1000200);
  EXPECT_EQ(r.rip, 0x1000200u);
  EXPECT_EQ(r.rsp, layout::kBootStackPointer);
  EXPECT_EQ(r.rbp, layout::kBootStackPointer);
  EXPECT_EQ(r.rsi, layout::kZeroPageStart);
  EXPECT_EQ(r.rflags, 2u);
  EXPECT_EQ(r.rax, 0u);
  EXPECT_EQ(r.rdi, 0u);
}

/// What KVM_GET_SREGS returns for a fresh vCPU (real-mode reset state).
kvm_sregs kvm_reset_sregs() {
  kvm_sregs s{};
  s.cr0 = 0x60000010;
  s.apic_base = 0xfee00900;
  s.cs.selector = 0xf000;
  s.cs.base = 0xffff0000;
  s.ldt.type = 2;
  return s;
}

TEST(Regs, SregsSwitchToLongMode) {
  const kvm_sregs s = boot_sregs(kvm_reset_sregs(), 0x9000);
  EXPECT_EQ(s.cr0, 0x60000010u | 0x1 | 0x80000000u);
  EXPECT_EQ(s.cr3, 0x9000u);
  EXPECT_EQ(s.cr4 & kCr4Pae, kCr4Pae);
  EXPECT_EQ(s.efer, kEferLme | kEferLma);
  EXPECT_EQ(s.gdt.base, layout::kGdtStart);
  EXPECT_EQ(s.gdt.limit, 31);
  EXPECT_EQ(s.idt.base, layout::kIdtStart);
  EXPECT_EQ(s.idt.limit, 7);
  EXPECT_EQ(s.cs.selector, 0x08);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(s.cs.base, 0u);
  for (const kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) {
    EXPECT_EQ(seg->selector, 0x10);
    EXPECT_EQ(seg->limit, 0xffffffffu);
    EXPECT_EQ(seg->present, 1);
  }
  EXPECT_EQ(s.tr.selector, 0x18);
  EXPECT_EQ(s.tr.type, 0xb);
  // Kept from KVM.
  EXPECT_EQ(s.apic_base, 0xfee00900u);
  EXPECT_EQ(s.ldt.type, 2);
}

TEST(Regs, Fpu) {
  const kvm_fpu f = boot_fpu();
  EXPECT_EQ(f.fcw, 0x37f);
  EXPECT_EQ(f.mxcsr, 0x1f80u);
  EXPECT_EQ(f.fsw, 0);
}

}  // namespace
}  // namespace forkvm::x86
