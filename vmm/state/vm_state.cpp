#include "vmm/state/vm_state.hpp"

#include <cstring>

#include "vmm/kvm/vm_fd.hpp"

namespace forkvm::state {

VmKernelState VmKernelState::capture(const VmFd& vm) {
  VmKernelState s;
  s.pic_master = vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER).chip.pic;
  s.pic_slave = vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE).chip.pic;
  s.ioapic = vm.get_irqchip(KVM_IRQCHIP_IOAPIC).chip.ioapic;
  s.pit = vm.get_pit2();
  s.clock = vm.get_clock();
  return s;
}

void VmKernelState::restore(const VmFd& vm) const {
  restore_ahead(vm, false);
  restore_live(vm, false);
}

void VmKernelState::restore_ioapic(const VmFd& vm) const {
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  chip.chip.ioapic = ioapic;
  vm.set_irqchip(chip);  // 3
}

void VmKernelState::restore_ahead(const VmFd& vm, bool ioapic_ahead) const {
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_PIC_MASTER;
  chip.chip.pic = pic_master;
  vm.set_irqchip(chip);  // 1
  chip = {};
  chip.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  chip.chip.pic = pic_slave;
  vm.set_irqchip(chip);  // 2
  if (ioapic_ahead) restore_ioapic(vm);
}

void VmKernelState::restore_live(const VmFd& vm, bool ioapic_ahead) const {
  if (!ioapic_ahead) restore_ioapic(vm);
  vm.set_pit2(pit);      // 4
  kvm_clock_data c{};    // 5: continue from the saved value (see the header)
  c.clock = clock.clock;
  c.flags = 0;
  vm.set_clock(c);
}

namespace {

bool same_pic(const kvm_pic_state& a, const kvm_pic_state& b) {
  return a.last_irr == b.last_irr && a.irr == b.irr && a.imr == b.imr && a.isr == b.isr &&
         a.priority_add == b.priority_add && a.irq_base == b.irq_base &&
         a.read_reg_select == b.read_reg_select && a.poll == b.poll &&
         a.special_mask == b.special_mask && a.init_state == b.init_state &&
         a.auto_eoi == b.auto_eoi && a.rotate_on_auto_eoi == b.rotate_on_auto_eoi &&
         a.special_fully_nested_mode == b.special_fully_nested_mode && a.init4 == b.init4 &&
         a.elcr == b.elcr && a.elcr_mask == b.elcr_mask;
}

bool same_channel(const kvm_pit_channel_state& a, const kvm_pit_channel_state& b) {
  return a.count == b.count && a.latched_count == b.latched_count &&
         a.count_latched == b.count_latched && a.status_latched == b.status_latched &&
         a.status == b.status && a.read_state == b.read_state && a.write_state == b.write_state &&
         a.write_latch == b.write_latch && a.rw_mode == b.rw_mode && a.mode == b.mode &&
         a.bcd == b.bcd && a.gate == b.gate && a.count_load_time == b.count_load_time;
}

}  // namespace

bool operator==(const VmKernelState& a, const VmKernelState& b) {
  bool pit = a.pit.flags == b.pit.flags;
  for (int i = 0; pit && i < 3; ++i) pit = same_channel(a.pit.channels[i], b.pit.channels[i]);
  bool ioapic = a.ioapic.base_address == b.ioapic.base_address &&
                a.ioapic.ioregsel == b.ioapic.ioregsel && a.ioapic.id == b.ioapic.id &&
                a.ioapic.irr == b.ioapic.irr;
  for (int i = 0; ioapic && i < KVM_IOAPIC_NUM_PINS; ++i) {
    ioapic = a.ioapic.redirtbl[i].bits == b.ioapic.redirtbl[i].bits;
  }
  return same_pic(a.pic_master, b.pic_master) && same_pic(a.pic_slave, b.pic_slave) && ioapic &&
         pit && a.clock.clock == b.clock.clock && a.clock.flags == b.clock.flags &&
         a.clock.realtime == b.clock.realtime && a.clock.host_tsc == b.clock.host_tsc;
}

}  // namespace forkvm::state
