// e2e tier: the `forkvm boot` command on the built-in image, as a user runs it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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

// --- forkvm run: one command in a transient sandbox ----------------------------------------

TEST(E2eCli, RunExitsWithTheCommandsStatusAndStreamsBothStreams) {
  const CliRun r = run("run --memory 256 -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("to-stdout"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("to-stderr"), std::string::npos) << r.output;
}

TEST(E2eCli, RunJsonKeepsStdoutAndStderrApart) {
  const CliRun r = run("run --json -- sh -c 'echo out; echo err >&2'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(R"("stdout":"out\n")"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(R"("stderr":"err\n")"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(R"("exit_code":0)"), std::string::npos) << r.output;
}

TEST(E2eCli, RunReportsSignalsTimeoutsAndMissingPrograms) {
  const CliRun killed = run("run -- sh -c 'kill -KILL $$'");
  EXPECT_EQ(killed.status, 128 + 9) << killed.output;
  const CliRun timed = run("run --timeout 2 -- sleep 100");
  EXPECT_EQ(timed.status, 124) << timed.output;
  const CliRun missing = run("run -- /no/such/program");
  EXPECT_EQ(missing.status, 127) << missing.output;
}

TEST(E2eCli, RunEnvAndCwd) {
  const CliRun r = run("run --env A=1 --env B='two words' --cwd /proc -- sh -c 'echo $A-$B; pwd'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1-two words\n/proc\n"), std::string::npos) << r.output;
}

TEST(E2eCli, RunLaunchPlanWithEnvLayering) {
  // apps[0].env < apps[0].entrypoint.env < --env.
  const std::string plan = temp_input(R"({"apps":[{"name":"app",
    "env":{"LAYER":"app","APP_ONLY":"a"},
    "entrypoint":{"command":["sh","-c","echo $LAYER $APP_ONLY $ENTRY_ONLY $CLI; pwd; exit 5"],
                  "working_dir":"/sys","env":{"LAYER":"entry","ENTRY_ONLY":"e"}}}]})");
  const CliRun r = run("run --env CLI=c --launch-plan " + plan);
  EXPECT_EQ(r.status, 5) << r.output;
  EXPECT_NE(r.output.find("entry a e c\n/sys\n"), std::string::npos) << r.output;
  const CliRun overridden = run("run --env LAYER=cli --launch-plan " + plan);
  EXPECT_NE(overridden.output.find("cli a e\n"), std::string::npos) << overridden.output;
  unlink(plan.c_str());
  const std::string two = temp_input(R"({"apps":[{"entrypoint":{"command":["true"]}},{"entrypoint":{"command":["true"]}}]})");
  const CliRun rejected = run("run --launch-plan " + two);
  unlink(two.c_str());
  EXPECT_EQ(rejected.status, 2) << rejected.output;
  EXPECT_NE(rejected.output.find("app"), std::string::npos) << rejected.output;
}

TEST(E2eCli, SnapshotCreateWritesASnapshotThatInspectVerifies) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/forkvm-e2e-snap-" + std::to_string(getpid());
  // The warm-up runs in the template before the snapshot: its file is in every fork. It runs
  // after the template got its identity: the kernel's CRNG seeded (entropy_avail is the input
  // pool's credited bits, 256 once seeded) and the host's clock (the guest's CMOS reads 0).
  const CliRun created =
      run("snapshot create --memory 128 --warm-up true --warm-up 'echo w > /tmp/warmed' "
          "--warm-up 'test $(cat /proc/sys/kernel/random/entropy_avail) -ge 256' "
          "--warm-up 'test $(date +%Y) -ge 2026' " + dir);
  EXPECT_EQ(created.status, 0) << created.output;
  EXPECT_NE(created.output.find("snapshot written to"), std::string::npos) << created.output;
  EXPECT_NE(created.output.find("4 warm-up commands"), std::string::npos) << created.output;
  EXPECT_NE(created.output.find("agent connection carried"), std::string::npos) << created.output;
  const CliRun inspected = run("snapshot inspect " + dir);
  EXPECT_EQ(inspected.status, 0) << inspected.output;
  const CliRun again = run("snapshot create " + dir);
  EXPECT_EQ(again.status, 3) << again.output;  // never overwrites
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;
  // `forkvm run --snapshot`: the command runs in a fork of it, with its exit status, and the
  // fork's writes stay in the fork: a second fork does not see the first one's file.
  const CliRun forked = run("run --snapshot " + dir +
                            " -- sh -c 'test -e /tmp/warmed && test ! -e /tmp/mark && "
                            "echo forked > /tmp/mark && "
                            "cat /tmp/mark && exit 7'");
  EXPECT_EQ(forked.status, 7) << forked.output;
  EXPECT_NE(forked.output.find("forked"), std::string::npos) << forked.output;
  const CliRun second = run("run --snapshot " + dir + " -- test ! -e /tmp/mark");
  EXPECT_EQ(second.status, 0) << second.output;
  const CliRun mixed = run("run --snapshot " + dir + " --memory 512 -- true");
  EXPECT_EQ(mixed.status, 2) << mixed.output;
  forkvm::test::run_process("rm -rf '" + dir + "'");
}

TEST(E2eCli, SnapshotCreateRefusesAFailedWarmUp) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/forkvm-e2e-warm-" + std::to_string(getpid());
  const CliRun failed = run("snapshot create --memory 128 --rootfs minimal --warm-up "
                            "'echo no-such-tool >&2; exit 3' " + dir);
  EXPECT_EQ(failed.status, 4) << failed.output;  // the guest failed
  EXPECT_NE(failed.output.find("warm-up command 'echo no-such-tool >&2; exit 3' failed "
                               "(exit status 3): no-such-tool"),
            std::string::npos)
      << failed.output;
  EXPECT_FALSE(std::filesystem::exists(dir)) << "a failed warm-up must write no snapshot";
  forkvm::test::run_process("rm -rf '" + dir + "'");
}

}  // namespace
