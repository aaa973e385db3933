#include "vmm/arch/x86_64/lapic.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace forkvm::x86 {
namespace {

void put(kvm_lapic_state& s, uint32_t off, uint32_t v) { std::memcpy(s.regs + off, &v, 4); }

TEST(Lapic, SetsLint0ExtIntAndLint1Nmi) {
  kvm_lapic_state s{};
  put(s, kApicLvt0, 0x00010000);       // masked, fixed mode (KVM's reset value)
  put(s, kApicLvt1, 0x00010000 | 0x500);  // masked, some other mode
  put(s, 0x20, 0x12345678);             // APIC ID register: untouched
  const kvm_lapic_state out = with_boot_lints(s);
  EXPECT_EQ(lapic_reg(out, kApicLvt0), 0x00010700u);
  EXPECT_EQ(lapic_reg(out, kApicLvt1), 0x00010400u);
  EXPECT_EQ(lapic_reg(out, 0x20), 0x12345678u);
  EXPECT_EQ(std::memcmp(out.regs + 0x370, s.regs + 0x370, 0x400 - 0x370), 0);
}

TEST(Lapic, OutOfRangeReadIsZero) {
  kvm_lapic_state s{};
  std::memset(s.regs, 0xff, sizeof s.regs);
  EXPECT_EQ(lapic_reg(s, 0x3fd), 0u);
  EXPECT_EQ(lapic_reg(s, 0x3fc), 0xffffffffu);
}

}  // namespace
}  // namespace forkvm::x86
