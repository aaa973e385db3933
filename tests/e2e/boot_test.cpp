// e2e tier: the real guest kernel and agent booted by forkvm (directly on a VMX/SVM host,
// otherwise inside kvm-lab).
#include <dirent.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "base/thread_launcher.hpp"
#include "forkvm/errors.hpp"
#include "guest-init/run_command.hpp"
#include "tests/e2e/e2e_image.hpp"

namespace forkvm::e2e {
namespace {

/// Entries in a /proc/self directory (threads or fds), to catch leaks. The one /dev/kvm
/// descriptor the process keeps open for all its VMs (vmm/kvm_host.hpp: opened once on first
/// use) is not counted.
size_t count_entries(const char* dir) {
  size_t n = 0;
  if (DIR* d = opendir(dir)) {
    while (const dirent* e = readdir(d)) {
      char target[64] = {};
      const std::string path = std::string(dir) + "/" + e->d_name;
      const ssize_t len = readlink(path.c_str(), target, sizeof target - 1);
      if (len > 0 && std::string(target, static_cast<size_t>(len)) == "/dev/kvm") continue;
      ++n;
    }
    closedir(d);
  }
  return n;
}

struct ReadyLine {
  unsigned cpus = 0;
  unsigned long mem_kib = 0;
};

ReadyLine parse_ready(const std::string& console) {
  std::smatch m;
  static const std::regex re(R"(forkvm-agent: ready cpus=(\d+) mem_total_kib=(\d+))");
  if (!std::regex_search(console, m, re)) return {};
  return {static_cast<unsigned>(std::stoul(m[1])), std::stoul(m[2])};
}

/// Boots, waits for ready and for the power-off that forkvm.after_ready=poweroff causes.
VmResult boot_to_poweroff(const VmConfig& config, std::string* console) {
  auto vm = Vm::create(config);
  vm->start();
  EXPECT_TRUE(vm->wait_ready(kBootDeadline)) << vm->console_tail();
  auto result = vm->wait(kBootDeadline);
  EXPECT_TRUE(result.has_value()) << "no power-off; console:\n" << vm->console_tail();
  EXPECT_TRUE(vm->start_to_ready().has_value());
  *console = vm->console_tail();
  return result.value_or(VmResult{});
}

TEST(E2eBoot, OneVcpuBootsToAgentReadyAndPowersOffCleanly) {
  // The process's one thread launcher (base/thread_launcher.hpp) is started by the first
  // filtered thread and lives as long as the process: not the Vm's, so started first here.
  prepare_thread_launcher();
  const size_t threads_before = count_entries("/proc/self/task");
  const size_t fds_before = count_entries("/proc/self/fd");
  std::string console;
  const VmResult r = boot_to_poweroff(builtin_config(1, 256, "forkvm.after_ready=poweroff"), &console);
  EXPECT_EQ(r.reason, StopReason::kPowerOff) << r.detail << "\n" << console;
  EXPECT_EQ(r.exit_status, 0u);
  const ReadyLine ready = parse_ready(console);
  EXPECT_EQ(ready.cpus, 1u) << console;
  // MemTotal is RAM minus what the kernel reserves for itself: within 256 MiB, above 200 MiB.
  EXPECT_GT(ready.mem_kib, 200u * 1024) << console;
  EXPECT_LE(ready.mem_kib, 256u * 1024) << console;
  // The Vm is gone: its vCPU threads joined, its fds (kvm, vm, vcpus) closed.
  EXPECT_EQ(count_entries("/proc/self/task"), threads_before);
  EXPECT_EQ(count_entries("/proc/self/fd"), fds_before);
}

TEST(E2eBoot, TwoVcpusAreBroughtUpAndReported) {
  std::string console;
  const VmResult r = boot_to_poweroff(builtin_config(2, 512, "forkvm.after_ready=poweroff"), &console);
  EXPECT_EQ(r.reason, StopReason::kPowerOff) << r.detail << "\n" << console;
  const ReadyLine ready = parse_ready(console);
  EXPECT_EQ(ready.cpus, 2u) << console;
  EXPECT_GT(ready.mem_kib, 450u * 1024) << console;
  EXPECT_LE(ready.mem_kib, 512u * 1024) << console;
}

TEST(E2eBoot, ElfVmlinuxBootsToo) {
  VmConfig c = builtin_config(1, 256, "forkvm.after_ready=poweroff");
  c.kernel = image_dir() + "/vmlinux";
  std::string console;
  const VmResult r = boot_to_poweroff(c, &console);
  EXPECT_EQ(r.reason, StopReason::kPowerOff) << r.detail << "\n" << console;
  EXPECT_EQ(parse_ready(console).cpus, 1u) << console;
}

TEST(E2eBoot, CommandExitStatusComesBackThroughThePowerOff) {
  const std::string cmd = "echo hello-from-guest; exit 7";
  std::string console;
  const VmResult r =
      boot_to_poweroff(builtin_config(1, 256, "forkvm.run=" + encode_run_command(cmd)), &console);
  EXPECT_EQ(r.reason, StopReason::kPowerOff) << r.detail << "\n" << console;
  EXPECT_EQ(r.exit_status, 7u) << console;
  EXPECT_NE(console.find("hello-from-guest"), std::string::npos) << console;
}

TEST(E2eBoot, KernelWithoutInitIsAnErrorWithTheConsoleTailNotAHang) {
  VmConfig c = builtin_config(1, 128, "");
  c.initramfs.clear();  // no initramfs and no root device: the kernel panics looking for init
  auto vm = Vm::create(c);
  vm->start();
  try {
    vm->wait_ready(kBootDeadline);
    FAIL() << "expected GuestError; console:\n" << vm->console_tail();
  } catch (const GuestError& e) {
    EXPECT_NE(e.console_tail().find("Kernel panic"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("guest-reset"), std::string::npos) << e.what();
  }
  auto r = vm->wait(std::chrono::seconds(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, StopReason::kGuestReset);
}

TEST(E2eBoot, AgentFatalErrorIsReportedWithItsReason) {
  auto vm = Vm::create(builtin_config(1, 128, "forkvm.after_ready=bogus"));
  vm->start();
  try {
    vm->wait_ready(kBootDeadline);
  } catch (const GuestError&) {
    // The agent rejects its configuration before announcing ready.
  }
  auto r = vm->wait(kBootDeadline);
  ASSERT_TRUE(r.has_value()) << vm->console_tail();
  EXPECT_EQ(r->reason, StopReason::kAgentFatal) << r->detail << "\n" << vm->console_tail();
  EXPECT_NE(r->detail.find("bad forkvm.* command-line key"), std::string::npos) << r->detail;
  EXPECT_NE(vm->console_tail().find("forkvm-agent: fatal"), std::string::npos) << vm->console_tail();
}

TEST(E2eBoot, PauseResumeAndHostStopOfARunningGuest) {
  auto vm = Vm::create(builtin_config(2, 256, "forkvm.after_ready=idle"));
  vm->start();
  ASSERT_TRUE(vm->wait_ready(kBootDeadline)) << vm->console_tail();
  // Pause parks both vCPUs outside KVM_RUN; the guest keeps running after resume.
  vm->pause();
  EXPECT_FALSE(vm->wait(std::chrono::milliseconds(200)).has_value());
  vm->resume();
  EXPECT_FALSE(vm->wait(std::chrono::milliseconds(200)).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  const VmResult r = vm->stop();
  EXPECT_EQ(r.reason, StopReason::kHostStop);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

}  // namespace
}  // namespace forkvm::e2e
