// TestGuest: a tiny hand-assembled long-mode guest on a real /dev/kvm, no OS. The fixture sets
// up 64-bit mode with forkvm's own boot GDT, page tables and register setup, places the code
// at 1 MiB, and runs it through the real decode (VcpuFd::run) and dispatch() until HLT.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "devices/bus.hpp"
#include "memory/guest_memory.hpp"
#include "vmm/exit_dispatch.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace forkvm::test {

/// Guest-physical address the code is loaded at (and RIP starts at).
inline constexpr uint64_t kCodeStart = 0x100000;
/// An address with no RAM behind it, so accesses there become MMIO exits.
inline constexpr uint64_t kMmioBase = 0xd0000000;

/// A one-vCPU VM without an irqchip (so HLT exits to userspace) running `code`.
class TestGuest {
 public:
  explicit TestGuest(const std::vector<uint8_t>& code);

  /// Runs until HLT, a non-I/O exit, or `max_exits` exits; returns the decoded exits seen, as
  /// their describe() strings, ending with the one that stopped the loop.
  std::vector<std::string> run_until_hlt(size_t max_exits = 1000);

  Bus pio{"pio", 0xff};
  Bus mmio{"mmio", 0};
  KvmSystem kvm;
  VmFd vm;
  GuestMemory memory;
  VcpuFd vcpu;
};

/// A device that records every access and answers reads from a script.
class RecordingDevice : public BusDevice {
 public:
  struct Access {
    bool write;
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  std::vector<Access> accesses;
  uint8_t next_read_byte = 0x5a;  ///< every read fills its bytes with this, then increments it
};

}  // namespace forkvm::test
