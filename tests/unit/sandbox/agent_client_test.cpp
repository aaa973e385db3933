// unit tier: forkvm::AgentClient against the real agent server (forkvm-agent-host on a Unix
// socket): exec, streaming, concurrency, files (a 64 MiB stream included), typed errors, and
// an agent that dies mid-request.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "contract/protocol/frame.hpp"
#include "forkvm/agent_client.hpp"
#include "tests/unit/sandbox/test_support.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using test::AgentHost;

std::unique_ptr<AgentClient> connect(const AgentHost& host) {
  AgentClientOptions o;
  o.socket_path = host.socket();
  o.connect_timeout = 5s;
  o.request_timeout = 10s;
  return AgentClient::connect(o);
}

template <class F>
ErrorKind kind_of(F&& f) {
  try {
    f();
  } catch (const OperationError& e) {
    EXPECT_TRUE(e.from_guest()) << e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no OperationError";
  return ErrorKind::kUnknown;
}

TEST(AgentClient, PingAndVersion) {
  AgentHost host;
  auto c = connect(host);
  EXPECT_EQ(c->protocol_version(), 1u);
  const PingResult p = c->ping();
  EXPECT_EQ(p.version, 1u);
  EXPECT_TRUE(c->connected());
}

TEST(AgentClient, ExecCollectsOutputAndStatus) {
  AgentHost host;
  auto c = connect(host);
  ExecResult r = c->exec({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 3);
  EXPECT_FALSE(r.signal);
  EXPECT_GT(r.pid, 0);

  r = c->exec_shell("kill -9 $$");
  EXPECT_FALSE(r.exit_code);
  ASSERT_TRUE(r.signal);
  EXPECT_EQ(*r.signal, 9);

  ExecOptions o;
  o.env = {{"GREETING", "hi there"}};
  o.cwd = host.files();
  r = c->exec_shell("echo \"$GREETING\"; pwd", o);
  EXPECT_EQ(r.stdout_data, "hi there\n" + host.files() + "\n");

  o = {};
  o.stdin_data = std::string("line1\nline2\n");
  r = c->exec({"wc", "-l"}, o);
  EXPECT_EQ(r.stdout_data.find_first_not_of(' '), r.stdout_data.find('2'));
  EXPECT_TRUE(r.ok());
}

TEST(AgentClient, ExecTimeoutIsReportedNotThrown) {
  AgentHost host;
  auto c = connect(host);
  ExecOptions o;
  o.timeout = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  const ExecResult r = c->exec({"sleep", "30"}, o);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(r.timed_out);
  ASSERT_TRUE(r.signal);
  EXPECT_EQ(*r.signal, 9);
}

TEST(AgentClient, StreamingCallbacksArriveBeforeTheEndAndInOrder) {
  AgentHost host;
  auto c = connect(host);
  std::mutex m;
  std::string out;
  std::string err;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view s) { std::lock_guard l(m); out += s; };
  cb.on_stderr = [&](std::string_view s) { std::lock_guard l(m); err += s; };
  auto p = c->start_shell("echo first; echo e1 >&2; sleep 1; echo second; echo e2 >&2", {}, cb);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard l(m);
      if (out.find("first") != std::string::npos) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no output within 5 s";
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_FALSE(p->done()) << "the first chunk should arrive while the command still runs";
  const ExecResult r = p->wait(10s);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(out, "first\nsecond\n");
  EXPECT_EQ(err, "e1\ne2\n");
  EXPECT_TRUE(r.stdout_data.empty());  // delivered to the callback instead
}

TEST(AgentClient, ConcurrentExecsFromEightThreads) {
  AgentHost host;
  auto c = connect(host);
  std::vector<std::future<int>> workers;
  for (int t = 0; t < 8; ++t) {
    workers.push_back(std::async(std::launch::async, [&c, t] {
      int good = 0;
      for (int i = 0; i < 15; ++i) {
        const std::string tag = std::to_string(t) + "-" + std::to_string(i);
        const ExecResult r = c->exec({"echo", tag});
        if (r.ok() && r.stdout_data == tag + "\n") ++good;
      }
      return good;
    }));
  }
  for (auto& w : workers) {
    ASSERT_EQ(w.wait_for(60s), std::future_status::ready);
    EXPECT_EQ(w.get(), 15);
  }
}

TEST(AgentClient, ProcessHandleStdinSignalCancelAndList) {
  AgentHost host;
  auto c = connect(host);
  ExecOptions o;
  o.interactive_stdin = true;
  auto cat = c->start({"cat"}, o);
  cat->write_stdin("hello ");
  cat->write_stdin(std::string(600 * 1024, 'x'));  // several stdin frames
  cat->close_stdin();
  EXPECT_THROW(cat->write_stdin("late"), InvalidStateError);
  ExecResult r = cat->wait(10s);
  EXPECT_EQ(r.stdout_data.size(), 6 + 600 * 1024u);
  EXPECT_EQ(r.stdout_data.substr(0, 6), "hello ");
  const ExecResult again = cat->wait(1s);  // the status again; the output was handed over
  EXPECT_EQ(again.exit_code, r.exit_code);
  EXPECT_TRUE(again.stdout_data.empty());

  auto sleeper = c->start({"sleep", "30"});
  auto listed = c->list_execs();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, sleeper->id());
  EXPECT_EQ(listed[0].argv, (std::vector<std::string>{"sleep", "30"}));
  EXPECT_EQ(listed[0].pid, sleeper->pid());
  EXPECT_FALSE(sleeper->wait_for(100ms));
  sleeper->signal(SIGTERM);
  r = sleeper->wait(10s);
  ASSERT_TRUE(r.signal);
  EXPECT_EQ(*r.signal, SIGTERM);
  EXPECT_EQ(kind_of([&] { sleeper->signal(SIGTERM); }), ErrorKind::kNotRunning);

  auto victim = c->start({"sleep", "30"});
  victim->cancel();
  r = victim->wait(10s);
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(c->list_execs().empty());
}

