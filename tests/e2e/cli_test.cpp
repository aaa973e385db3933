// e2e tier: the `forkvm boot` command on the built-in image, as a user runs it.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/run_process.hpp"

namespace {

using CliRun = forkvm::test::ProcessResult;

CliRun run(const std::string& args) {
  return forkvm::test::run_process(std::string(FORKVM_CLI) + " " + args);
}

TEST(E2eCli, BootStreamsTheConsoleReportsReadyAndExitsZeroOnPowerOff) {
  const CliRun r = run("boot --vcpus 2 --memory 256 --timeout 600");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Linux version"), std::string::npos) << r.output;  // console streamed
  EXPECT_NE(r.output.find("forkvm-agent: ready cpus=2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("forkvm: agent ready"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("guest powered off (status 0)"), std::string::npos) << r.output;
}

TEST(E2eCli, KernelPanicExitsNonZeroWithTheConsoleTail) {
  const CliRun r = run(std::string("boot --kernel ") + FORKVM_E2E_IMAGE_DIR + "/bzImage --timeout 600");
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("console tail"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Kernel panic"), std::string::npos) << r.output;
}

}  // namespace
