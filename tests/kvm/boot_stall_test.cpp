// A boot that never signals ready says where the guest is (issue 10): Vm::progress_report()
// and `forkvm boot --timeout` on a real /dev/kvm, with tiny ELF "kernels" that spin silently or
// print two bytes to COM1 first, so a stuck guest is told apart from a talkative one.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "forkvm/vm.hpp"
#include "tests/support/run_process.hpp"
#include "tests/kvm/elf_kernel.hpp"

namespace forkvm {
namespace {

using test::ElfKernel;

/// `jmp .`
const std::vector<uint8_t> kSpin = {0xeb, 0xfe};
/// mov dx, 0x3f8; mov al, 'h'; out dx, al; mov al, 'i'; out dx, al; jmp .
const std::vector<uint8_t> kHelloThenSpin = {0x66, 0xba, 0xf8, 0x03, 0xb0, 'h', 0xee,
                                             0xb0, 'i',  0xee, 0xeb, 0xfe};

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