TEST(AgentClient, CallbackExceptionCancelsAndIsRethrown) {
  AgentHost host;
  auto c = connect(host);
  ExecCallbacks cb;
  cb.on_stdout = [](std::string_view) { throw std::runtime_error("sink full"); };
  auto p = c->start_shell("echo x; sleep 30", {}, cb);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(
      {
        try {
          p->wait(10s);
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "sink full");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(AgentClient, FilesRoundTrip) {
  AgentHost host;
  auto c = connect(host);
  const std::string d = host.files();
  std::string binary;
  for (int i = 0; i < 1000; ++i) binary.push_back(static_cast<char>(i % 256));
  c->mkdir(d + "/a/b/c", true);
  c->write_file(d + "/a/b/c/f.bin", binary, 0600);
  EXPECT_EQ(c->read_file(d + "/a/b/c/f.bin"), binary);
  const FileStat st = c->stat(d + "/a/b/c/f.bin");
  EXPECT_EQ(st.kind, FileKind::kFile);
  EXPECT_EQ(st.size, binary.size());
  EXPECT_EQ(st.mode, 0600u);
  EXPECT_TRUE(c->exists(d + "/a/b"));
  EXPECT_FALSE(c->exists(d + "/nope"));
  c->write_file(d + "/a/empty", "");
  EXPECT_EQ(c->read_file(d + "/a/empty"), "");
  auto entries = c->list_dir(d + "/a");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "b");
  EXPECT_EQ(entries[0].stat.kind, FileKind::kDirectory);
  EXPECT_EQ(entries[1].name, "empty");
  c->rename(d + "/a/empty", d + "/a/renamed");
  EXPECT_TRUE(c->exists(d + "/a/renamed"));
  c->remove(d + "/a", true);
  EXPECT_FALSE(c->exists(d + "/a"));
}

TEST(AgentClient, SixtyFourMiBStreamedBothWays) {
  AgentHost host;
  auto c = connect(host);
  test::TempDir local;
  const std::string src = (local / "src.bin");
  const std::string back = (local / "back.bin");
  constexpr size_t kSize = (64u << 20) + 12345;  // not a multiple of the chunk size
  {
    std::ofstream out(src, std::ios::binary);
    std::mt19937_64 rng(42);
    std::vector<uint64_t> block(8192);
    size_t written = 0;
    while (written < kSize) {
      for (auto& w : block) w = rng();
      const size_t n = std::min(kSize - written, block.size() * 8);
      out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
      written += n;
    }
  }
  const std::string guest = host.files() + "/big.bin";
  EXPECT_EQ(c->upload_file(src, guest), kSize);
  EXPECT_EQ(c->stat(guest).size, kSize);
  EXPECT_EQ(c->download_file(guest, back), kSize);
  std::ifstream a(src, std::ios::binary), b(back, std::ios::binary);
  std::vector<char> ba(1 << 20), bb(1 << 20);
  size_t compared = 0;
  while (a.read(ba.data(), static_cast<std::streamsize>(ba.size())) || a.gcount() > 0) {
    b.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    ASSERT_EQ(a.gcount(), b.gcount());
    ASSERT_EQ(std::memcmp(ba.data(), bb.data(), static_cast<size_t>(a.gcount())), 0) << "at " << compared;
    compared += static_cast<size_t>(a.gcount());
  }
  EXPECT_EQ(compared, kSize);
  uint64_t chunks = 0;
  EXPECT_EQ(c->read_file(guest, [&chunks](std::string_view s) { chunks += !s.empty(); }), kSize);
  EXPECT_GE(chunks, 64u);  // it really arrived in pieces
}

TEST(AgentClient, GuestErrorsAreTyped) {
  AgentHost host;
  auto c = connect(host);
  const std::string d = host.files();
  c->mkdir(d + "/dir");
  c->write_file(d + "/dir/f", "x");
  EXPECT_EQ(kind_of([&] { c->read_file(d + "/missing"); }), ErrorKind::kNotFound);
  EXPECT_EQ(kind_of([&] { c->stat(d + "/missing"); }), ErrorKind::kNotFound);
  EXPECT_EQ(kind_of([&] { c->mkdir(d + "/dir"); }), ErrorKind::kExists);
  EXPECT_EQ(kind_of([&] { c->remove(d + "/dir"); }), ErrorKind::kNotEmpty);
  EXPECT_EQ(kind_of([&] { c->read_file(d + "/dir"); }), ErrorKind::kIsADirectory);
  EXPECT_EQ(kind_of([&] { c->list_dir(d + "/dir/f"); }), ErrorKind::kNotADirectory);
  EXPECT_EQ(kind_of([&] { c->write_file(d + "/nodir/f", "x"); }), ErrorKind::kNotFound);
  EXPECT_EQ(kind_of([&] { c->exec({"/no/such/program"}); }), ErrorKind::kNotFound);
  ExecOptions o;
  o.cwd = d + "/missing";
  EXPECT_EQ(kind_of([&] { c->exec({"true"}, o); }), ErrorKind::kNotFound);
  try {
    c->read_file(d + "/missing");
  } catch (const OperationError& e) {
    EXPECT_EQ(e.path(), d + "/missing");
    EXPECT_EQ(e.op(), "read_file");
    EXPECT_NE(std::string(e.what()).find("not_found"), std::string::npos);
  }
  EXPECT_TRUE(c->ping().version == 1);  // errors leave the connection usable
}

TEST(AgentClient, EnvAndSecrets) {
  AgentHost host;
  auto c = connect(host);
  c->set_env({{"FOO", "bar"}, {"EMPTY_LATER", "x"}});
  EXPECT_EQ(c->exec_shell("echo $FOO").stdout_data, "bar\n");
  ExecOptions o;
  o.env = {{"FOO", "override"}};
  EXPECT_EQ(c->exec_shell("echo $FOO", o).stdout_data, "override\n");
  c->set_env({{"FOO", ""}});
  EXPECT_EQ(c->exec_shell("echo \"[$FOO]\"").stdout_data, "[]\n");
  c->set_secret("api-key_1", std::string("s3cr\0t", 6));
  std::ifstream in(host.state() + "/secrets/api-key_1", std::ios::binary);
  std::string got(64, '\0');
  in.read(got.data(), static_cast<std::streamsize>(got.size()));
  got.resize(static_cast<size_t>(in.gcount()));
  EXPECT_EQ(got, std::string("s3cr\0t", 6));
  EXPECT_EQ(std::filesystem::status(host.state() + "/secrets/api-key_1").permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(c->clear_secrets(), 1u);
  EXPECT_FALSE(std::filesystem::exists(host.state() + "/secrets/api-key_1"));
  EXPECT_EQ(c->clear_secrets(), 0u);
}

TEST(AgentClient, IdentityIsValidatedOnTheHostAndAnswered) {
  AgentHost host;  // a dry run: the harness never reseeds, re-clocks or renames the host
  auto c = connect(host);
  GuestIdentity id;
  id.wall_clock = std::chrono::system_clock::now();
  id.hostname = "child-1.forkvm";
  EXPECT_NO_THROW(c->set_identity(id));
  EXPECT_NO_THROW(c->set_identity({}));  // entropy from getrandom, nothing else
  GuestIdentity short_entropy;
  short_entropy.entropy = "too short";
  EXPECT_THROW(c->set_identity(short_entropy), OperationError);
  GuestIdentity bad_name;
  bad_name.hostname = "no spaces allowed";
  EXPECT_THROW(c->set_identity(bad_name), OperationError);
  bad_name.hostname = std::string(65, 'a');
  EXPECT_THROW(c->set_identity(bad_name), OperationError);
  EXPECT_EQ(c->ping().version, 1u);
}

TEST(AgentClient, ConcurrentClosesFromManyThreadsAreSafe) {
  // The Sandbox's VM watcher and shutdown() can close at the same moment.
  AgentHost host;
  for (int round = 0; round < 20; ++round) {
    auto c = connect(host);
    auto p = c->start({"sleep", "30"});
    std::vector<std::thread> closers;
    for (int i = 0; i < 4; ++i) closers.emplace_back([&c] { c->close(); });
    for (auto& t : closers) t.join();
    EXPECT_FALSE(c->connected());
    EXPECT_THROW(p->wait(5s), InvalidStateError);
  }
}

TEST(AgentClient, AgentKilledMidRequestFailsFastWithATypedError) {
  AgentHost host;
  auto c = connect(host);
  auto p = c->start({"sleep", "30"});
  auto reader = std::async(std::launch::async, [&c, &host] {
    return c->read_file(host.files() + "/never");  // may or may not be answered first
  });
  const auto t0 = std::chrono::steady_clock::now();
  host.kill_now();
  EXPECT_THROW(p->wait(10s), AgentUnreachableError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_FALSE(c->connected());
  EXPECT_THROW(c->ping(), AgentUnreachableError);
  EXPECT_THROW(c->exec({"true"}), AgentUnreachableError);
  ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
}

TEST(AgentClient, CloseFailsPendingWithInvalidState) {
  AgentHost host;
  auto c = connect(host);
  auto p = c->start({"sleep", "30"});
  c->close();
  EXPECT_THROW(p->wait(5s), InvalidStateError);
  EXPECT_THROW(c->ping(), InvalidStateError);
}

// A connection to `host` past the hello exchange, as a VM made from a capture carries it; -1
// when the agent did not greet.
int past_hellos(AgentHost& host) {
  const int fd = test::connect_to(host.socket());
  if (fd < 0) return -1;
  const std::string hello = test::hello_bytes();
  test::write_all(fd, hello);
  const std::string reply =
      test::read_until(fd, [&](const std::string& b) { return b.size() >= hello.size(); }, 5s);
  if (reply.size() != hello.size()) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The connection a VM made from a capture takes over (Vm::take_vsock_connection): already past
// its hellos, so attach() speaks frames at once.
TEST(AgentClient, AttachGoesOnOnAConnectionPastItsHellos) {
  AgentHost host;
  const int fd = past_hellos(host);
  ASSERT_GE(fd, 0) << "no hello from the agent";
  auto c = AgentClient::attach(fd, 1, test::client_options(host.socket(), 10s));
  EXPECT_EQ(c->protocol_version(), 1u);
  EXPECT_EQ(c->ping().version, 1u);
  const ExecResult r = c->exec({"sh", "-c", "echo attached"});
  EXPECT_EQ(r.stdout_data, "attached\n");
}

// A forked child's identity is on the wire when attach_with_identity() returns, as the
// connection's first frame: the guest can handle it while the host sets up the rest.
TEST(AgentClient, AttachWithIdentityWritesItFirstAndAtOnce) {
  int ends[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends), 0);
  GuestIdentity id;
  id.hostname = "child-7";
  std::function<void()> answer;
  auto c = AgentClient::attach_with_identity(ends[0], 1, test::client_options("/nonexistent", 10s),
                                             id, answer);
  ASSERT_TRUE(answer);
  // Nothing answers on the other end: what is there was written by the call itself.
  protocol::FrameDecoder d;
  const std::string got = test::read_until(
      ends[1],
      [&](const std::string& b) {
        protocol::FrameDecoder probe;
        probe.feed(b);
        return probe.next().has_value();
      },
      5s);
  d.feed(got);
  const auto first = d.next();
  ASSERT_TRUE(first.has_value()) << "no frame written by attach_with_identity()";
  EXPECT_EQ(first->header.value("type", ""), "identity");
  EXPECT_EQ(first->header.value("hostname", ""), "child-7");
  EXPECT_EQ(first->header.value("id", 0u), 1u);
  EXPECT_GE(first->payload.size(), 32u) << "entropy";
  ::close(ends[1]);  // the guest goes away: the answer fails, as send_identity()'s would
  EXPECT_THROW(answer(), AgentUnreachableError);
}

// With a real agent: the identity is answered, and requests after it run.
TEST(AgentClient, AttachWithIdentityIsAnsweredAndRequestsFollow) {
  AgentHost host;
  const int fd = past_hellos(host);
  ASSERT_GE(fd, 0) << "no hello from the agent";
  std::function<void()> answer;
  auto c = AgentClient::attach_with_identity(fd, 1, test::client_options(host.socket(), 10s),
                                             GuestIdentity{}, answer);
  const ExecResult r = c->exec({"sh", "-c", "echo after"});
  EXPECT_EQ(r.stdout_data, "after\n");
  EXPECT_NO_THROW(answer());
  // An identity the client refuses to send (a bad hostname) throws, and the descriptor is
  // closed as attach() closes one it refuses.
  const int fd2 = test::connect_to(host.socket());
  ASSERT_GE(fd2, 0);
  GuestIdentity bad;
  bad.hostname = "no spaces allowed";
  std::function<void()> refused;
  EXPECT_THROW(AgentClient::attach_with_identity(fd2, 1, test::client_options(host.socket()), bad,
                                                 refused),
               OperationError);
  EXPECT_EQ(::fcntl(fd2, F_GETFD), -1);
  EXPECT_FALSE(refused);
}

TEST(AgentClient, AttachRefusesAnUnknownVersionAndANonSocket) {
  AgentHost host;
  const int fd = test::connect_to(host.socket());
  ASSERT_GE(fd, 0);
  EXPECT_THROW(AgentClient::attach(fd, 99, test::client_options(host.socket())),
               AgentProtocolError);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "attach() must close the descriptor it refused";
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  EXPECT_THROW(AgentClient::attach(pipe_fds[0], 1, test::client_options(host.socket())),
               AgentUnreachableError);
  EXPECT_EQ(::fcntl(pipe_fds[0], F_GETFD), -1);
}

// hold_quiet() is what lets Sandbox::fork carry the connection: quiet only with nothing in
// flight, and while held no frame leaves.
TEST(AgentClient, HoldQuietSeesRequestsInFlightAndHoldsNewOnes) {
  AgentHost host;
  auto c = connect(host);
  {
    AgentClient::Quiet q = c->hold_quiet();
    EXPECT_TRUE(q.quiet) << "an idle connection";
    EXPECT_TRUE(q.hold.owns_lock());
    // A request from another thread waits for the hold.
    auto ping = std::async(std::launch::async, [&] { return c->ping(); });
    EXPECT_EQ(ping.wait_for(300ms), std::future_status::timeout) << "a frame left during the hold";
    q.hold.unlock();
    EXPECT_EQ(ping.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(ping.get().version, 1u);
  }
  auto running = c->start({"sh", "-c", "sleep 2"});
  EXPECT_FALSE(c->hold_quiet().quiet) << "an exec in flight";
  ASSERT_TRUE(running->wait(10s).exit_code);
  EXPECT_TRUE(c->hold_quiet().quiet) << "quiet again once it ended";
  c->close();
  EXPECT_FALSE(c->hold_quiet().quiet) << "a closed client";
}

// MESSAGES.md "identity": a fork sends requests right behind its identity without waiting, so
// a failed identity must keep every later request on that connection from running.
TEST(AgentServer, AFailedIdentityRefusesEveryLaterRequestOnItsConnection) {
  AgentHost host;
  const int fd = test::connect_to(host.socket());
  ASSERT_GE(fd, 0);
  test::write_all(fd, test::hello_bytes());
  // 1 byte of entropy: below the 32 the agent takes, so the identity fails.
  std::string wire = protocol::encode(protocol::Frame{{{"type", "identity"}, {"id", 1}}, "x"});
  wire += protocol::encode(protocol::Frame{
      {{"type", "exec"}, {"id", 2}, {"argv", {"sh", "-c", "echo ran > " + host.files() + "/ran"}}},
      ""});
  wire += protocol::encode(protocol::Frame{{{"type", "ping"}, {"id", 3}}, ""});
  test::write_all(fd, wire);
  auto decode = [](const std::string& bytes) {
    protocol::FrameDecoder d;
    d.feed(bytes);
    std::vector<protocol::Frame> frames;
    while (auto f = d.next()) frames.push_back(std::move(*f));
    return frames;
  };
  const std::string got = test::read_until(
      fd, [&](const std::string& b) { return decode(b).size() >= 4; }, 10s);
  ::close(fd);
  const auto frames = decode(got);
  ASSERT_EQ(frames.size(), 4u) << "hello and three answers";
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(frames[i].header.value("type", ""), "error") << frames[i].header.dump();
    EXPECT_EQ(frames[i].header.value("id", 0u), i);
  }
  EXPECT_NE(frames[2].header.dump().find("identity request failed"), std::string::npos)
      << frames[2].header.dump();
  EXPECT_FALSE(std::filesystem::exists(host.files() + "/ran")) << "the exec ran after a failed identity";
  // A new connection starts clean.
  auto c = connect(host);
  EXPECT_EQ(c->ping().version, 1u);
}

}  // namespace
}  // namespace forkvm
