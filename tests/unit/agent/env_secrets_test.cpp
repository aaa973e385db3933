// set_env / set_secret on both protocols, and the 5555 line protocol (MESSAGES.md).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tests/unit/agent/agent_harness.hpp"

namespace forkvm::agent::test {
namespace {

class EnvSecretsTest : public ::testing::Test {
 protected:
  mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  AgentHost agent;
  Client client{agent.agent_socket()};
};

TEST_F(EnvSecretsTest, SecretsAre0600InA0700Dir) {
  const std::string value("s3cr\0t\n", 7);
  ASSERT_EQ(client.call({{"type", "set_secret"}, {"id", 1}, {"name", "db-pass_1"}}, value).type(), "ok");
  const std::string file = agent.state_dir() + "/secrets/db-pass_1";
  EXPECT_EQ(read_whole(file), value);
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(mode_of(agent.state_dir() + "/secrets"), 0700u);
  for (const std::string& name : std::vector<std::string>{"../escape", "a/b", "", "with space", std::string(256, 'a')}) {
    EXPECT_EQ(client.call({{"type", "set_secret"}, {"id", 2}, {"name", name}}, "x").code(),
              "invalid_argument") << name;
  }
  ASSERT_EQ(client.call({{"type", "set_secret"}, {"id", 3}, {"name", std::string(255, 'a')}}, "v").type(), "ok");
}

TEST_F(EnvSecretsTest, ClearSecretsOverwritesBeforeUnlinking) {
  ASSERT_EQ(client.call({{"type", "clear_secrets"}, {"id", 1}}).terminal.header["cleared"], 0);
  const std::string value = "token-0123456789";
  ASSERT_EQ(client.call({{"type", "set_secret"}, {"id", 2}, {"name", "a"}}, value).type(), "ok");
  ASSERT_EQ(client.call({{"type", "set_secret"}, {"id", 3}, {"name", "b"}}, "bb").type(), "ok");
  const std::string file = agent.state_dir() + "/secrets/a";
  // Held open, the inode outlives the unlink: what it holds then is what the agent left.
  const int held = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  const Result r = client.call({{"type", "clear_secrets"}, {"id", 4}});
  ASSERT_EQ(r.type(), "ok");
  EXPECT_EQ(r.terminal.header["cleared"], 2);
  std::string left(value.size() + 8, 'x');
  const ssize_t n = ::pread(held, left.data(), left.size(), 0);
  ::close(held);
  EXPECT_EQ(n, static_cast<ssize_t>(value.size()));
  left.resize(static_cast<size_t>(std::max<ssize_t>(n, 0)));
  EXPECT_EQ(left, std::string(value.size(), '\0'));
  struct stat st {};
  EXPECT_NE(::stat(file.c_str(), &st), 0);
  EXPECT_NE(::stat((agent.state_dir() + "/secrets/b").c_str(), &st), 0);
}

TEST_F(EnvSecretsTest, BadEnvKeyRejectsTheWholeBatch) {
  ASSERT_EQ(client.call({{"type", "set_env"}, {"id", 1}, {"env", {{"KEEP", "1"}}}}).type(), "ok");
  const Result bad = client.call(
      {{"type", "set_env"}, {"id", 2}, {"env", {{"AAA", "new"}, {"BAD-KEY", "x"}, {"ZZZ", "y"}}}});
  EXPECT_EQ(bad.code(), "invalid_argument");
  EXPECT_NE(bad.terminal.header["message"].get<std::string>().find("BAD-KEY"), std::string::npos);
  const Result bad_value = client.call(
      {{"type", "set_env"}, {"id", 3}, {"env", {{"AAA", "new"}, {"B", "line\nbreak"}}}});
  EXPECT_EQ(bad_value.code(), "invalid_argument");
  EXPECT_EQ(read_whole(agent.state_dir() + "/env"), "KEEP=1\n");
}

TEST_F(EnvSecretsTest, MetadataPortSharesTheSameEnvAndSecrets) {
  LineClient meta(agent.metadata_socket());
  EXPECT_EQ(meta.call({{"op", "ping"}, {"id", "p1"}}), json({{"id", "p1"}, {"ok", true}}));
  EXPECT_EQ(meta.call({{"op", "set_env"}, {"id", 2}, {"env", {{"FROM_META", "yes"}}}})["ok"], true);
  const Result r = client.call({{"type", "exec"}, {"id", 1}, {"argv", {"/bin/sh", "-c", "echo $FROM_META"}}});
  EXPECT_EQ(r.out, "yes\n");
  // "aGVsbG8=" is "hello".
  EXPECT_EQ(meta.call({{"op", "set_secret"}, {"id", 3}, {"name", "tok"}, {"value_b64", "aGVsbG8="}})["ok"], true);
  EXPECT_EQ(read_whole(agent.state_dir() + "/secrets/tok"), "hello");
  EXPECT_EQ(mode_of(agent.state_dir() + "/secrets/tok"), 0600u);

  const json bad_b64 = meta.call({{"op", "set_secret"}, {"id", 4}, {"name", "t"}, {"value_b64", "!!"}});
  EXPECT_EQ(bad_b64["ok"], false);
  EXPECT_EQ(bad_b64["id"], 4);
  const json bad_key = meta.call({{"op", "set_env"}, {"id", 5}, {"env", {{"OK", "1"}, {"9X", "2"}}}});
  EXPECT_EQ(bad_key["ok"], false);
  EXPECT_EQ(read_whole(agent.state_dir() + "/env"), "FROM_META=yes\n");
  EXPECT_EQ(meta.call({{"op", "launch"}, {"id", 6}})["ok"], false);
}

TEST_F(EnvSecretsTest, MetadataBadJsonGetsNullIdAndOverlongLineCloses) {
  LineClient meta(agent.metadata_socket());
  meta.send("this is not json\n");
  const json answer = json::parse(*meta.line());
  EXPECT_TRUE(answer["id"].is_null());
  EXPECT_EQ(answer["ok"], false);
  meta.send("[1,2,3]\n");
  EXPECT_EQ(json::parse(*meta.line())["ok"], false);
  EXPECT_EQ(meta.call({{"op", "ping"}, {"id", 1}})["ok"], true);

  meta.send(std::string((1u << 20) + 10, 'x'));
  EXPECT_TRUE(meta.closed_by_peer());
  LineClient again(agent.metadata_socket());
  EXPECT_EQ(again.call({{"op", "ping"}, {"id", 2}})["ok"], true);
}

}  // namespace
}  // namespace forkvm::agent::test
