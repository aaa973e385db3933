// unit tier: the request headers built (and checked) on the host, and the parsing of replies
// whose fields come from the guest.
#include <gtest/gtest.h>

#include "forkvm/sandbox_errors.hpp"
#include "sandbox/requests.hpp"

namespace forkvm::sandbox {
namespace {

using nlohmann::json;

TEST(Requests, ExecHeaderCarriesEveryOption) {
  ExecOptions o;
  o.env = {{"A", "1"}};
  o.cwd = "/root";
  o.timeout = std::chrono::milliseconds(1500);
  o.max_output_bytes = 1024;
  const json j = exec_request({"ls", "-l"}, "", o, true);
  EXPECT_EQ(j["type"], "exec");
  EXPECT_EQ(j["argv"], json({"ls", "-l"}));
  EXPECT_FALSE(j.contains("shell"));
  EXPECT_EQ(j["env"]["A"], "1");
  EXPECT_EQ(j["cwd"], "/root");
  EXPECT_EQ(j["timeout_ms"], 1500);
  EXPECT_EQ(j["max_output_bytes"], 1024);
  EXPECT_EQ(j["stdin"], true);
  const json s = exec_request({}, "ls | wc -l", {}, false);
  EXPECT_EQ(s["shell"], "ls | wc -l");
  EXPECT_FALSE(s.contains("argv"));
  EXPECT_FALSE(s.contains("stdin"));
  EXPECT_FALSE(s.contains("cwd"));
}

TEST(Requests, BadFieldsAreHostSideInvalidArgument) {
  auto rejected = [](auto&& f) {
    try {
      f();
    } catch (const OperationError& e) {
      return !e.from_guest() && e.kind() == ErrorKind::kInvalidArgument;
    }
    return false;
  };
  ExecOptions zero;
  zero.timeout = std::chrono::milliseconds(0);
  EXPECT_TRUE(rejected([&] { exec_request({"x"}, "", zero, false); }));
  ExecOptions no_output;
  no_output.max_output_bytes = 0;
  EXPECT_TRUE(rejected([&] { exec_request({"x"}, "", no_output, false); }));
  EXPECT_TRUE(rejected([] { mkdir_request("/a", false, 0100000); }));
  EXPECT_TRUE(rejected([] { path_request("stat", std::string("/a\0b", 4)); }));
  EXPECT_TRUE(rejected([] { set_env_request({{"", "x"}}); }));
  EXPECT_NO_THROW(set_env_request({{"_ok9", ""}}));
  EXPECT_NO_THROW(set_secret_request("a-b_C9", "v"));
}

TEST(Requests, ExitFrameParsing) {
  ExecResult r;
  parse_exit(json::parse(R"({"type":"exit","id":1,"exit_code":null,"signal":9,"timed_out":true,
    "cancelled":false,"duration_ms":250,"stdout_truncated":true,"stderr_truncated":false})"), r);
  EXPECT_FALSE(r.exit_code);
  EXPECT_EQ(r.signal, 9);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.duration.count(), 250);
  EXPECT_TRUE(r.stdout_truncated);
  // Guest-controlled fields of the wrong shape are a protocol error, not a crash.
  EXPECT_THROW(parse_exit(json::parse(R"({"exit_code":0,"signal":9})"), r), AgentProtocolError);
  EXPECT_THROW(parse_exit(json::parse(R"({"exit_code":"0"})"), r), AgentProtocolError);
  EXPECT_THROW(parse_stat(json::parse(R"({"kind":"file","size":-1})")), AgentProtocolError);
  EXPECT_THROW(parse_stat(json::parse(R"([1])")), AgentProtocolError);
  const FileStat st = parse_stat(json::parse(R"({"kind":"dir","size":4096,"mode":16877,"mtime_ms":5})"));
  EXPECT_EQ(st.kind, FileKind::kDirectory);
  EXPECT_EQ(st.mode, 0755u);
}

TEST(Requests, ExecOutcomeSaysHowTheCommandEnded) {
  ExecResult r;
  r.exit_code = 3;
  EXPECT_EQ(r.outcome(), "exit status 3");
  r.exit_code.reset();
  r.signal = 9;
  EXPECT_EQ(r.outcome(), "killed by signal 9");
  r.timed_out = true;
  EXPECT_EQ(r.outcome(), "timed out (killed by signal 9)");
  r.timed_out = false;
  r.cancelled = true;
  EXPECT_EQ(r.outcome(), "cancelled (killed by signal 9)");
  EXPECT_EQ(ExecResult{}.outcome(), "no exit status");
}

TEST(Requests, ErrorFramesMapToKinds) {
  const OperationError e = error_from_frame(
      json::parse(R"({"type":"error","id":3,"code":"no_space","message":"disk full","errno":28})"),
      "write_file", "/x");
  EXPECT_EQ(e.kind(), ErrorKind::kNoSpace);
  EXPECT_EQ(e.sys_errno(), 28);
  EXPECT_TRUE(e.from_guest());
  EXPECT_EQ(e.message(), "disk full");
  EXPECT_EQ(std::string(e.what()), "write_file /x: no_space: disk full");
  EXPECT_EQ(error_from_frame(json::parse(R"({"code":"brand_new"})"), "x", "").kind(), ErrorKind::kUnknown);
  for (auto k : {ErrorKind::kNotFound, ErrorKind::kReadOnly, ErrorKind::kTooLarge, ErrorKind::kCancelled,
                 ErrorKind::kIo, ErrorKind::kInternal}) {
    EXPECT_EQ(error_kind_from_code(to_string(k)), k);
  }
}

}  // namespace
}  // namespace forkvm::sandbox
