// The lab's guest double fault (tools/kvm-lab/README.md): lab-double-fault tells its oops from
// other guest crashes, and run-tier retries an attempt that kvm-lab reported with it, as it
// does a lab stall, but never an ordinary failure. The oops below is the one a clean-clone CI
// run of bcd1216 printed (E2eTemplateFork, the parent's agent), trimmed to the lines judged.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/support/run_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm {
namespace {

constexpr const char* kOops = R"(unknown file: Failure
C++ exception with description "sandbox unusable: the VM stopped (guest-reset: the guest reset the machine without the agent announcing a power-off (kernel panic or reboot))
--- guest console (tail) ---
traps: PANIC: double fault, error_code: 0x0
double fault: 0000 [#1] SMP
CPU: 0 PID: 1 Comm: init Not tainted 6.1.192 #1
RIP: 0010:0xffffffff812e3d2a
Code: 6e d3 7e 00 89 ee 48 89 df 5b 5d e9 0b 05 00 00 0f 0b 41 57 41 56 41 55 41 54 55 48 89 f5 53 48 89 fb 48 83 ec 18 41 0f 20 d4 <65> 48 8b 04 25 00 ac 01 00 48 8b 80 00 03 00 00 0f 0d 48 58 8b 05
RSP: 0000:fffffe0000002008 EFLAGS: 00010092
FS:  000000001c32b400(0000) GS:ffff888007a00000(0000) knlGS:ffff888007a00000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 000000000001ac00 CR3: 00000000005f4000 CR4: 00000000003106b0
Kernel panic - not syncing: Fatal exception in interrupt
)";

/// The other form (a soak, 2026-12-06): an interrupt at the syscall entry's first instruction,
/// swapgs, before the switch to the kernel stack, pushed its frame onto the user stack.
constexpr const char* kSwapgsOops = R"(traps: PANIC: double fault, error_code: 0x0
double fault: 0000 [#1] SMP
CPU: 0 PID: 1 Comm: init Not tainted 6.1.192 #1
RIP: 0010:0xffffffff81400040
Code: cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc <0f> 01 f8 65 48 89 24 25 14 60 00 00 65 48 8b 24 25 d0 ab 01 00 6a
RSP: 0018:00007ffc59046288 EFLAGS: 00010002
FS:  000000001990b400(0000) GS:ffff88801f400000(0000) knlGS:ffff88801f400000
CR2: 00007ffc59046278 CR3: 0000000000598000 CR4: 00000000003106b0
Kernel panic - not syncing: Fatal exception in interrupt
)";

/// `text` with the first occurrence of `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

class LabDoubleFault : public ::testing::Test {
 protected:
  /// lab-double-fault over a file holding `text`.
  test::ProcessResult judge(const std::string& text) {
    const std::string file = dir_ / "output";
    std::ofstream(file) << text;
    return test::run_process("'" FORKVM_TEST_LAB_DOUBLE_FAULT "' '" + file + "'");
  }
  test::TempDir dir_{"forkvm-ldf"};
};

TEST_F(LabDoubleFault, RecognisesTheOopsCiPrinted) {
  const auto r = judge(kOops);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("CR2 0x1ac00"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("IF=0"), std::string::npos) << r.output;
}

TEST_F(LabDoubleFault, RecognisesTheSwapgsForm) {
  const auto r = judge(kSwapgsOops);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("syscall entry's swapgs"), std::string::npos) << r.output;
  // Not with a kernel stack, nor with a fault address that is not the frame's push.
  for (const std::string& text :
       {replaced(kSwapgsOops, "RSP: 0018:00007ffc59046288", "RSP: 0018:ffffc90000003f90"),
        replaced(kSwapgsOops, "CR2: 00007ffc59046278", "CR2: 00007ffc59040000"),
        replaced(kSwapgsOops, "CR2: 00007ffc59046278", "CR2: 00007ffc59046290"),
        replaced(kSwapgsOops, "knlGS:ffff88801f400000", "knlGS:00006d61726b0000")}) {
    EXPECT_EQ(judge(text).status, 1) << text;
  }
}

