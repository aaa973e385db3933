// A boot that never signals ready says where the guest is (issue 10): Vm::progress_report()
// and `forkvm boot --timeout` on a real /dev/kvm, with tiny ELF "kernels" that spin silently or
// print two bytes to COM1 first, so a stuck guest is told apart from a talkative one.
#include <elf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "forkvm/vm.hpp"
#include "tests/support/run_process.hpp"

namespace forkvm {
namespace {

/// Where the code goes and starts (a vmlinux's usual physical start: 16 MiB).
constexpr uint64_t kEntry = 0x1000000;

/// `jmp .`
const std::vector<uint8_t> kSpin = {0xeb, 0xfe};
/// mov dx, 0x3f8; mov al, 'h'; out dx, al; mov al, 'i'; out dx, al; jmp .
const std::vector<uint8_t> kHelloThenSpin = {0x66, 0xba, 0xf8, 0x03, 0xb0, 'h', 0xee,
                                             0xb0, 'i',  0xee, 0xeb, 0xfe};

/// An ELF64 executable with one PT_LOAD of `code` at kEntry, written to a fresh file.
class ElfKernel {
 public:
  explicit ElfKernel(const std::vector<uint8_t>& code) {
    path_ = (std::filesystem::temp_directory_path() /
             ("forkvm-stall-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".elf"))
                .string();
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = kEntry;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_flags = PF_R | PF_X;
    ph.p_offset = 0x1000;
    ph.p_vaddr = kEntry;
    ph.p_paddr = kEntry;
    ph.p_filesz = code.size();
    ph.p_memsz = code.size();
    ph.p_align = 0x1000;
    std::vector<char> file(0x1000 + code.size(), 0);
    std::memcpy(file.data(), &eh, sizeof eh);
    std::memcpy(file.data() + sizeof eh, &ph, sizeof ph);
    std::memcpy(file.data() + 0x1000, code.data(), code.size());
    std::ofstream(path_, std::ios::binary).write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  ~ElfKernel() { std::filesystem::remove(path_); }
  ElfKernel(const ElfKernel&) = delete;
  ElfKernel& operator=(const ElfKernel&) = delete;
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

std::unique_ptr<Vm> boot(const ElfKernel& kernel, uint32_t vcpus = 1) {
  VmConfig c;
  c.kernel = kernel.path();
  c.vcpus = vcpus;
  c.memory_mib = 64;
  auto vm = Vm::create(c);
  vm->start();
  return vm;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(BootStall, ASilentSpinningGuestIsReportedAsStuck) {
  ElfKernel kernel(kSpin);
  auto vm = boot(kernel);
  EXPECT_FALSE(vm->wait_ready(std::chrono::milliseconds(300)));
  const std::string report = vm->progress_report();
  EXPECT_TRUE(has(report, "wrote nothing to its console and never signalled ready")) << report;
  EXPECT_TRUE(has(report, "vCPU 0 (host thread ")) << report;
  EXPECT_TRUE(has(report, "long mode, RIP 0x1000000 (unchanged over 100 ms)")) << report;
  EXPECT_TRUE(has(report, "no vCPU moved")) << report;
  // The report let the guest run on: it is still spinning, not paused or stopped.
  EXPECT_FALSE(vm->wait(std::chrono::milliseconds(50)).has_value());
  EXPECT_EQ(vm->stop().reason, StopReason::kHostStop);
}

TEST(BootStall, AGuestThatPrintedIsReportedWithItsExits) {
  ElfKernel kernel(kHelloThenSpin);
  auto vm = boot(kernel, 2);
  EXPECT_FALSE(vm->wait_ready(std::chrono::milliseconds(300)));
  const std::string report = vm->progress_report();
  EXPECT_TRUE(has(report, "wrote 2 bytes to its console but never signalled ready")) << report;
  EXPECT_TRUE(has(report, "out 0x3f8/1; out 0x3f8/1")) << report;
  EXPECT_TRUE(has(report, "RIP 0x100000a")) << report;  // the jmp after the two OUTs
  EXPECT_TRUE(has(report, "vCPU 1 (host thread ")) << report;  // the AP, never started by the guest
  EXPECT_EQ(vm->console_tail(), "hi");
}

TEST(BootStall, APausedVmStaysPaused) {
  ElfKernel kernel(kSpin);
  auto vm = boot(kernel);
  vm->pause();
  const std::string report = vm->progress_report();
  EXPECT_TRUE(has(report, "RIP 0x1000000")) << report;
  // Still paused: the KVM_RUN count does not move while we wait.
  const std::string again = vm->progress_report();
  EXPECT_TRUE(has(again, "(0 in the last 100 ms)")) << again;
  vm->resume();
  vm->stop();
}

TEST(BootStall, TheCliSaysWhereTheGuestIsAtItsTimeout) {
  ElfKernel kernel(kSpin);
  const auto r = test::run_process(std::string("'") + FORKVM_CLI + "' boot --kernel '" + kernel.path() +
                                   "' --memory 64 --timeout 1");
  EXPECT_EQ(r.status, 5) << r.output;
  EXPECT_TRUE(has(r.output, "guest still running after 1 s; stopped")) << r.output;
  EXPECT_TRUE(has(r.output, "wrote nothing to its console")) << r.output;
  EXPECT_TRUE(has(r.output, "RIP 0x1000000")) << r.output;
}

}  // namespace
}  // namespace forkvm
