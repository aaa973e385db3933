// unit tier: AgentClient against HostileAgent, an agent that lies (real frames over a real
// socket): it sends more output than the exec's cap, streams files past every limit and
// ignores the cancel, fills its error messages with terminal escapes, and keeps a request busy
// with frames it never asked for. The host must hold no more than its caps, answer with typed
// errors, and never wait without a bound.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "contract/protocol/messages.hpp"
#include "forkvm/agent_client.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/sandbox/hostile_agent.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace proto = forkvm::protocol;
using test::HostileAgent;
using test::HostileWire;

uint64_t id_of(const proto::Frame& f) { return f.header["id"].get<uint64_t>(); }
std::string type_of(const proto::Frame& f) { return f.header["type"].get<std::string>(); }

// Answers a request the test does not care about (a cancel, a ping) with a bare ok.
void answer_ok(const proto::Frame& req, HostileWire& w) { w.send({{"type", "ok"}, {"id", id_of(req)}}); }

// An exec answered with `per_stream` bytes on stdout and then on stderr, whatever
// max_output_bytes said, and an exit frame that claims nothing was truncated.
HostileAgent::Answer exec_flood(uint64_t per_stream) {
  return [per_stream](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) != proto::msg::kExec) return answer_ok(req, w);
    const uint64_t id = id_of(req);
    w.send({{"type", "started"}, {"id", id}, {"pid", 42}});
    w.flood({{"type", "stdout"}, {"id", id}}, per_stream);
    w.flood({{"type", "stderr"}, {"id", id}}, per_stream);
    w.send({{"type", "exit"}, {"id", id}, {"exit_code", 0}, {"signal", nullptr},
            {"timed_out", false}, {"cancelled", false}, {"duration_ms", 1},
            {"stdout_truncated", false}, {"stderr_truncated", false}});
  };
}

// Every byte of `s` is printable ASCII: no control byte, no terminal escape.
bool all_printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// An agent that sends frames of `type` for the request, `payload` each, every `gap`, for as
// long as the connection lives, and never the answer.
HostileAgent::Answer endless(std::string type, std::string payload, std::chrono::milliseconds gap) {
  return [type, payload, gap](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) == proto::msg::kCancel) return;  // never answered
    while (w.send({{"type", type}, {"id", id_of(req)}}, payload)) std::this_thread::sleep_for(gap);
  };
}

// Runs `call` on a thread of its own and returns the exception it ended with (nullptr if none)
// and how long it took. A call still waiting after 10 s fails the test; the client is then
// closed, which ends it.
std::pair<std::exception_ptr, std::chrono::nanoseconds> bounded(AgentClient& c,
                                                                const std::function<void()>& call) {
  const auto t0 = std::chrono::steady_clock::now();
  auto running = std::async(std::launch::async, call);
  if (running.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "the call is still waiting after 10 s";
    c.close();
  }
  std::exception_ptr error;
  try {
    running.get();
  } catch (...) {
    error = std::current_exception();
  }
  return {error, std::chrono::steady_clock::now() - t0};
}

TEST(HostileAgent, ExecOutputPastTheCapIsDroppedOnTheHost) {
  constexpr uint64_t kCap = 1 << 20;
  constexpr uint64_t kFlood = 64ull << 20;  // 64 times the cap, on each stream
  HostileAgent agent(exec_flood(kFlood));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  ExecOptions o;
  o.max_output_bytes = kCap;
  const ExecResult r = c->exec({"yes"}, o);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data.size(), kCap);
  EXPECT_EQ(r.stderr_data.size(), kCap);
  EXPECT_TRUE(r.stdout_data == test::flood_pattern(kCap)) << "the kept part is the first kCap bytes";
  EXPECT_TRUE(r.stdout_truncated) << "the agent said it was not; the host knows better";
  EXPECT_TRUE(r.stderr_truncated);
  EXPECT_TRUE(c->connected());
  EXPECT_NO_THROW(c->ping());  // the connection still serves
}

