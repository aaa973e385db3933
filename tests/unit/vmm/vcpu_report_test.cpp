// ExitHistory and the formatting of vCPU samples and stalled boots, with fabricated exits and
// registers (no /dev/kvm): what a boot-timeout or triple-fault error says about the guest.
#include "vmm/vcpu_report.hpp"

#include "forkvm/vm.hpp"

#include <gtest/gtest.h>

#include <array>

namespace forkvm {
namespace {

using std::chrono::milliseconds;

VcpuSample long_mode_sample(uint64_t rip, ExitHistory::Counts counts) {
  VcpuSample s;
  s.index = 0;
  kvm_regs r{};
  r.rip = rip;
  r.rsp = 0x8000;
  r.rflags = 0x2;
  s.regs = r;
  kvm_sregs sr{};
  sr.cr0 = 0x80050033;
  sr.cr3 = 0x9000;
  sr.cr4 = 0x20;
  sr.efer = 0x500;  // LME | LMA
  sr.cs.l = 1;
  sr.cs.selector = 0x10;
  s.sregs = sr;
  s.events = kvm_vcpu_events{};
  s.counts = counts;
  return s;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ExitHistory, CountsByKindAndKeepsTheLastExits) {
  ExitHistory h;
  std::array<uint8_t, 4> data{};
  for (int i = 0; i < 3; ++i) h.record_run();
  h.record(IoOut{0x3f8, 1, 1, std::span<const uint8_t>(data.data(), 1)});
  h.record(MmioRead{0xd0000000, std::span<uint8_t>(data.data(), 4)});
  h.record(Interrupted{});
  h.record(Shutdown{});
  const auto c = h.counts();
  EXPECT_EQ(c.runs, 3u);
  EXPECT_EQ(c.io, 1u);
  EXPECT_EQ(c.mmio, 1u);
  EXPECT_EQ(c.kicks, 1u);
  EXPECT_EQ(c.other, 1u);
  const auto recent = h.recent();
  ASSERT_EQ(recent.size(), 3u);  // kicks are not kept
  EXPECT_EQ(to_string(recent[0]), "out 0x3f8/1");
  EXPECT_EQ(to_string(recent[1]), "mmio read 0xd0000000/4");
  EXPECT_EQ(to_string(recent[2]), "shutdown (triple fault)");
}

TEST(ExitHistory, KeepsOnlyTheNewestWhenFull) {
  ExitHistory h;
  std::array<uint8_t, 1> data{};
  for (uint16_t port = 0; port < 20; ++port) {
    h.record(IoIn{port, 1, 1, std::span<uint8_t>(data)});
  }
  const auto recent = h.recent();
  ASSERT_EQ(recent.size(), ExitHistory::kKept);
  EXPECT_EQ(recent.front().where, 20u - ExitHistory::kKept);
  EXPECT_EQ(recent.back().where, 19u);
  EXPECT_EQ(h.counts().io, 20u);
}

TEST(VcpuReport, SaysModeRegistersAndEvents) {
  auto s = long_mode_sample(0x1000000, {10, 2, 0, 0, 0});
  s.events->exception.injected = 1;
  s.events->exception.nr = 14;
  const std::string text = format_vcpu(s);
  EXPECT_TRUE(has(text, "vCPU 0: long mode, RIP 0x1000000")) << text;
  EXPECT_TRUE(has(text, "CR3 0x9000")) << text;
  EXPECT_TRUE(has(text, "EFER 0x500")) << text;
  EXPECT_TRUE(has(text, "exception 14")) << text;
  EXPECT_TRUE(has(text, "KVM_RUN 10; exits: io 2")) << text;
}

TEST(VcpuReport, UnreadableRegistersAreSaid) {
  VcpuSample s;
  s.index = 3;
  s.finished = true;
  const std::string text = format_vcpu(s);
  EXPECT_TRUE(has(text, "vCPU 3 (stopped):")) << text;
  EXPECT_TRUE(has(text, "registers unreadable")) << text;
}

TEST(VcpuReport, TheResetStateAfterATripleFaultIsNamed) {
  VcpuSample s;
  kvm_regs r{};
  r.rip = 0xfff0;
  s.regs = r;
  kvm_sregs sr{};
  sr.cs.base = 0xffff0000;
  s.sregs = sr;
  const std::string text = format_vcpu(s);
  EXPECT_TRUE(has(text, "real mode")) << text;
  EXPECT_TRUE(has(text, "the reset state")) << text;
}

TEST(StallReport, SilentGuestStuckOnOneInstruction) {
  const std::vector<VcpuSample> first{long_mode_sample(0x1000000, {5, 0, 0, 1, 0})};
  const std::vector<VcpuSample> second{long_mode_sample(0x1000000, {6, 0, 0, 2, 0})};
  const std::string text = format_stall(0, milliseconds(30500), first, second, milliseconds(100));
  EXPECT_TRUE(has(text, "wrote nothing to its console and never signalled ready in 30.5 s")) << text;
  EXPECT_TRUE(has(text, "RIP 0x1000000 (unchanged over 100 ms)")) << text;
  EXPECT_TRUE(has(text, "(0 in the last 100 ms)")) << text;
  EXPECT_TRUE(has(text, "no vCPU moved")) << text;
}

TEST(StallReport, TalkativeGuestStillRunning) {
  const std::vector<VcpuSample> first{long_mode_sample(0x1000000, {5, 10, 0, 0, 0})};
  const std::vector<VcpuSample> second{long_mode_sample(0x1000040, {9, 14, 0, 0, 0})};
  const std::string text = format_stall(1234, milliseconds(2000), first, second, milliseconds(100));
  EXPECT_TRUE(has(text, "wrote 1234 bytes to its console but never signalled ready in 2.0 s")) << text;
  EXPECT_TRUE(has(text, "RIP 0x1000040 (was 0x1000000 100 ms earlier)")) << text;
  EXPECT_TRUE(has(text, "(4 in the last 100 ms)")) << text;
  EXPECT_TRUE(has(text, "still running guest code")) << text;
}

TEST(StallReport, ReadyGuestWhoseRequestWentUnansweredSaysItWasReady) {
  const std::vector<VcpuSample> first{long_mode_sample(0x1000000, {5, 0, 0, 1, 0})};
  const std::vector<VcpuSample> second{long_mode_sample(0x1000000, {5, 0, 0, 1, 0})};
  const std::string text = format_stall(900, milliseconds(61200), first, second, milliseconds(100),
                                        milliseconds(1500));
  EXPECT_TRUE(has(text, "signalled ready 1.5 s after its vCPUs started (61.2 s ago)")) << text;
  EXPECT_TRUE(has(text, "wrote 900 bytes to its console")) << text;
  EXPECT_FALSE(has(text, "never signalled ready")) << text;
  EXPECT_TRUE(has(text, "no vCPU moved")) << text;
}

TEST(StallReport, AVcpuStuckWithInterruptsOffIsNamedBesideOneStillRunning) {
  // As in the soak that hung (2026-12-06): vCPU 0 spinning in queued_spin_lock_slowpath with
  // IF=0, vCPU 1 moving.
  VcpuSample a0 = long_mode_sample(0xffffffff812e91da, {5, 0, 0, 1, 0});
  VcpuSample b0 = a0;
  VcpuSample a1 = long_mode_sample(0x401118, {7, 0, 3, 0, 0});
  a1.index = 1;
  a1.regs->rflags = 0x202;
  VcpuSample b1 = long_mode_sample(0xffffffff812dbd7c, {9, 0, 5, 0, 0});
  b1.index = 1;
  b1.regs->rflags = 0x40202;
  const std::string text =
      format_stall(9082, milliseconds(123000), {a0, a1}, {b0, b1}, milliseconds(100), milliseconds(13500));
  EXPECT_TRUE(has(text, "vCPU 1 still ran guest code; vCPU 0 did not move between the samples")) << text;
  EXPECT_TRUE(has(text, "vCPU 0 did not move in 100 ms with interrupts disabled (RFLAGS.IF=0)")) << text;
  EXPECT_FALSE(has(text, "the vCPUs were still running guest code")) << text;
}

TEST(VcpuReport, KernelStackKeepsOnlyWordsInTheKernelImage) {
  const std::vector<uint64_t> stack{0x0, 0xffffffff812e91da, 0xffffc90000003fa8, 0x7ffd00001000,
                                    0xffffffff81400c86, 0xffffffffc0000000, 0xffffffff80000000};
  EXPECT_EQ(kernel_stack_words(stack),
            (std::vector<uint64_t>{0xffffffff812e91da, 0xffffffff81400c86, 0xffffffff80000000}));
  EXPECT_EQ(kernel_stack_words(stack, 1), (std::vector<uint64_t>{0xffffffff812e91da}));
  auto s = long_mode_sample(0xffffffff812e91da, {1, 0, 0, 0, 0});
  s.kernel_stack = kernel_stack_words(stack);
  const std::string text = format_vcpu(s);
  EXPECT_TRUE(has(text, "kernel stack from RSP up, words in the kernel image (unreliable, innermost "
                        "first): 0xffffffff812e91da 0xffffffff81400c86 0xffffffff80000000"))
      << text;
  EXPECT_FALSE(has(format_vcpu(long_mode_sample(0x1000, {1, 0, 0, 0, 0})), "kernel stack"));
}

TEST(StallReport, AnIdleVcpuWithInterruptsOnIsNotCalledStuck) {
  VcpuSample a = long_mode_sample(0xffffffff812e8f43, {5, 0, 0, 1, 0});  // native_safe_halt
  a.regs->rflags = 0x246;
  const std::string text = format_stall(900, milliseconds(5000), {a}, {a}, milliseconds(100), milliseconds(1500));
  EXPECT_TRUE(has(text, "no vCPU moved")) << text;
  EXPECT_FALSE(has(text, "interrupts disabled")) << text;
}

TEST(StallReport, AVcpuWhoseModeIsUnknownOrUserIsNotCalledStuckInKernelMode) {
  VcpuSample user = long_mode_sample(0x401118, {5, 0, 0, 1, 0});
  user.regs->rflags = 0x2;
  user.sregs->cs.selector = 0x33;  // RPL 3
  VcpuSample unknown = user;
  unknown.index = 1;
  unknown.sregs.reset();
  EXPECT_FALSE(in_kernel_mode(user));
  EXPECT_FALSE(in_kernel_mode(unknown));
  EXPECT_TRUE(in_kernel_mode(long_mode_sample(0xffffffff812e91da, {1, 0, 0, 0, 0})));
  const std::string text = format_stall(900, milliseconds(5000), {user, unknown}, {user, unknown},
                                        milliseconds(100), milliseconds(1500));
  EXPECT_TRUE(has(text, "no vCPU moved")) << text;
  EXPECT_FALSE(has(text, "interrupts disabled")) << text;
}

}  // namespace
}  // namespace forkvm

namespace forkvm {
namespace {

TEST(ChangedPages, ListsThePagesWhoseHashDiffers) {
  const std::vector<PageDigest> before{{0x0, 1}, {0x1000, 2}, {0x2000, 3}};
  std::vector<PageDigest> after = before;
  EXPECT_TRUE(changed_pages(before, after).empty());
  after[1].hash = 99;
  EXPECT_EQ(changed_pages(before, after), std::vector<uint64_t>{0x1000});
  after.push_back({0x3000, 4});
  EXPECT_EQ(changed_pages(before, after), (std::vector<uint64_t>{0x1000, 0x3000}));
}

}  // namespace
}  // namespace forkvm
