// e2e tier: the `forkvm boot` command on the built-in image, as a user runs it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct CliRun {
  int status = -1;
  std::string output;  // stdout and stderr together
};

CliRun run(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string(FORKVM_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  return r;
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
