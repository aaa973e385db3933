// The counting guest of the kvm-tier fork tests: a one-vCPU VM with in-kernel irqchip and PIT
// (built in the order a restored VM is) running a tiny long-mode loop that counts in RBX,
// mirrors the count to guest memory and reports each value with an OUT. Used by
// fork_state_test.cpp (state capture/restore over a manual memfd copy) and
// memory_fork_test.cpp (GuestMemory::freeze / map_image).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "memory/guest_memory.hpp"
#include "vmm/arch/x86_64/gdt.hpp"
#include "vmm/arch/x86_64/page_tables.hpp"
#include "vmm/arch/x86_64/regs.hpp"
#include "vmm/exit_dispatch.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/state/machine_state.hpp"
#include "vmm/state/msr_list.hpp"

namespace forkvm::test {

inline constexpr uint64_t kCountingMemSize = 32ull << 20;
inline constexpr uint64_t kCountingCode = 0x100000;
/// Where the guest mirrors its count (guest-physical == file offset: below 3 GiB).
inline constexpr uint64_t kCountingCounter = 0x200000;
inline constexpr uint16_t kCountingPort = 0x99;

// The count lives in RBX (so a child that lost its registers would report the wrong numbers)
// and is mirrored to memory at kCountingCounter (so memory isolation is visible):
// loop: inc rbx; mov [kCountingCounter], rbx; mov eax, ebx; out kCountingPort, eax; jmp loop
inline const std::vector<uint8_t> kCountingGuest = {
    0x48, 0xff, 0xc3,                                // inc rbx
    0x48, 0x89, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00,  // mov [0x200000], rbx
    0x89, 0xd8,                                      // mov eax, ebx
    0xe7, kCountingPort,                             // out 0x99, eax
    0xeb, 0xef,                                      // jmp -17 (to loop)
};

/// A VM with in-kernel irqchip and PIT, as a restored VM is built: memory slot first (cheap
/// before the irqchip), then irqchip, PIT, vCPU.
struct Machine {
  Machine(const KvmSystem& kvm, GuestMemory mem)
      : memory(std::move(mem)), vm(kvm.create_vm()), vcpu([&] {
          vm.set_tss_addr(0xfffbd000);
          map_memory();
          vm.create_irqchip();
          vm.create_pit2();
          return vm.create_vcpu(0);
        }()) {}

  void map_memory() { vm.set_user_memory_region(0, 0, memory.size(), memory.regions()[0].host); }

  /// Moves the VM onto `mem` (same layout): a slot's host address cannot change, so the slot is
  /// deleted and created again.
  void remap(GuestMemory mem) {
    vm.set_user_memory_region(0, 0, 0, nullptr);
    memory = std::move(mem);
    map_memory();
  }

  /// Loads the counting guest and sets up 64-bit mode with RBX = `start`: the first OUT
  /// reports start + 1.
  void boot(const KvmSystem& kvm, uint64_t start) {
    memory.write(kCountingCode, kCountingGuest);
    x86::write_gdt_and_idt(memory);
    const uint64_t cr3 = x86::write_identity_page_tables(memory);
    vcpu.set_cpuid2(kvm.supported_cpuid());
    vcpu.set_sregs(x86::boot_sregs(vcpu.get_sregs(), cr3));
    kvm_regs regs = x86::boot_regs(kCountingCode);
    regs.rsp = 0x80000;
    regs.rbx = start;
    vcpu.set_regs(regs);
  }

  /// Runs until `n` OUTs to kCountingPort were seen; returns the values reported. Any other
  /// exit fails the test.
  std::vector<uint32_t> run_counts(int n) {
    std::vector<uint32_t> seen;
    for (int guard = 0; static_cast<int>(seen.size()) < n && guard < 100 * n; ++guard) {
      const VcpuExit exit = vcpu.run();
      if (const auto* out = std::get_if<IoOut>(&exit)) {
        EXPECT_EQ(out->port, kCountingPort);
        uint32_t v = 0;
        std::memcpy(&v, out->data.data(), std::min<size_t>(4, out->data.size()));
        seen.push_back(v);
      } else if (!std::holds_alternative<Interrupted>(exit)) {
        ADD_FAILURE() << "unexpected exit: " << describe(exit);
        break;
      }
    }
    // Finish the last OUT so that RIP is past it before anyone reads state.
    EXPECT_TRUE(vcpu.complete_pending_io());
    return seen;
  }

  state::MachineState capture(std::span<const uint32_t> msrs) const {
    const VcpuFd* v[] = {&vcpu};
    return state::MachineState::capture(vm, v, msrs);
  }
  void restore(const state::MachineState& s) const {
    const VcpuFd* v[] = {&vcpu};
    s.restore(vm, v);
  }

  uint64_t counter() const { return memory.read_obj<uint64_t>(kCountingCounter); }

  GuestMemory memory;
  VmFd vm;
  VcpuFd vcpu;
};

/// The values a run of `n` steps reports after the count `from`: from+1 .. from+n.
inline std::vector<uint32_t> counts_after(uint64_t from, int n) {
  std::vector<uint32_t> want;
  for (int k = 1; k <= n; ++k) want.push_back(static_cast<uint32_t>(from + static_cast<uint64_t>(k)));
  return want;
}

/// Zeroes what legitimately moves between two captures of the same paused machine: the TSC,
/// kvmclock and the host time the PIT counted from.
inline state::MachineState without_clocks(state::MachineState s) {
  for (auto& v : s.vcpus) {
    for (auto& m : v.msrs) {
      if (m.index == state::msr::kTsc) m.data = 0;
    }
  }
  s.vm.clock = {};
  for (auto& c : s.vm.pit.channels) c.count_load_time = 0;
  return s;
}

}  // namespace forkvm::test
