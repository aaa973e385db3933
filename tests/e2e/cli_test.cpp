// e2e tier: the `forkvm boot` command on the built-in image, as a user runs it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/support/run_process.hpp"

namespace {

using CliRun = forkvm::test::ProcessResult;

CliRun run(const std::string& args, const std::string& stdin_path = "/dev/null") {
  return forkvm::test::run_process(std::string(FORKVM_CLI) + " " + args, stdin_path);
}

/// Writes `content` to a new file in $TMPDIR (writable inside kvm-lab) and returns its path.
std::string temp_input(const std::string& content) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/forkvm-input-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) return "/dev/null";
  const ssize_t n = write(fd, content.data(), content.size());
  close(fd);
  return n == static_cast<ssize_t>(content.size()) ? path : "/dev/null";
}

TEST(E2eCli, BootStreamsTheConsoleReportsReadyAndExitsZeroOnPowerOff) {
  const CliRun r = run("boot --vcpus 2 --memory 256 --timeout 600");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Linux version"), std::string::npos) << r.output;  // console streamed
  EXPECT_NE(r.output.find("forkvm-agent: ready cpus=2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("forkvm: agent ready"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("guest powered off (status 0)"), std::string::npos) << r.output;
}

TEST(E2eCli, StdinReachesAGuestShellThroughTheUart) {
  // The shell reads these lines from ttyS0 (our 16550's receive FIFO); its exit status comes
  // back as the VM's power-off status.
  const std::string input = temp_input("echo in-guest-$((6*7))\nexit 3\n");
  const CliRun r = run("boot --cmdline forkvm.after_ready=shell --timeout 600", input);
  unlink(input.c_str());
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("in-guest-42"), std::string::npos) << r.output;
}

TEST(E2eCli, KernelPanicExitsNonZeroWithTheConsoleTail) {
  const CliRun r = run(std::string("boot --kernel ") + FORKVM_E2E_IMAGE_DIR + "/bzImage --timeout 600");
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("console tail"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Kernel panic"), std::string::npos) << r.output;
}

}  // namespace
