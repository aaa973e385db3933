// File requests over the framed protocol (MESSAGES.md "Files").
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "tests/unit/agent/agent_harness.hpp"

namespace forkvm::agent::test {
namespace {

namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
 protected:
  // Uploads `bytes` as write_file `id` in 256 KiB chunks.
  Result upload(std::uint64_t id, const std::string& path, const std::string& bytes,
                std::optional<int> mode = std::nullopt) {
    json request = {{"type", "write_file"}, {"id", id}, {"path", path}};
    if (mode) request["mode"] = *mode;
    client.send(request);
    for (std::size_t off = 0; off < bytes.size(); off += 256 * 1024) {
      client.send({{"type", "file_data"}, {"id", id}}, bytes.substr(off, 256 * 1024));
    }
    client.send({{"type", "file_end"}, {"id", id}});
    return client.collect(id, 60s);
  }

  std::vector<std::string> names_in(const std::string& where) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(where)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  AgentHost agent;
  Client client{agent.agent_socket()};
  std::string dir = agent.dir();
};

TEST_F(FilesTest, ThirtyTwoMebibytesWriteAndReadBackEqual) {
  std::string data(32u << 20, '\0');
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i + 8 <= data.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(data.data() + i, &v, 8);
  }
  const std::string path = dir + "/big.bin";
  const Result w = upload(1, path, data);
  ASSERT_EQ(w.type(), "ok") << w.terminal.header.dump();
  EXPECT_EQ(w.terminal.header["size"], data.size());
  EXPECT_TRUE(read_whole(path) == data);
  const Result r = client.call({{"type", "read_file"}, {"id", 2}, {"path", path}}, {}, 60s);
  ASSERT_EQ(r.type(), "ok");
  EXPECT_EQ(r.terminal.header["size"], data.size());
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_TRUE(r.out == data);
  for (const auto& f : r.frames) EXPECT_LE(f.payload.size(), 256u * 1024);
}

TEST_F(FilesTest, ReplaceIsAtomicAndLeavesNoTempFiles) {
  const std::string path = dir + "/config";
  const std::string a(300000, 'A'), b(300000, 'B');
  write_whole(path, a);
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    while (!stop) {
      const std::string got = read_whole(path);
      if (got != a && got != b) ++torn;
      ++reads;
    }
  });
  for (std::uint64_t i = 1; i <= 20; ++i) {
    ASSERT_EQ(upload(i, path, i % 2 ? b : a).type(), "ok");
  }
  stop = true;
  reader.join();
  EXPECT_EQ(torn, 0) << "a reader saw a partial file in " << reads << " reads";
  EXPECT_GT(reads, 0);
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"agent.sock", "config", "meta.sock", "state"}));
}

TEST_F(FilesTest, ModeIsApplied) {
  const std::string path = dir + "/script.sh";
  ASSERT_EQ(upload(1, path, "#!/bin/sh\n", 0750).type(), "ok");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  const Result s = client.call({{"type", "stat"}, {"id", 2}, {"path", path}});
  EXPECT_EQ(s.terminal.header["kind"], "file");
  EXPECT_EQ(s.terminal.header["mode"], 0750);
  EXPECT_EQ(s.terminal.header["size"], 10);
}

TEST_F(FilesTest, WriteErrorsReplyAtOnceAndDiscardUntilFileEnd) {
  client.send({{"type", "write_file"}, {"id", 1}, {"path", dir + "/missing/x"}});
  const auto err = client.next_for(1);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->header["code"], "not_found");
  client.send({{"type", "file_data"}, {"id", 1}}, "ignored");
  client.send({{"type", "file_end"}, {"id", 1}});
  EXPECT_EQ(client.call({{"type", "ping"}, {"id", 2}}).type(), "ok");
  EXPECT_FALSE(client.next_for(1, 200ms)) << "nothing more may come for a failed upload";
  EXPECT_EQ(upload(3, dir, "x").code(), "is_a_directory");
}

TEST_F(FilesTest, CancelledUploadRemovesItsTempFile) {
  client.send({{"type", "write_file"}, {"id", 1}, {"path", dir + "/partial"}});
  client.send({{"type", "file_data"}, {"id", 1}}, "some bytes");
  ASSERT_EQ(client.call({{"type", "ping"}, {"id", 2}}).type(), "ok");  // the data arrived
  EXPECT_EQ(client.call({{"type", "cancel"}, {"id", 3}, {"target", 1}}).type(), "ok");
  const auto cancelled = client.next_for(1);
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->header["code"], "cancelled");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"agent.sock", "meta.sock", "state"}));
}

