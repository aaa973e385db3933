// exec over the framed protocol against forkvm-agent-host (MESSAGES.md "exec").
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "tests/unit/agent/agent_harness.hpp"

namespace forkvm::agent::test {
namespace {

json exec_sh(std::uint64_t id, const std::string& script) {
  return {{"type", "exec"}, {"id", id}, {"argv", {"/bin/sh", "-c", script}}};
}

class ExecTest : public ::testing::Test {
 protected:
  AgentHost agent;
  Client client{agent.agent_socket()};
};

TEST_F(ExecTest, PingAnswersWithVersion) {
  const Result r = client.call({{"type", "ping"}, {"id", 1}});
  ASSERT_EQ(r.type(), "ok");
  EXPECT_EQ(r.terminal.header["version"], 1);
  EXPECT_TRUE(r.terminal.header["uptime_ms"].is_number_integer());
}

TEST_F(ExecTest, EchoStartsStreamsAndExits) {
  const Result r = client.call({{"type", "exec"}, {"id", 1}, {"argv", {"echo", "hello", "world"}}});
  ASSERT_EQ(r.type(), "exit") << r.terminal.header.dump();
  EXPECT_EQ(r.frames.front().header["type"], "started");
  EXPECT_GT(r.frames.front().header["pid"].get<int>(), 1);
  EXPECT_EQ(r.out, "hello world\n");
  EXPECT_EQ(r.terminal.header["exit_code"], 0);
  EXPECT_TRUE(r.terminal.header["signal"].is_null());
  EXPECT_EQ(r.terminal.header["timed_out"], false);
  EXPECT_EQ(r.terminal.header["cancelled"], false);
}

TEST_F(ExecTest, ExitCodeAndSignalAreReported) {
  const Result code = client.call(exec_sh(1, "exit 42"));
  EXPECT_EQ(code.terminal.header["exit_code"], 42);
  EXPECT_TRUE(code.terminal.header["signal"].is_null());
  const Result sig = client.call(exec_sh(2, "kill -TERM $$"));
  EXPECT_TRUE(sig.terminal.header["exit_code"].is_null());
  EXPECT_EQ(sig.terminal.header["signal"], SIGTERM);
}

TEST_F(ExecTest, StderrIsKeptApartFromStdout) {
  const Result r = client.call(exec_sh(1, "echo out; echo err >&2; echo out2"));
  EXPECT_EQ(r.out, "out\nout2\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_F(ExecTest, ShellFieldRunsBinShC) {
  const Result r = client.call({{"type", "exec"}, {"id", 1}, {"shell", "echo a | tr a b"}});
  EXPECT_EQ(r.out, "b\n");
  const Result both = client.call(
      {{"type", "exec"}, {"id", 2}, {"shell", "true"}, {"argv", {"true"}}});
  EXPECT_EQ(both.code(), "invalid_argument");
}

TEST_F(ExecTest, EnvAndCwdApply) {
  const Result r = client.call({{"type", "exec"},
                                {"id", 1},
                                {"argv", {"/bin/sh", "-c", "echo $FOO; pwd"}},
                                {"env", {{"FOO", "bar baz"}}},
                                {"cwd", agent.dir()}});
  EXPECT_EQ(r.out, "bar baz\n" + agent.dir() + "\n");
  const Result bad_key = client.call(
      {{"type", "exec"}, {"id", 2}, {"argv", {"true"}}, {"env", {{"1X", "y"}}}});
  EXPECT_EQ(bad_key.code(), "invalid_argument");
}

TEST_F(ExecTest, PersistentEnvSitsBetweenBaseAndRequestEnv) {
  ASSERT_EQ(client.call({{"type", "set_env"}, {"id", 1}, {"env", {{"P1", "persist"}, {"P2", "x"}}}}).type(), "ok");
  const Result r = client.call({{"type", "exec"},
                                {"id", 2},
                                {"argv", {"/bin/sh", "-c", "echo $P1-$P2-$HOME"}},
                                {"env", {{"P2", "request"}}}});
  EXPECT_EQ(r.out, "persist-request-" + std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "\n");
  ASSERT_EQ(client.call({{"type", "set_env"}, {"id", 3}, {"env", {{"P1", ""}}}}).type(), "ok");
  EXPECT_EQ(client.call(exec_sh(4, "echo \"[${P1-unset}]\"")).out, "[unset]\n");
}

// The agent's base env (PATH, HOME, TERM, and in the guest the proxy variables) is only a
// default: the persistent env and then the request's env override any of it.
TEST_F(ExecTest, BaseEnvIsOverriddenByPersistentThenRequestEnv) {
  EXPECT_EQ(client.call(exec_sh(1, "echo $TERM")).out, "dumb\n");  // forkvm-agent-host's base
  ASSERT_EQ(client.call({{"type", "set_env"}, {"id", 2}, {"env", {{"TERM", "persisted"}}}}).type(), "ok");
  EXPECT_EQ(client.call(exec_sh(3, "echo $TERM")).out, "persisted\n");
  const Result r = client.call({{"type", "exec"},
                                {"id", 4},
                                {"argv", {"/bin/sh", "-c", "echo \"[$TERM]\""}},
                                {"env", {{"TERM", ""}}}});
  EXPECT_EQ(r.out, "[]\n");  // an empty value in a request overrides too
  ASSERT_EQ(client.call({{"type", "set_env"}, {"id", 5}, {"env", {{"TERM", ""}}}}).type(), "ok");
  EXPECT_EQ(client.call(exec_sh(6, "echo $TERM")).out, "dumb\n");  // deleted: the base again
}

TEST_F(ExecTest, TimeoutKillsTheProcessGroupAndTheAgentStillAnswers) {
  const std::string pidfile = agent.dir() + "/grandchild.pid";
  const Result r = client.call({{"type", "exec"},
                                {"id", 1},
                                {"argv", {"/bin/sh", "-c", "sleep 300 & echo $! > " + pidfile + "; wait"}},
                                {"timeout_ms", 300}});
  ASSERT_EQ(r.type(), "exit");
  EXPECT_EQ(r.terminal.header["timed_out"], true);
  EXPECT_EQ(r.terminal.header["signal"], SIGKILL);
  const pid_t grandchild = std::stoi(read_whole(pidfile));
  EXPECT_TRUE(eventually([&] { return !process_exists(grandchild); }, 10s))
      << "the background sleep survived the timeout";
  EXPECT_EQ(client.call({{"type", "ping"}, {"id", 2}}).type(), "ok");
}

TEST_F(ExecTest, StdinIsStreamedAndClosed) {
  client.send({{"type", "exec"}, {"id", 1}, {"argv", {"cat"}}, {"stdin", true}});
  auto started = client.next_for(1);
  ASSERT_TRUE(started);
  ASSERT_EQ(started->header["type"], "started");
  std::string sent;
  for (int i = 0; i < 20; ++i) {
    const std::string chunk(10000, static_cast<char>('a' + i));
    client.send({{"type", "stdin"}, {"id", 1}}, chunk);
    sent += chunk;
  }
  client.send({{"type", "stdin_close"}, {"id", 1}});
  const Result r = client.collect(1);
  EXPECT_EQ(r.terminal.header["exit_code"], 0);
  EXPECT_EQ(r.out, sent);
}

TEST_F(ExecTest, TenMebibytesOfStdoutArriveIntact) {
  // Every line is distinct, so a lost, duplicated or reordered chunk changes the bytes.
  const Result r = client.call(exec_sh(1, "seq 1 1500000"), {}, 60s);
  ASSERT_EQ(r.type(), "exit");
  std::string expected;
  for (int i = 1; i <= 1500000; ++i) expected += std::to_string(i) + "\n";
  ASSERT_GE(expected.size(), 10u << 20);
  EXPECT_EQ(r.out.size(), expected.size());
  EXPECT_TRUE(r.out == expected);
  for (const auto& f : r.frames) EXPECT_LE(f.payload.size(), 256u * 1024);
}

TEST_F(ExecTest, ConcurrentExecsInterleaveAndEachEnds) {
  for (std::uint64_t id = 1; id <= 8; ++id) {
    client.send(exec_sh(id, "sleep 0.2; echo " + std::to_string(id) + "; exit " + std::to_string(id)));
  }
  for (std::uint64_t id = 8; id >= 1; --id) {
    const Result r = client.collect(id);
    EXPECT_EQ(r.out, std::to_string(id) + "\n");
    EXPECT_EQ(r.terminal.header["exit_code"], id);
  }
}

TEST_F(ExecTest, OutputCapDrainsAndMarksTruncated) {
  const Result r = client.call({{"type", "exec"},
                                {"id", 1},
                                {"argv", {"/bin/sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"}},
                                {"max_output_bytes", 1000}});
  ASSERT_EQ(r.type(), "exit");
  EXPECT_EQ(r.out.size(), 1000u);
  EXPECT_EQ(r.terminal.header["stdout_truncated"], true);
  EXPECT_EQ(r.terminal.header["stderr_truncated"], false);
  EXPECT_EQ(r.err, "done\n");
  EXPECT_EQ(r.terminal.header["exit_code"], 0);
}

TEST_F(ExecTest, MissingProgramIsNotFoundAndBadCwdToo) {
  const Result r = client.call({{"type", "exec"}, {"id", 1}, {"argv", {"no-such-program-xyz"}}});
  EXPECT_EQ(r.code(), "not_found");
  EXPECT_EQ(r.terminal.header["errno"], ENOENT);
  EXPECT_EQ(r.frames.size(), 1u) << "nothing may be started";
  const Result cwd = client.call(
      {{"type", "exec"}, {"id", 2}, {"argv", {"true"}}, {"cwd", "/no/such/dir"}});
  EXPECT_EQ(cwd.code(), "not_found");
  const Result rel = client.call({{"type", "exec"}, {"id", 3}, {"argv", {"true"}}, {"cwd", "tmp"}});
  EXPECT_EQ(rel.code(), "invalid_argument");
}

TEST_F(ExecTest, SignalCancelAndListExecs) {
  client.send({{"type", "exec"}, {"id", 1}, {"argv", {"sleep", "300"}}});
  client.send({{"type", "exec"}, {"id", 2}, {"argv", {"sleep", "300"}}});
  ASSERT_EQ(client.next_for(1)->header["type"], "started");
  ASSERT_EQ(client.next_for(2)->header["type"], "started");

  const Result list = client.call({{"type", "list_execs"}, {"id", 3}});
  ASSERT_EQ(list.type(), "ok");
  ASSERT_EQ(list.terminal.header["execs"].size(), 2u);
  EXPECT_EQ(list.terminal.header["execs"][0]["id"], 1);
  EXPECT_EQ(list.terminal.header["execs"][0]["argv"], json({"sleep", "300"}));

  EXPECT_EQ(client.call({{"type", "signal"}, {"id", 4}, {"target", 1}, {"signal", SIGTERM}}).type(), "ok");
  const Result one = client.collect(1);
  EXPECT_EQ(one.terminal.header["signal"], SIGTERM);
  EXPECT_EQ(one.terminal.header["cancelled"], false);

  EXPECT_EQ(client.call({{"type", "cancel"}, {"id", 5}, {"target", 2}}).type(), "ok");
  const Result two = client.collect(2);
  EXPECT_EQ(two.terminal.header["cancelled"], true);
  EXPECT_EQ(two.terminal.header["signal"], SIGKILL);

  EXPECT_EQ(client.call({{"type", "signal"}, {"id", 6}, {"target", 1}, {"signal", 15}}).code(), "not_running");
  EXPECT_EQ(client.call({{"type", "cancel"}, {"id", 7}, {"target", 99}}).code(), "not_running");
  EXPECT_EQ(client.call({{"type", "list_execs"}, {"id", 8}}).terminal.header["execs"].size(), 0u);
}

TEST_F(ExecTest, DuplicateIdAndUnknownTypeAreErrors) {
  client.send({{"type", "exec"}, {"id", 1}, {"argv", {"sleep", "300"}}});
  ASSERT_EQ(client.next_for(1)->header["type"], "started");
  client.send({{"type", "ping"}, {"id", 1}});
  const auto dup = client.next_for(1);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->header["type"], "error");
  EXPECT_EQ(dup->header["code"], "invalid_argument");
  EXPECT_EQ(client.call({{"type", "frobnicate"}, {"id", 2}}).code(), "unsupported");
  EXPECT_EQ(client.call({{"type", "cancel"}, {"id", 3}, {"target", 1}}).type(), "ok");
  EXPECT_EQ(client.collect(1).terminal.header["cancelled"], true);
}

TEST_F(ExecTest, ExitWaitsAtMostBrieflyForABackgroundChildHoldingThePipe) {
  const auto start = std::chrono::steady_clock::now();
  const Result r = client.call(exec_sh(1, "sleep 5 & echo quick"));
  EXPECT_EQ(r.out, "quick\n");
  EXPECT_EQ(r.terminal.header["exit_code"], 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

}  // namespace
}  // namespace forkvm::agent::test
