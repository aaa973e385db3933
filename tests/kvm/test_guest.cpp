#include "tests/kvm/test_guest.hpp"

#include <variant>

#include "vmm/arch/x86_64/gdt.hpp"
#include "vmm/arch/x86_64/page_tables.hpp"
#include "vmm/arch/x86_64/regs.hpp"

namespace forkvm::test {

TestGuest::TestGuest(const std::vector<uint8_t>& code)
    : kvm(KvmSystem::open()),
      vm(kvm.create_vm()),
      memory(GuestMemory::create_anonymous(32ull << 20)),
      vcpu([this] {
        vm.set_tss_addr(0xfffbd000);
        vm.set_user_memory_region(0, 0, memory.size(), memory.regions()[0].host);
        return vm.create_vcpu(0);
      }()) {
  memory.write(kCodeStart, code);
  x86::write_gdt_and_idt(memory);
  const uint64_t cr3 = x86::write_identity_page_tables(memory);
  vcpu.set_sregs(x86::boot_sregs(vcpu.get_sregs(), cr3));
  kvm_regs regs = x86::boot_regs(kCodeStart);
  regs.rsp = 0x80000;
  vcpu.set_regs(regs);
}

std::vector<std::string> TestGuest::run_until_hlt(size_t max_exits) {
  std::vector<std::string> seen;
  for (size_t i = 0; i < max_exits; ++i) {
    const VcpuExit exit = vcpu.run();
    seen.push_back(describe(exit));
    if (std::holds_alternative<Hlt>(exit)) break;
    if (dispatch(exit, pio, mmio) != ExitAction::kContinue) break;
  }
  return seen;
}

void RecordingDevice::read(uint64_t offset, std::span<uint8_t> data) {
  for (auto& b : data) b = next_read_byte;
  ++next_read_byte;
  accesses.push_back({false, offset, {data.begin(), data.end()}});
}

void RecordingDevice::write(uint64_t offset, std::span<const uint8_t> data) {
  accesses.push_back({true, offset, {data.begin(), data.end()}});
}

}  // namespace forkvm::test
