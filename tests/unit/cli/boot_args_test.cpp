// unit tier: `forkvm boot` rejects bad input with a clear message and exit code 2 (usage) or 3
// (config/image) before anything starts. No KVM is needed: validation runs before /dev/kvm is
// opened, so these run on any host.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/support/run_process.hpp"

namespace {

using CliRun = forkvm::test::ProcessResult;

CliRun run(const std::string& args) {
  return forkvm::test::run_process(std::string(FORKVM_CLI) + " " + args);
}

std::string temp_file(const std::string& content) {
  char path[] = "/tmp/forkvm-cli-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  if (fd >= 0) {
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
  return path;
}

TEST(CliBoot, MissingKernelIsNamed) {
  const CliRun r = run("boot --kernel /nonexistent/bzImage");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/bzImage"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No such file"), std::string::npos) << r.output;
}

TEST(CliBoot, EmptyAndCorruptKernelsAreNamed) {
  const std::string empty = temp_file("");
  CliRun r = run("boot --kernel " + empty);
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find(empty), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("empty"), std::string::npos) << r.output;
  unlink(empty.c_str());
}

TEST(CliBoot, CorruptKernelIsNamedBeforeKvmIsOpened) {
  const std::string kernel = temp_file(std::string(8192, 'x'));
  const CliRun r = run("boot --kernel " + kernel);
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find(kernel + ": not a kernel"), std::string::npos) << r.output;
  unlink(kernel.c_str());
}

TEST(CliBoot, MissingInitramfsIsNamed) {
  const std::string kernel = temp_file(std::string(8192, 'x'));
  const CliRun r = run("boot --kernel " + kernel + " --initramfs /nonexistent/initrd.gz");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/initrd.gz"), std::string::npos) << r.output;
  unlink(kernel.c_str());
}

TEST(CliBoot, VcpuAndMemoryLimitsAreEnforcedBeforeAnythingStarts) {
  const std::string kernel = temp_file(std::string(8192, 'x'));
  CliRun r = run("boot --kernel " + kernel + " --vcpus 0");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("vcpus must be between 1 and 64"), std::string::npos) << r.output;
  r = run("boot --kernel " + kernel + " --vcpus 65");
  EXPECT_EQ(r.status, 3) << r.output;
  r = run("boot --kernel " + kernel + " --memory 32");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("at least 64 MiB"), std::string::npos) << r.output;
  r = run("boot --kernel " + kernel + " --memory 100000000");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("more than this host can give"), std::string::npos) << r.output;
  unlink(kernel.c_str());
}

TEST(CliBoot, CommandLineTooLongIsRejected) {
  const std::string kernel = temp_file(std::string(8192, 'x'));
  const CliRun r = run("boot --kernel " + kernel + " --cmdline " + std::string(70000, 'a'));
  EXPECT_EQ(r.status, 3) << r.output.substr(0, 300);
  EXPECT_NE(r.output.find("command line"), std::string::npos) << r.output.substr(0, 300);
  unlink(kernel.c_str());
}

TEST(CliBoot, UsageErrors) {
  EXPECT_EQ(run("boot --vcpus abc").status, 2);
  EXPECT_EQ(run("boot --bogus").status, 2);
  EXPECT_EQ(run("boot --memory").status, 2);
  EXPECT_EQ(run("frobnicate").status, 2);
  EXPECT_EQ(run("boot --help").status, 0);
}

}  // namespace
