// unit tier: on a PVM host every CLI command that builds a VM stops before anything runs, exits
// 3 and names PVM and the ways out (issue 10). The host is a fake /proc and /sys tree
// (FORKVM_HOST_ROOT), so this runs the same on every machine.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/fake_host_root.hpp"
#include "tests/support/run_process.hpp"

namespace forkvm::cli {
namespace {

forkvm::test::ProcessResult run_on_pvm(const std::string& args) {
  static const forkvm::test::FakeHostRoot pvm(forkvm::test::kFlagsNoVirt, {"kvm_pvm"});
  return forkvm::test::run_process("env -u FORKVM_ALLOW_PVM FORKVM_HOST_ROOT='" + pvm.path() + "' '" +
                                   FORKVM_CLI + "' " + args);
}

void expect_pvm_refusal(const forkvm::test::ProcessResult& r) {
  EXPECT_EQ(r.status, 3) << r.output;
  for (const char* part : {"PVM", "cannot boot a standard Linux guest", "VT-x or AMD-V",
                           "nested virtualization", "tools/kvm-lab", "FORKVM_ALLOW_PVM=1"}) {
    EXPECT_NE(r.output.find(part), std::string::npos) << "missing '" << part << "' in:\n" << r.output;
  }
}

TEST(CliOnPvm, RunIsRefused) { expect_pvm_refusal(run_on_pvm("run --boot-timeout 5 -- true")); }

TEST(CliOnPvm, BootIsRefused) { expect_pvm_refusal(run_on_pvm("boot --timeout 5")); }

TEST(CliOnPvm, SnapshotCreateIsRefused) {
  const std::string dir = std::string(::testing::TempDir()) + "forkvm-pvm-snap-" + std::to_string(::getpid());
  expect_pvm_refusal(run_on_pvm("snapshot create --timeout 5 " + dir));
}

}  // namespace
}  // namespace forkvm::cli