TEST(HostileAgent, ExactlyTheCapIsNotTruncated) {
  constexpr uint64_t kCap = (1 << 20) + 7;  // not a multiple of the chunk size
  HostileAgent agent(exec_flood(kCap));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  ExecOptions o;
  o.max_output_bytes = kCap;
  const ExecResult r = c->exec({"yes"}, o);
  EXPECT_EQ(r.stdout_data.size(), kCap);
  EXPECT_FALSE(r.stdout_truncated);
  EXPECT_FALSE(r.stderr_truncated);
}

TEST(HostileAgent, StreamedOutputStopsAtTheCapToo) {
  constexpr uint64_t kCap = (1 << 20) + 7;
  HostileAgent agent(exec_flood(16ull << 20));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  ExecOptions o;
  o.max_output_bytes = kCap;
  uint64_t out = 0;
  uint64_t err = 0;
  ExecCallbacks cb;
  cb.on_stdout = [&out](std::string_view s) { out += s.size(); };
  cb.on_stderr = [&err](std::string_view s) { err += s.size(); };
  const ExecResult r = c->exec_stream({"yes"}, o, cb);
  EXPECT_EQ(out, kCap);
  EXPECT_EQ(err, kCap);
  EXPECT_TRUE(r.stdout_data.empty());
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_TRUE(r.stderr_truncated);
}

// read_file answered with `total` bytes of file_data and then ok; a cancel is answered only
// once the flood is over (the agent reads nothing while it floods).
HostileAgent::Answer file_flood(uint64_t total) {
  return [total](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) != proto::msg::kReadFile) return answer_ok(req, w);
    const uint64_t id = id_of(req);
    const uint64_t sent = w.flood({{"type", "file_data"}, {"id", id}}, total);
    w.send({{"type", "ok"}, {"id", id}, {"size", sent}});
  };
}

TEST(HostileAgent, ReadFileHasASaneDefaultLimit) {
  HostileAgent agent(file_flood(kDefaultReadFileMaxBytes + (1 << 20)));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  try {
    const std::string got = c->read_file("/big");
    ADD_FAILURE() << "read " << got.size() << " bytes past the default limit";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTooLarge) << e.what();
    EXPECT_FALSE(e.from_guest()) << e.what();
  }
  EXPECT_LE(kDefaultReadFileMaxBytes, 64ull << 20);
}

// A sink still running on the reader thread when the wait ends (here the inactivity timeout:
// the sink takes longer than a request timeout) has returned before read_file does: it writes
// into the caller's objects. Seen as a crash of ReadFileHasASaneDefaultLimit under load: the
// reader appending to read_file's string while the caller, timed out, freed it.
TEST(HostileAgent, ReadFileReturnsOnlyOnceItsSinkHasReturned) {
  HostileAgent agent([](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) != proto::msg::kReadFile) return answer_ok(req, w);
    w.send({{"type", "file_data"}, {"id", id_of(req)}}, "x");  // and then nothing more
  });
  auto c = AgentClient::connect(test::client_options(agent.path(), 200ms));
  std::atomic<bool> in_sink{false};
  std::atomic<int> calls{0};
  try {
    c->read_file("/slow", [&](std::string_view) {
      ++calls;
      in_sink = true;
      std::this_thread::sleep_for(800ms);
      in_sink = false;
    }, 1 << 20);
    ADD_FAILURE() << "no error";
  } catch (const TimeoutError& e) {
    EXPECT_FALSE(in_sink) << "read_file returned while its sink still ran: " << e.what();
  }
  EXPECT_EQ(calls, 1);
}

TEST(HostileAgent, ReadFileIntoASinkStopsAtItsLimit) {
  constexpr uint64_t kLimit = (1 << 20) + 100;
  HostileAgent agent(file_flood(8ull << 20));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  uint64_t received = 0;
  try {
    c->read_file("/big", [&received](std::string_view s) { received += s.size(); }, kLimit);
    ADD_FAILURE() << "no error";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTooLarge) << e.what();
    EXPECT_EQ(e.op(), "read_file");
  }
  EXPECT_LE(received, kLimit);
  EXPECT_GT(received, 0u);
}