TEST_F(LabDoubleFault, LeavesEveryOtherCrashToFail) {
  // Each of these lacks one part of the signature, so it is not retried.
  const std::string cases[] = {
      // an ordinary test failure, no oops
      "Expected equality of these values:\n  r.exit_code\n    Which is: 1\n",
      // a page fault that did not become a double fault
      replaced(kOops, "PANIC: double fault", "BUG: unable to handle page fault"),
      // the faulting instruction does not read through GS
      replaced(kOops, "<65> 48 8b", "<48> 8b 04"),
      // a fault address that is no per-CPU offset
      replaced(kOops, "CR2: 000000000001ac00", "CR2: ffff888007a1ac00"),
      // host state handed to the guest (the GS mark) is another finding
      replaced(kOops, "knlGS:ffff888007a00000", "knlGS:00006d61726b0000"),
      // an oops cut off before its registers
      std::string(kOops).substr(0, std::string(kOops).find("RSP:")),
  };
  for (const std::string& text : cases) {
    const auto r = judge(text);
    EXPECT_EQ(r.status, 1) << text << "\n---\n" << r.output;
  }
  EXPECT_EQ(test::run_process("'" FORKVM_TEST_LAB_DOUBLE_FAULT "' '" + (dir_ / "absent") + "'").status, 1);
}

/// run-tier over a stand-in for kvm-lab that ends its attempts with `outcomes` in turn (the
/// result-file line, then the status), as kvm-lab would.
test::ProcessResult run_tier_with(const test::TempDir& dir, const std::string& outcomes) {
  const std::string fake = dir / "fake-lab";
  const std::string list = dir / "outcomes";
  const std::string count = dir / "attempts";
  std::ofstream(list) << outcomes;
  std::ofstream(fake) << "#!/bin/bash\n"
                         "while [ \"$1\" != --result-file ]; do shift; done\n"
                         "n=$(( $(cat '" << count << "' 2>/dev/null || echo 0) + 1 ))\n"
                         "echo $n > '" << count << "'\n"
                         "line=$(sed -n ${n}p '" << list << "')\n"
                         "echo \"${line% *}\" > \"$2\"\n"
                         "exit ${line##* }\n";
  test::run_process("chmod +x '" + fake + "'");
  // Braced so that run_process's 2>&1 takes run-tier's messages too.
  return test::run_process("{ env FORKVM_LAB=always FORKVM_LAB_COMMAND='" + fake + "' '" FORKVM_TEST_RUN_TIER
                           "' e2e true; echo \"status $?, attempts $(cat '" + count + "')\"; }");
}

TEST(RunTierRetries, TheLabsDoubleFaultIsRetriedLoudly) {
  test::TempDir dir("forkvm-rtr");
  const auto r = run_tier_with(dir, "guest-double-fault 1 1\nexit 0 0\n");
  EXPECT_NE(r.output.find("status 0, attempts 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("retrying in a fresh L1"), std::string::npos) << r.output;
}

TEST(RunTierRetries, ADoubleFaultInEveryAttemptFails) {
  test::TempDir dir("forkvm-rtr");
  const auto r = run_tier_with(dir, "guest-double-fault 1 1\nguest-double-fault 1 1\nguest-double-fault 1 1\n");
  EXPECT_NE(r.output.find("status 1, attempts 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in every attempt"), std::string::npos) << r.output;
}

TEST(RunTierRetries, AnOrdinaryFailureIsNotRetried) {
  test::TempDir dir("forkvm-rtr");
  const auto r = run_tier_with(dir, "exit 1 1\nexit 0 0\n");
  EXPECT_NE(r.output.find("status 1, attempts 1"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("retrying"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace forkvm
