// ElfKernel: a tiny ELF "kernel" file for kvm tests that boot hand-assembled code through the
// real Vm path (VmConfig::kernel): one PT_LOAD holding the code, loaded and entered at 16 MiB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/unit/arch/arch_test_util.hpp"

namespace forkvm::test {

/// Where the code goes and starts (a vmlinux's usual physical start: 16 MiB).
inline constexpr uint64_t kElfEntry = 0x1000000;

/// An ELF file whose one PT_LOAD starts with `code`, loaded and entered at kElfEntry.
class ElfKernel {
 public:
  explicit ElfKernel(const std::vector<uint8_t>& code) : file_(bytes(code)) {}
  const std::string& path() const { return file_.path(); }

 private:
  static std::vector<uint8_t> bytes(const std::vector<uint8_t>& code) {
    x86::test::FakeElf elf;
    elf.entry = elf.paddr = elf.vaddr = kElfEntry;
    elf.code = code;
    return elf.bytes();
  }
  x86::test::TempFile file_;
};

}  // namespace forkvm::test
