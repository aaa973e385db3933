// Connection-level behaviour: malformed frames close only their connection; closing a
// connection kills its execs; hostile input does not bring the agent down.
#include <gtest/gtest.h>

#include "contract/protocol/frame.hpp"
#include "tests/unit/agent/agent_harness.hpp"

namespace forkvm::agent::test {
namespace {

class ConnectionTest : public ::testing::Test {
 protected:
  AgentHost agent;
};

TEST_F(ConnectionTest, MalformedFrameClosesOnlyThatConnection) {
  Client good(agent.agent_socket());
  const std::vector<std::string> garbage = {
      "GARBAGE!",
      std::string("FKVM\x02\x00\x00\x00\x00\x00\x00\x00{]", 14),          // bad JSON
      std::string("FKVM\x01\x00\x01\x00\x00\x00\x00\x00", 12),              // header too large
      protocol::encode({json{{"type", "x"}, {"id", 1}}, {}}).replace(12, 1, "["),
  };
  for (const auto& bytes : garbage) {
    Client bad(agent.agent_socket());
    bad.send_raw(bytes);
    EXPECT_TRUE(bad.closed_by_peer()) << "garbage did not close the connection";
  }
  Client no_hello(agent.agent_socket(), false);
  no_hello.send({{"type", "ping"}, {"id", 1}});
  EXPECT_TRUE(no_hello.closed_by_peer()) << "a first frame that is not a hello must close";
  Client bad_version(agent.agent_socket(), false);
  bad_version.send({{"type", "hello"}, {"id", 0}, {"version", 9}, {"min_version", 9}});
  EXPECT_TRUE(bad_version.closed_by_peer());

  EXPECT_EQ(good.call({{"type", "ping"}, {"id", 7}}).type(), "ok");
  EXPECT_TRUE(agent.alive());
}

TEST_F(ConnectionTest, ClosingAConnectionKillsItsExecs) {
  Client other(agent.agent_socket());
  pid_t pid = -1;
  {
    Client client(agent.agent_socket());
    client.send({{"type", "exec"}, {"id", 1}, {"argv", {"sleep", "300"}}});
    const auto started = client.next_for(1);
    ASSERT_TRUE(started);
    pid = started->header["pid"].get<pid_t>();
    ASSERT_TRUE(process_exists(pid));
  }
  EXPECT_TRUE(eventually([&] { return !process_exists(pid); }, 10s));
  EXPECT_EQ(other.call({{"type", "ping"}, {"id", 1}}).type(), "ok");
}

TEST_F(ConnectionTest, ManyConnectionsAreServedTogether) {
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<Client>(agent.agent_socket()));
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i]->send({{"type", "exec"}, {"id", 1}, {"argv", {"echo", std::to_string(i)}}});
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    EXPECT_EQ(clients[i]->collect(1).out, std::to_string(i) + "\n");
  }
}

TEST_F(ConnectionTest, AStalledReaderDoesNotBlockOthersAndIsBounded) {
  // This client never reads: the agent must stop reading the command's output (back-pressure)
  // instead of buffering 200 MiB, and keep serving everyone else.
  Client stalled(agent.agent_socket());
  stalled.send({{"type", "exec"}, {"id", 1}, {"shell", "head -c 209715200 /dev/zero"}});
  Client other(agent.agent_socket());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(other.call({{"type", "ping"}, {"id", 1}}, {}, 5s).type(), "ok");
  }
  const Result r = other.call({{"type", "exec"}, {"id", 2}, {"shell", "ps -o rss= -p $PPID"}});
  ASSERT_EQ(r.type(), "exit");
  EXPECT_LT(std::stol(r.out), 64 * 1024) << "agent RSS (KiB) grew without bound";
}

TEST_F(ConnectionTest, HostileFieldTypesAreErrorsNotCrashes) {
  Client client(agent.agent_socket());
  const std::vector<json> requests = {
      {{"type", "exec"}, {"id", 1}},
      {{"type", "exec"}, {"id", 1}, {"argv", json::array()}},
      {{"type", "exec"}, {"id", 1}, {"argv", {1, 2}}},
      {{"type", "exec"}, {"id", 1}, {"argv", {"true"}}, {"timeout_ms", -5}},
      {{"type", "exec"}, {"id", 1}, {"argv", {"true"}}, {"env", "x"}},
      {{"type", "signal"}, {"id", 1}, {"target", "a"}},
      {{"type", "signal"}, {"id", 1}, {"target", 1}, {"signal", 1000}},
      {{"type", "set_env"}, {"id", 1}, {"env", {{"K", 5}}}},
      {{"type", "set_env"}, {"id", 1}},
      {{"type", "set_secret"}, {"id", 1}},
      {{"type", "rename"}, {"id", 1}, {"from", "/x"}},
      {{"type", "write_file"}, {"id", 1}, {"path", "/tmp/x"}, {"mode", "rw"}},
  };
  for (const auto& request : requests) {
    const Result r = client.call(request);
    EXPECT_EQ(r.type(), "error") << request.dump();
    EXPECT_EQ(r.code(), "invalid_argument") << request.dump();
    if (request["type"] == "write_file") client.send({{"type", "file_end"}, {"id", 1}});
  }
  client.send({{"type", "stdin"}, {"id", 99}}, "nobody");
  client.send({{"type", "file_end"}, {"id", 98}});
  EXPECT_EQ(client.call({{"type", "ping"}, {"id", 2}}).type(), "ok");
}

}  // namespace
}  // namespace forkvm::agent::test