TEST(HostileAgent, AnAgentThatIgnoresTheCancelCannotHoldAReadOpen) {
  // The file arrives past the limit at once, then trickles on for as long as the connection
  // lives: the cancel is never read, never answered.
  const auto trickle = endless("file_data", std::string(4096, 'x'), 5ms);
  HostileAgent agent([trickle](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) == proto::msg::kReadFile) w.flood({{"type", "file_data"}, {"id", id_of(req)}}, (1 << 20) + 1);
    trickle(req, w);
  });
  auto c = AgentClient::connect(test::client_options(agent.path(), 500ms));
  const auto [error, took] = bounded(*c, [&c] { c->read_file("/endless", 1 << 20); });
  try {
    if (error) std::rethrow_exception(error);
    ADD_FAILURE() << "no error";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTooLarge) << e.what();
  }
  // One request timeout for the cancel's answer, one for the read's end, and slack.
  EXPECT_LT(took, 3s);
}

TEST(HostileAgent, DownloadPastItsLimitLeavesTheLocalFileAsItWas) {
  HostileAgent agent(file_flood(8ull << 20));
  auto c = AgentClient::connect(test::client_options(agent.path()));
  test::TempDir dir;
  const std::string local = dir / "out.bin";
  { std::ofstream(local) << "old content"; }
  ::chmod(local.c_str(), 0640);
  try {
    c->download_file("/big", local, 1 << 20);
    ADD_FAILURE() << "no error";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTooLarge) << e.what();
    EXPECT_EQ(e.op(), "download_file");
  }
  std::stringstream kept;
  kept << std::ifstream(local).rdbuf();
  EXPECT_EQ(kept.str(), "old content");
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += !e.is_directory();
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";

  // Within the limit the whole file replaces the old one and keeps its mode.
  EXPECT_EQ(c->download_file("/big", local, 8ull << 20), 8ull << 20);
  EXPECT_EQ(std::filesystem::file_size(local), 8ull << 20);
  struct stat st {};
  ASSERT_EQ(::stat(local.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(HostileAgent, AFailedDownloadLeavesNoPartialFile) {
  // Some data, then an error: the old code had already truncated and half-written the file.
  HostileAgent agent([](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) != proto::msg::kReadFile) return answer_ok(req, w);
    const uint64_t id = id_of(req);
    w.flood({{"type", "file_data"}, {"id", id}}, 300 << 10);
    w.send({{"type", "error"}, {"id", id}, {"code", "io"}, {"message", "disk gone"}, {"errno", 5}});
  });
  auto c = AgentClient::connect(test::client_options(agent.path()));
  test::TempDir dir;
  const std::string existing = dir / "existing.bin";
  { std::ofstream(existing) << "old content"; }
  const std::string fresh = dir / "fresh.bin";
  for (const std::string& local : {existing, fresh}) {
    try {
      c->download_file("/f", local);
      ADD_FAILURE() << "no error";
    } catch (const OperationError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
      EXPECT_TRUE(e.from_guest());
    }
  }
  std::stringstream kept;
  kept << std::ifstream(existing).rdbuf();
  EXPECT_EQ(kept.str(), "old content");
  EXPECT_FALSE(std::filesystem::exists(fresh));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += !e.is_directory();
  EXPECT_EQ(files, 1u);
}