TEST_F(FilesTest, MkdirParentsListStatExists) {
  ASSERT_EQ(client.call({{"type", "mkdir"}, {"id", 1}, {"path", dir + "/a/b/c"}, {"parents", true}}).type(), "ok");
  EXPECT_EQ(client.call({{"type", "mkdir"}, {"id", 2}, {"path", dir + "/a/b/c"}, {"parents", true}}).type(), "ok");
  EXPECT_EQ(client.call({{"type", "mkdir"}, {"id", 3}, {"path", dir + "/a/b/c"}}).code(), "exists");
  EXPECT_EQ(client.call({{"type", "mkdir"}, {"id", 4}, {"path", dir + "/x/y"}}).code(), "not_found");
  EXPECT_EQ(client.call({{"type", "mkdir"}, {"id", 5}, {"path", dir + "/m"}, {"mode", 0700}}).type(), "ok");
  EXPECT_EQ(client.call({{"type", "stat"}, {"id", 6}, {"path", dir + "/m"}}).terminal.header["mode"], 0700);
  write_whole(dir + "/a/file", "12345");
  ASSERT_EQ(::symlink("file", (dir + "/a/link").c_str()), 0);

  const Result list = client.call({{"type", "list_dir"}, {"id", 7}, {"path", dir + "/a"}});
  ASSERT_EQ(list.type(), "ok");
  const json& entries = list.terminal.header["entries"];
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0]["name"], "b");
  EXPECT_EQ(entries[0]["kind"], "dir");
  EXPECT_EQ(entries[1]["name"], "file");
  EXPECT_EQ(entries[1]["size"], 5);
  EXPECT_EQ(entries[2]["name"], "link");
  EXPECT_EQ(entries[2]["kind"], "symlink");

  EXPECT_EQ(client.call({{"type", "stat"}, {"id", 8}, {"path", dir + "/a/link"}}).terminal.header["kind"], "symlink");
  EXPECT_EQ(client.call({{"type", "stat"}, {"id", 9}, {"path", dir + "/nope"}}).code(), "not_found");
  EXPECT_EQ(client.call({{"type", "exists"}, {"id", 10}, {"path", dir + "/a/file"}}).terminal.header["exists"], true);
  EXPECT_EQ(client.call({{"type", "exists"}, {"id", 11}, {"path", dir + "/nope"}}).terminal.header["exists"], false);
  EXPECT_EQ(client.call({{"type", "list_dir"}, {"id", 12}, {"path", dir + "/a/file"}}).code(), "not_a_directory");
  EXPECT_EQ(client.call({{"type", "read_file"}, {"id", 13}, {"path", dir + "/a"}}).code(), "is_a_directory");
}

TEST_F(FilesTest, RecursiveRemoveDoesNotFollowSymlinksOutOfTheTree) {
  fs::create_directories(dir + "/outside");
  write_whole(dir + "/outside/keep", "precious");
  fs::create_directories(dir + "/tree/sub/deeper");
  write_whole(dir + "/tree/sub/deeper/f", "x");
  ASSERT_EQ(::symlink((dir + "/outside").c_str(), (dir + "/tree/sub/escape").c_str()), 0);

  EXPECT_EQ(client.call({{"type", "remove"}, {"id", 1}, {"path", dir + "/tree"}}).code(), "not_empty");
  ASSERT_EQ(client.call({{"type", "remove"}, {"id", 2}, {"path", dir + "/tree"}, {"recursive", true}}).type(), "ok");
  EXPECT_FALSE(fs::exists(dir + "/tree"));
  EXPECT_EQ(read_whole(dir + "/outside/keep"), "precious");
  EXPECT_EQ(client.call({{"type", "remove"}, {"id", 3}, {"path", dir + "/tree"}}).code(), "not_found");
  EXPECT_EQ(client.call({{"type", "remove"}, {"id", 4}, {"path", "/"}, {"recursive", true}}).code(), "invalid_argument");
}

TEST_F(FilesTest, RenameMovesAndReportsErrors) {
  write_whole(dir + "/from", "data");
  ASSERT_EQ(client.call({{"type", "rename"}, {"id", 1}, {"from", dir + "/from"}, {"to", dir + "/to"}}).type(), "ok");
  EXPECT_EQ(read_whole(dir + "/to"), "data");
  EXPECT_FALSE(fs::exists(dir + "/from"));
  EXPECT_EQ(client.call({{"type", "rename"}, {"id", 2}, {"from", dir + "/from"}, {"to", dir + "/x"}}).code(), "not_found");
}

TEST_F(FilesTest, BadPathsAreInvalidArgument) {
  const std::string nul = dir + std::string("/a\0b", 4);
  const std::string huge = "/" + std::string(5000, 'a');
  for (const std::string& p : {std::string("relative/path"), std::string(), nul, huge}) {
    for (const char* type : {"stat", "read_file", "list_dir", "remove", "exists", "mkdir"}) {
      const Result r = client.call({{"type", type}, {"id", 1}, {"path", p}});
      EXPECT_EQ(r.code(), "invalid_argument") << type << " " << p.size();
    }
    EXPECT_EQ(upload(2, p, "x").code(), "invalid_argument");
  }
  EXPECT_EQ(client.call({{"type", "stat"}, {"id", 3}, {"path", 7}}).code(), "invalid_argument");
  EXPECT_EQ(client.call({{"type", "stat"}, {"id", 4}}).code(), "invalid_argument");
}

}  // namespace
}  // namespace forkvm::agent::test
