// unit tier: `forkvm run` usage errors (exit 2, before anything boots) through the real binary,
// and how the plan, --env and --cwd combine (parse_run_args).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "tests/support/run_process.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/launch_plan.hpp"
#include "tools/cli/run_args.hpp"

namespace forkvm::cli {
namespace {

test::ProcessResult run(const std::string& args) {
  return test::run_process(std::string(FORKVM_CLI) + " run " + args);
}

std::string plan_file(const std::string& content) {
  char path[] = "/tmp/forkvm-plan-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  if (fd >= 0) {
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
  return path;
}

RunOptions parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_run_args(argv);
}

TEST(CliRun, UsageErrorsExitTwoWithAMessage) {
  struct Case {
    std::string args;
    std::string says;
  } cases[] = {
      {"", "no command"},
      {"--", "no command"},
      {"--bogus -- ls", "unknown option"},
      {"--vcpus x -- ls", "not a number"},
      {"--env NOEQUALS -- ls", "not K=V"},
      {"--env 1X=v -- ls", "not a valid name"},
      {"--cwd relative -- ls", "not an absolute path"},
      {"--timeout 0 -- ls", "out of range"},
      {"--launch-plan /nonexistent/plan.json", "/nonexistent/plan.json"},
      {"--snapshot /s --memory 512 -- ls", "--memory cannot be combined with --snapshot"},
      {"--vcpus 2 --snapshot /s -- ls", "--vcpus cannot be combined with --snapshot"},
      {"--snapshot /s --kernel /k -- ls", "--kernel cannot be combined"},
      {"--snapshot", "--snapshot needs a value"},
  };
  for (const auto& c : cases) {
    const auto r = run(c.args);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
  }
  EXPECT_EQ(run("--help").status, 0);
}

TEST(CliRun, LaunchPlanProblemsExitTwo) {
  const std::string two = plan_file(R"({"apps":[{"entrypoint":{"command":["a"]}},{"entrypoint":{"command":["b"]}}]})");
  auto r = run("--launch-plan " + two);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("has 2 apps"), std::string::npos) << r.output;
  const std::string none = plan_file(R"({"apps":[]})");
  r = run("--launch-plan " + none);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no app"), std::string::npos) << r.output;
  const std::string empty = plan_file(R"({"apps":[{"entrypoint":{"command":[]}}]})");
  r = run("--launch-plan " + empty);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no command"), std::string::npos) << r.output;
  r = run("--launch-plan " + empty + " -- ls");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("not both"), std::string::npos) << r.output;
  for (const auto& f : {two, none, empty}) unlink(f.c_str());
}

TEST(CliRun, SetupErrorsExitThreeBeforeKvm) {
  auto r = run("--kernel /nonexistent/bzImage -- true");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/bzImage"), std::string::npos) << r.output;
  // A snapshot that is not there is named before KVM is touched.
  r = run("--snapshot /nonexistent/snap -- true");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/snap"), std::string::npos) << r.output;
}

TEST(CliRun, CliEnvAndCwdOverrideThePlan) {
  const std::string plan = plan_file(R"({"apps":[{"working_dir":"/app","env":{"A":"1","B":"1"},
      "entrypoint":{"command":["env"],"env":{"B":"2"}}}]})");
  RunOptions o = parse({"--launch-plan", plan});
  EXPECT_EQ(o.argv, std::vector<std::string>{"env"});
  EXPECT_EQ(o.cwd, "/app");
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "2"}}));
  o = parse({"--env", "B=3", "--cwd", "/elsewhere", "--launch-plan", plan, "--json", "--timeout", "7"});
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "3"}}));
  EXPECT_EQ(o.cwd, "/elsewhere");
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.timeout, std::chrono::seconds(7));
  unlink(plan.c_str());
}

TEST(CliRun, SnapshotOptionIsKept) {
  const RunOptions o = parse({"--snapshot", "/snaps/py", "--env", "A=1", "--", "python3", "-V"});
  EXPECT_EQ(o.snapshot, "/snaps/py");
  EXPECT_EQ(o.argv, (std::vector<std::string>{"python3", "-V"}));
  EXPECT_EQ(o.env.at("A"), "1");
}

TEST(CliRun, ArgvAfterDashDashIsTakenVerbatim) {
  RunOptions o = parse({"--vcpus", "2", "--memory=512", "--", "sh", "-c", "echo --json"});
  EXPECT_EQ(o.argv, (std::vector<std::string>{"sh", "-c", "echo --json"}));
  EXPECT_EQ(o.vcpus, 2u);
  EXPECT_EQ(o.memory_mib, 512u);
  EXPECT_FALSE(o.json);
  o = parse({"--env", "X=a=b", "ls", "--not-an-option"});
  EXPECT_EQ(o.argv, (std::vector<std::string>{"ls", "--not-an-option"}));
  EXPECT_EQ(o.env.at("X"), "a=b");
}

}  // namespace
}  // namespace forkvm::cli
