#include "vmm/arch/x86_64/lapic.hpp"

#include <cstring>

namespace forkvm::x86 {
namespace {

constexpr uint32_t kDeliveryModeMask = 0x7u << 8;

void set_lapic_reg(kvm_lapic_state& lapic, uint32_t offset, uint32_t value) {
  if (offset + sizeof value > sizeof lapic.regs) return;
  std::memcpy(lapic.regs + offset, &value, sizeof value);
}

uint32_t with_delivery_mode(uint32_t lvt, uint32_t mode) {
  return (lvt & ~kDeliveryModeMask) | (mode << 8);
}

}  // namespace

uint32_t lapic_reg(const kvm_lapic_state& lapic, uint32_t offset) {
  uint32_t value = 0;
  if (offset + sizeof value > sizeof lapic.regs) return 0;
  std::memcpy(&value, lapic.regs + offset, sizeof value);
  return value;
}

kvm_lapic_state with_boot_lints(const kvm_lapic_state& lapic) {
  kvm_lapic_state out = lapic;
  set_lapic_reg(out, kApicLvt0, with_delivery_mode(lapic_reg(lapic, kApicLvt0), kApicModeExtInt));
  set_lapic_reg(out, kApicLvt1, with_delivery_mode(lapic_reg(lapic, kApicLvt1), kApicModeNmi));
  return out;
}

}  // namespace forkvm::x86
