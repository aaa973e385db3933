// Sample vmm/state values for the unit tests: every field group set to something other than
// its default, so that a codec that drops or mangles a field is caught.
#pragma once

#include <cstdint>

#include "vmm/state/machine_state.hpp"

namespace forkvm::state {

inline VcpuState sample_vcpu(uint64_t seed) {
  VcpuState s;
  s.tsc_khz = 2'000'000;
  kvm_cpuid_entry2 leaf{};
  leaf.function = 7;
  leaf.index = 0;
  leaf.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  leaf.ebx = 0x20;
  s.cpuid = {leaf};
  leaf.function = 0x80000001;
  leaf.flags = 0;
  leaf.edx = 0x20000000;
  s.cpuid.push_back(leaf);
  s.mp_state.mp_state = KVM_MP_STATE_HALTED;
  s.regs.rax = seed;
  s.regs.rip = 0x100000 + seed;
  s.regs.rflags = 0x202;
  s.regs.r15 = UINT64_MAX;  // the full 64-bit range survives JSON
  s.sregs.cs = {0, 0xffffffff, 0x10, 11, 1, 0, 0, 1, 1, 1, 0, 0, 0};
  s.sregs.ss = {0, 0xffffffff, 0x18, 3, 1, 0, 1, 1, 0, 1, 0, 0, 0};
  s.sregs.tr.type = 11;
  s.sregs.ldt.unusable = 1;
  s.sregs.gdt = {0x500, 0x1f, {}};
  s.sregs.cr0 = 0x80050033;
  s.sregs.cr3 = 0x9000;
  s.sregs.cr4 = 0x3020;
  s.sregs.efer = 0xd01;
  s.sregs.apic_base = 0xfee00900;
  s.sregs.interrupt_bitmap[3] = 1ull << 63;
  s.xsave.assign(kXsaveLegacySize, 0);
  for (size_t i = 0; i < s.xsave.size(); ++i) s.xsave[i] = static_cast<uint8_t>(i * 7 + seed);
  s.xcrs.nr_xcrs = 1;
  s.xcrs.xcrs[0].xcr = 0;
  s.xcrs.xcrs[0].value = 7;
  s.debugregs.db[2] = 0x1234;
  s.debugregs.dr6 = 0xffff0ff0;
  s.debugregs.dr7 = 0x400;
  for (size_t i = 0; i < sizeof s.lapic.regs; ++i) s.lapic.regs[i] = static_cast<char>(i);
  s.msrs = {{0x10, 0, 123456789}, {0x4b564d01, 0, 0x7001}, {0x6e0, 0, 99}};
  s.events.exception.nr = 14;
  s.events.exception.has_error_code = 1;
  s.events.exception.error_code = 2;
  s.events.interrupt.shadow = 1;
  s.events.nmi.masked = 1;
  s.events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
  return s;
}

inline VmKernelState sample_vm() {
  VmKernelState s;
  s.pic_master.irq_base = 0x20;
  s.pic_master.imr = 0xfb;
  s.pic_master.elcr_mask = 0xf8;
  s.pic_master.init4 = 1;
  s.pic_slave.irq_base = 0x28;
  s.pic_slave.init_state = 2;
  s.ioapic.base_address = 0xfec00000;
  s.ioapic.id = 0;
  s.ioapic.irr = 0x10;
  for (int i = 0; i < KVM_IOAPIC_NUM_PINS; ++i) s.ioapic.redirtbl[i].bits = 0x10000u + i;
  s.pit.channels[0].count = 0x10000;
  s.pit.channels[0].mode = 2;
  s.pit.channels[0].rw_mode = 3;
  s.pit.channels[0].gate = 1;
  s.pit.channels[0].count_load_time = -5;
  s.pit.flags = 0;
  s.clock.clock = 987654321;
  s.clock.flags = 2 | 4;
  s.clock.realtime = 1'700'000'000'000'000'000ull;
  return s;
}

inline MachineState sample_machine() {
  MachineState m;
  m.vcpus = {sample_vcpu(1), sample_vcpu(2)};
  m.vm = sample_vm();
  return m;
}

}  // namespace forkvm::state
