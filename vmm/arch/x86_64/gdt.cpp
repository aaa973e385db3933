#include "vmm/arch/x86_64/gdt.hpp"

#include "memory/guest_memory.hpp"

namespace forkvm::x86 {
namespace {

uint8_t bits(uint64_t value, unsigned shift, uint64_t mask) {
  return static_cast<uint8_t>((value >> shift) & mask);
}

}  // namespace

kvm_segment segment_from_gdt(uint64_t entry, uint16_t index) {
  kvm_segment seg{};
  seg.base = ((entry >> 16) & 0x00ffffffu) | (((entry >> 56) & 0xffu) << 24);
  const auto raw_limit =
      static_cast<uint32_t>((entry & 0xffffu) | (((entry >> 48) & 0xfu) << 16));
  seg.g = bits(entry, 55, 1);
  // SDM §3.4.5: with G=1 the 20-bit limit counts 4 KiB units, the low 12 bits all ones.
  seg.limit = seg.g != 0 ? (raw_limit << 12) | 0xfffu : raw_limit;
  seg.selector = static_cast<uint16_t>(index * 8u);
  seg.type = bits(entry, 40, 0xf);
  seg.s = bits(entry, 44, 1);
  seg.dpl = bits(entry, 45, 3);
  seg.present = bits(entry, 47, 1);
  seg.avl = bits(entry, 52, 1);
  seg.l = bits(entry, 53, 1);
  seg.db = bits(entry, 54, 1);
  seg.unusable = seg.present != 0 ? 0 : 1;
  return seg;
}

void write_gdt_and_idt(const GuestMemory& mem) {
  mem.write_obj(layout::kGdtStart, boot_gdt());
  mem.write_obj(layout::kIdtStart, uint64_t{0});
}

}  // namespace forkvm::x86