TEST(HostileAgent, ErrorStringsArePrintableAndShort) {
  const std::string evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31m" + std::string(60000, 'A') + "\r\n\xc2\x9b" + "1m";
  HostileAgent agent([evil](const proto::Frame& req, HostileWire& w) {
    const uint64_t id = id_of(req);
    const std::string path = req.header.value("path", "");
    const std::string code = path == "/unknown" ? "\x1b[31mbrand_new" : "not_found";
    w.send({{"type", "error"}, {"id", id}, {"code", code}, {"message", evil}, {"errno", 2}});
  });
  auto c = AgentClient::connect(test::client_options(agent.path()));
  for (const std::string path : {"/known", "/unknown"}) {
    try {
      c->stat(path);
      ADD_FAILURE() << "no error";
    } catch (const OperationError& e) {
      const std::string what = e.what();
      EXPECT_TRUE(all_printable(what)) << what.substr(0, 200);
      EXPECT_TRUE(all_printable(e.message()));
      EXPECT_LT(what.size(), 5000u) << "the agent's 60 KB message is not kept whole";
      EXPECT_NE(what.find("\\x1b]0;pwned\\x07"), std::string::npos) << what.substr(0, 200);
      EXPECT_EQ(e.kind(), path == "/known" ? ErrorKind::kNotFound : ErrorKind::kUnknown);
    }
  }
}

TEST(HostileAgent, FramesARequestNeverAskedForDoNotKeepItWaiting) {
  // stat streams nothing back; an agent that sends file_data for it forever, and never the
  // answer, must not keep resetting its inactivity clock.
  HostileAgent agent(endless("file_data", "x", 20ms));
  auto c = AgentClient::connect(test::client_options(agent.path(), 500ms));
  const auto [error, took] = bounded(*c, [&c] { c->stat("/x"); });
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), TimeoutError);
  EXPECT_LT(took, 3s);
}

TEST(HostileAgent, OutputBeforeStartedDoesNotPostponeTheStart) {
  // "started" never comes, only output: the start waits one request timeout, not forever.
  HostileAgent agent(endless("stdout", "x", 20ms));
  auto c = AgentClient::connect(test::client_options(agent.path(), 500ms));
  const auto [error, took] = bounded(*c, [&c] { c->exec({"true"}); });
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), TimeoutError);
  EXPECT_LT(took, 3s);
}

TEST(HostileAgent, ExecSaysHowLongTheStartTookApartFromTheRun) {
  // A slow agent, not a lying one: 150 ms to "started", 150 ms more to the exit.
  HostileAgent agent([](const proto::Frame& req, HostileWire& w) {
    if (type_of(req) != proto::msg::kExec) return answer_ok(req, w);
    std::this_thread::sleep_for(150ms);
    w.send({{"type", "started"}, {"id", id_of(req)}, {"pid", 42}});
    std::this_thread::sleep_for(150ms);
    w.send({{"type", "exit"}, {"id", id_of(req)}, {"exit_code", 0}, {"signal", nullptr},
            {"timed_out", false}, {"cancelled", false}, {"duration_ms", 150},
            {"stdout_truncated", false}, {"stderr_truncated", false}});
  });
  auto c = AgentClient::connect(test::client_options(agent.path()));
  const auto t0 = std::chrono::steady_clock::now();
  const ExecResult r = c->exec({"true"});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r.ok());
  EXPECT_GE(r.until_started, 150ms);
  // The 150 ms run after "started" is not in it (50 ms of it left for a loaded host's wake-ups).
  EXPECT_LE(r.until_started + 100ms, took);
}

TEST(HostileAgent, AGuestConsoleTailIsPrintable) {
  const GuestError e("the VM stopped", "boot ok\r\n\x1b[31mred\x1b[0m\n\tbell\x07\n");
  EXPECT_EQ(e.console_tail(), "boot ok\n\\x1b[31mred\\x1b[0m\n\tbell\\x07\n");
  const std::string what = e.what();
  EXPECT_EQ(what.find('\x1b'), std::string::npos) << what;
  EXPECT_NE(what.find("the VM stopped\n--- guest console (tail) ---\nboot ok\n"), std::string::npos) << what;
  const GuestError big("x", std::string(100000, '\x1b'));
  EXPECT_LE(big.console_tail().size(), 4u * 16 * 1024 + 3);
}

}  // namespace
}  // namespace forkvm
