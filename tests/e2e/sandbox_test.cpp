// e2e tier: forkvm::Sandbox on the built-in image — the real guest kernel, virtio-mmio,
// virtio-vsock and the agent — directly on a VMX/SVM host, otherwise inside kvm-lab.
//
// Booting is the expensive part under TCG, so one sandbox serves the whole suite; tests that
// need their own VM (teardown, the 5555 protocol's socket) say so.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/e2e/sandbox_helpers.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::e2e {
namespace {

using namespace std::chrono_literals;

SandboxConfig sandbox_config() {
  SandboxConfig c;
  c.vm = builtin_config(2, 512, "");
  c.boot_timeout = kBootDeadline;
  c.request_timeout = 120s;  // TCG: a guest syscall-heavy request can take seconds
  return c;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xF];
  }
  return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

class E2eSandbox : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { box_ = Sandbox::create(sandbox_config()).release(); }
  static void TearDownTestSuite() {
    delete box_;
    box_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(box_, nullptr);
    ASSERT_EQ(box_->state(), SandboxState::kReady) << box_->console_tail();
  }
  static Sandbox* box_;
};
Sandbox* E2eSandbox::box_ = nullptr;

TEST_F(E2eSandbox, GuestClockIsTheHostsAndIdentityCanBeChanged) {
  // Sandbox::create set the wall clock (the guest has no RTC: it would say 1970).
  const auto host_now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const long guest_now = std::stol(box_->exec({"date", "+%s"}).stdout_data);
  EXPECT_LT(std::abs(guest_now - host_now), 120) << "guest " << guest_now << " host " << host_now;
  const std::string before = box_->exec_shell("head -c 16 /dev/urandom | od -An -tx1").stdout_data;
  GuestIdentity id;
  id.hostname = "e2e-child.forkvm";
  id.wall_clock = std::chrono::system_clock::now() + std::chrono::hours(24 * 365);
  box_->agent().set_identity(id);
  EXPECT_EQ(box_->exec({"hostname"}).stdout_data, "e2e-child.forkvm\n");
  const long later = std::stol(box_->exec({"date", "+%s"}).stdout_data);
  EXPECT_GT(later, host_now + 364L * 24 * 3600);
  EXPECT_NE(box_->exec_shell("head -c 16 /dev/urandom | od -An -tx1").stdout_data, before);
  id.hostname.reset();
  id.wall_clock = std::chrono::system_clock::now();  // put it back for the other tests
  box_->agent().set_identity(id);
}

TEST_F(E2eSandbox, EchoArgvExec) {
  const ExecResult r = box_->exec({"echo", "hello", "from the guest"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "hello from the guest\n");
  EXPECT_EQ(r.stderr_data, "");
  EXPECT_FALSE(r.timed_out);
  EXPECT_GT(r.pid, 1);
}

TEST_F(E2eSandbox, ExitCodesAndSignalsAreReported) {
  EXPECT_EQ(box_->exec_shell("exit 7").exit_code, 7);
  EXPECT_EQ(box_->exec({"false"}).exit_code, 1);
  const ExecResult killed = box_->exec_shell("kill -TERM $$; sleep 5");
  EXPECT_FALSE(killed.exit_code.has_value());
  EXPECT_EQ(killed.signal, 15);
}

TEST_F(E2eSandbox, StderrIsKeptApartFromStdout) {
  const ExecResult r = box_->exec_shell("echo out; echo err >&2; echo out2");
  EXPECT_EQ(r.stdout_data, "out\nout2\n");
  EXPECT_EQ(r.stderr_data, "err\n");
}

TEST_F(E2eSandbox, MissingProgramIsATypedNotFoundError) {
  try {
    box_->exec({"/no/such/program"});
    FAIL() << "expected OperationError";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound) << e.what();
  }
}

TEST_F(E2eSandbox, EnvAndCwdApplyPerCommand) {
  ExecOptions o;
  o.env = {{"GREETING", "hi there"}};
  o.cwd = "/proc";
  const ExecResult r = box_->exec_shell("echo \"$GREETING\"; pwd", o);
  EXPECT_EQ(r.stdout_data, "hi there\n/proc\n");
}

TEST_F(E2eSandbox, PersistentEnvAppliesToLaterExecsAndEmptyValueDeletes) {
  box_->set_env({{"FORKVM_E2E_A", "one"}, {"FORKVM_E2E_B", "two"}});
  EXPECT_EQ(box_->exec_shell("echo $FORKVM_E2E_A-$FORKVM_E2E_B").stdout_data, "one-two\n");
  box_->set_env({{"FORKVM_E2E_A", ""}});
  EXPECT_EQ(box_->exec_shell("echo ${FORKVM_E2E_A-unset}-$FORKVM_E2E_B").stdout_data,
            "unset-two\n");
  // Per-command env wins over the persistent one.
  ExecOptions o;
  o.env = {{"FORKVM_E2E_B", "override"}};
  EXPECT_EQ(box_->exec_shell("echo $FORKVM_E2E_B", o).stdout_data, "override\n");
}

TEST_F(E2eSandbox, BadEnvKeysAndSecretNamesAreRejectedBeforeSending) {
  EXPECT_THROW(box_->set_env({{"GOOD", "x"}, {"1BAD", "y"}}), OperationError);
  EXPECT_THROW(box_->set_env({{"NEWLINE", "a\nb"}}), OperationError);
  EXPECT_THROW(box_->set_secret("../escape", "x"), OperationError);
  EXPECT_THROW(box_->set_secret("", "x"), OperationError);
  EXPECT_THROW(box_->exec({}), OperationError);
  // Nothing of the rejected batch was applied.
  EXPECT_EQ(box_->exec_shell("echo ${GOOD-unset}").stdout_data, "unset\n");
}

TEST_F(E2eSandbox, SecretsAreFilesWithMode0600InA0700Directory) {
  box_->set_secret("api_token", "s3cr3t-value");
  EXPECT_EQ(box_->read_file("/run/forkvm/secrets/api_token"), "s3cr3t-value");
  EXPECT_EQ(box_->stat("/run/forkvm/secrets/api_token").mode & 0777, 0600u);
  EXPECT_EQ(box_->stat("/run/forkvm/secrets").mode & 0777, 0700u);
}

TEST_F(E2eSandbox, ClearSecretsRemovesThemAndFreedPagesAreZeroed) {
  box_->set_secret("to_clear", "s3cr3t-to-clear");
  ASSERT_TRUE(box_->exists("/run/forkvm/secrets/to_clear"));
  EXPECT_GE(box_->clear_secrets(), 1u);
  EXPECT_FALSE(box_->exists("/run/forkvm/secrets/to_clear"));
  EXPECT_EQ(box_->clear_secrets(), 0u);
  // The guest kernel zeroes the pages it frees (what the unlinked file held, among others).
  EXPECT_EQ(box_->exec_shell("tr ' ' '\\n' < /proc/cmdline | grep -cx init_on_free=1").stdout_data,
            "1\n");
}

// A secret sent to the guest and cleared again leaves no copy anywhere in guest RAM: not in
// the agent's buffers (the socket reads, the frame decoder), not in the file's pages. Checked
// on the memory file of a snapshot taken after the clear (raw guest RAM), which is what every
// fork or snapshot of the sandbox would carry.
TEST_F(E2eSandbox, AClearedSecretLeavesNoCopyInGuestMemory) {
  const auto make_secret = [](uint32_t seed) {
    std::string s = "forkvm-secret-";
    for (char c : random_bytes(24, seed)) s += "0123456789abcdef"[static_cast<uint8_t>(c) & 0xF];
    return s;
  };
  // One secret read by a command (its file and the command's pipes), and one that is the last
  // frame the agent received before the clear: only short frames follow it, so a copy left in
  // the agent's receive path (its read buffer, its frame decoder) is not overwritten by chance.
  const std::string used = make_secret(20261205), last = make_secret(20261206);
  box_->set_secret("used", used);
  EXPECT_EQ(box_->exec_shell("wc -c < /run/forkvm/secrets/used").stdout_data,
            std::to_string(used.size()) + "\n");
  box_->set_secret("last", last);
  EXPECT_GE(box_->clear_secrets(), 2u);
  test::TempDir dir("secret-scan");
  const std::string snap = (dir.path() / "snap").string();
  box_->snapshot(snap);
  for (const std::string& secret : {used, last}) {
    std::ifstream f(snap + "/memory", std::ios::binary);
    ASSERT_TRUE(f) << "no memory file in " << snap;
    // Chunks overlapping by the marker's length, so a copy across a boundary is found too.
    std::vector<char> chunk(16u << 20);
    const size_t keep = secret.size() - 1;
    size_t filled = 0;
    uint64_t offset = 0;  // of chunk[0] in the file
    std::vector<uint64_t> found;
    for (;;) {
      f.read(chunk.data() + filled, static_cast<std::streamsize>(chunk.size() - filled));
      const size_t n = filled + static_cast<size_t>(f.gcount());
      if (n == filled) break;
      const std::string_view view(chunk.data(), n);
      for (size_t at = view.find(secret); at != std::string_view::npos; at = view.find(secret, at + 1)) {
        found.push_back(offset + at);
      }
      const size_t tail = std::min(keep, n);
      std::memmove(chunk.data(), chunk.data() + n - tail, tail);
      offset += n - tail;
      filled = tail;
    }
    std::string where;
    for (uint64_t at : found) where += " " + std::to_string(at);
    EXPECT_TRUE(found.empty()) << found.size() << " copies of the cleared secret \"" << secret
                               << "\" in guest RAM, at guest-physical (file offset, decimal):"
                               << where;
  }
}

TEST_F(E2eSandbox, TimeoutKillsTheCommandAndTheSandboxStillAnswers) {
  ExecOptions o;
  o.timeout = 2s;
  const auto t0 = std::chrono::steady_clock::now();
  // A grandchild in the same process group must die too.
  const ExecResult r = box_->exec_shell("sleep 300 & sleep 300", o);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, 9);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  EXPECT_EQ(box_->exec({"echo", "still here"}).stdout_data, "still here\n");
  EXPECT_EQ(box_->exec_shell("pgrep -x sleep | wc -l").stdout_data, "0\n");
}

TEST_F(E2eSandbox, ProgressReportSaysTheGuestWasReadyAndKeepsItServing) {
  // For a request that goes unanswered: a ready guest is reported as one, vCPU by vCPU, and
  // the sampling (which parks the vCPUs twice) leaves it serving.
  const std::string report = box_->progress_report();
  EXPECT_NE(report.find("signalled ready"), std::string::npos) << report;
  EXPECT_EQ(report.find("never signalled ready"), std::string::npos) << report;
  EXPECT_NE(report.find("vCPU 0"), std::string::npos) << report;
  // The idle guest's vCPU is parked in its kernel's idle loop: the words on its kernel stack
  // are read through its own page tables (KVM_TRANSLATE) and listed.
  EXPECT_NE(report.find("kernel stack from RSP up"), std::string::npos) << report;
  // The agent answers on a second connection, also while a command on the sandbox's own
  // connection goes unanswered (here: still running): the report tells that from a stuck agent.
  EXPECT_NE(report.find("agent, asked on a second connection: answered a ping in"), std::string::npos)
      << report;
  auto running = box_->start({"sleep", "300"});
  const std::string busy = box_->progress_report();
  EXPECT_NE(busy.find("agent, asked on a second connection: answered a ping in"), std::string::npos)
      << busy;
  running->signal(15);
  EXPECT_EQ(running->wait(120s).signal, std::optional<int>(15));
  // Then the console's tail, in the words a boot timeout uses.
  const size_t console = report.find("\n--- guest console (tail) ---\n");
  ASSERT_NE(console, std::string::npos) << report;
  EXPECT_LT(report.find("vCPU 0"), console) << report;
  EXPECT_EQ(box_->exec({"echo", "after the report"}).stdout_data, "after the report\n");
}

TEST_F(E2eSandbox, TenMiBOfStdoutArrivesIntact) {
  // 10 MiB of a known pattern: every 16-byte line is "line-%010d\n" of its index.
  const int lines = 10 * 1024 * 1024 / 16;
  const ExecResult r = box_->exec_shell(
      "i=0; awk 'BEGIN { for (i = 0; i < " + std::to_string(lines) +
      "; i++) printf \"line-%010d\\n\", i }'");
  ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
  ASSERT_EQ(r.stdout_data.size(), static_cast<size_t>(lines) * 16);
  EXPECT_FALSE(r.stdout_truncated);
  char expect[32];
  for (int i = 0; i < lines; i += 997) {
    std::snprintf(expect, sizeof expect, "line-%010d\n", i);
    ASSERT_EQ(r.stdout_data.compare(static_cast<size_t>(i) * 16, 16, expect), 0) << "line " << i;
  }
}

TEST_F(E2eSandbox, StreamingDeliversChunksAsTheyArrive) {
  std::string out;
  std::atomic<int> chunks{0};
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view s) {
    out.append(s);
    ++chunks;
  };
  const ExecResult r =
      box_->exec_stream({"sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"}, {}, cb);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(out, "1\n2\n3\n");
  EXPECT_GE(chunks.load(), 2);  // not one buffered blob at the end
}

TEST_F(E2eSandbox, StdinIsStreamedToTheCommand) {
  ExecOptions o;
  o.stdin_data = std::string("alpha\nbeta\n");
  EXPECT_EQ(box_->exec({"wc", "-l"}, o).stdout_data.find('2') != std::string::npos, true);
  ExecOptions interactive;
  interactive.interactive_stdin = true;
  auto p = box_->start({"cat"}, interactive);
  p->write_stdin("typed ");
  p->write_stdin("input");
  p->close_stdin();
  EXPECT_EQ(p->wait(120s).stdout_data, "typed input");
}

TEST_F(E2eSandbox, SignalAndListRunningExecs) {
  auto p = box_->start({"sleep", "300"});
  const auto execs = box_->list_execs();
  bool listed = false;
  for (const auto& e : execs) listed = listed || e.id == p->id();
  EXPECT_TRUE(listed);
  p->signal(15);
  const ExecResult r = p->wait(120s);
  EXPECT_EQ(r.signal, 15);
}

TEST_F(E2eSandbox, EightConcurrentExecs) {
  std::vector<std::thread> threads;
  std::vector<std::string> outs(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([i, &outs] {
      try {
        outs[static_cast<size_t>(i)] =
            box_->exec_shell("sleep 1; echo worker-" + std::to_string(i)).stdout_data;
      } catch (const std::exception& e) {
        outs[static_cast<size_t>(i)] = std::string("error: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(outs[static_cast<size_t>(i)], "worker-" + std::to_string(i) + "\n");
}

TEST_F(E2eSandbox, ThirtyTwoMiBFileRoundTripsWithEqualSha256) {
  const std::string data = random_bytes(32u << 20, 42);
  const std::string digest = sha256_hex(data);
  box_->write_file("/tmp/big.bin", data, 0640);
  const ExecResult sum = box_->exec({"sha256sum", "/tmp/big.bin"});
  EXPECT_EQ(sum.stdout_data.substr(0, 64), digest);
  const FileStat st = box_->stat("/tmp/big.bin");
  EXPECT_EQ(st.size, data.size());
  EXPECT_EQ(st.mode & 0777, 0640u);
  const std::string back = box_->read_file("/tmp/big.bin");
  EXPECT_EQ(back.size(), data.size());
  EXPECT_EQ(sha256_hex(back), digest);
  box_->remove("/tmp/big.bin");
  EXPECT_FALSE(box_->exists("/tmp/big.bin"));
}

TEST_F(E2eSandbox, FileApiDirectoriesRenameAndTypedErrors) {
  box_->mkdir("/tmp/e2e/a/b", true);
  box_->write_file("/tmp/e2e/a/b/f.txt", "content");
  box_->rename("/tmp/e2e/a/b/f.txt", "/tmp/e2e/a/g.txt");
  const auto entries = box_->list_dir("/tmp/e2e/a");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "b");
  EXPECT_EQ(entries[0].stat.kind, FileKind::kDirectory);
  EXPECT_EQ(entries[1].name, "g.txt");
  EXPECT_EQ(entries[1].stat.size, 7u);
  try {
    box_->read_file("/tmp/e2e/missing");
    FAIL() << "expected not_found";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound) << e.what();
  }
  try {
    box_->remove("/tmp/e2e");
    FAIL() << "expected not_empty";
  } catch (const OperationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotEmpty) << e.what();
  }
  EXPECT_THROW(box_->read_file("relative/path"), OperationError);
  box_->remove("/tmp/e2e", true);
  EXPECT_FALSE(box_->exists("/tmp/e2e"));
}

// --- port 5555 through the Firecracker-style socket -------------------------------------

/// Connects to the sandbox's vsock socket and performs CONNECT <port>; returns the fd or -1.
int connect_vsock(const std::string& uds, uint32_t port, std::string* ok_line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, uds.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string line = "CONNECT " + std::to_string(port) + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    return -1;
  }
  char c;
  while (::read(fd, &c, 1) == 1) {
    ok_line->push_back(c);
    if (c == '\n') return fd;
  }
  ::close(fd);
  return -1;
}

/// Sends one NDJSON line and reads one back.
std::string metadata_call(int fd, const std::string& line) {
  const std::string msg = line + "\n";
  if (::write(fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return "<write failed>";
  std::string reply;
  char c;
  while (::read(fd, &c, 1) == 1) {
    if (c == '\n') return reply;
    reply.push_back(c);
  }
  return reply + "<eof>";
}

TEST_F(E2eSandbox, MetadataProtocolOnPort5555ThroughTheUdsHandshake) {
  std::string ok;
  const int fd = connect_vsock(box_->vsock_socket_path(), 5555, &ok);
  ASSERT_GE(fd, 0) << "CONNECT 5555 failed: " << ok;
  EXPECT_EQ(ok.rfind("OK ", 0), 0u) << ok;
  EXPECT_EQ(metadata_call(fd, R"({"op":"ping","id":1})"), R"({"id":1,"ok":true})");
  EXPECT_EQ(metadata_call(fd, R"({"op":"set_env","id":"e","env":{"FROM_5555":"yes"}})"),
            R"({"id":"e","ok":true})");
  const std::string bad = metadata_call(fd, R"({"op":"set_env","id":2,"env":{"OK_KEY":"1","9bad":"x"}})");
  EXPECT_NE(bad.find(R"("ok":false)"), std::string::npos) << bad;
  // "czNjcjN0" is base64 of "s3cr3t".
  EXPECT_EQ(metadata_call(fd, R"({"op":"set_secret","id":3,"name":"db_pass","value_b64":"czNjcjN0"})"),
            R"({"id":3,"ok":true})");
  ::close(fd);
  // One env file and one secrets directory for both protocols.
  EXPECT_EQ(box_->exec_shell("echo $FROM_5555-${OK_KEY-unset}").stdout_data, "yes-unset\n");
  EXPECT_EQ(box_->read_file("/run/forkvm/secrets/db_pass"), "s3cr3t");
  EXPECT_EQ(box_->stat("/run/forkvm/secrets/db_pass").mode & 0777, 0600u);
}

TEST_F(E2eSandbox, ConnectToAPortNobodyListensOnIsRefused) {
  std::string ok;
  const int fd = connect_vsock(box_->vsock_socket_path(), 4444, &ok);
  if (fd >= 0) ::close(fd);
  EXPECT_LT(fd, 0) << "unexpected answer: " << ok;
  EXPECT_EQ(box_->ping().version, 1u);
}

// Last of the shared sandbox's tests: everything above ran on filtered vCPU and vsock threads.
TEST_F(E2eSandbox, EveryTestAboveRanWithinTheThreadFilters) {
  EXPECT_EQ(box_->exec({"/bin/echo", "filtered"}).stdout_data, "filtered\n");
  expect_threads_filtered_nothing_refused(2);  // at least a vCPU and the vsock worker
}

// --- lifecycle (own VMs) ------------------------------------------------------------------

TEST(E2eSandboxLifecycle, ShutdownTearsDownAndLaterCallsAreInvalidState) {
  auto box = Sandbox::create(sandbox_config());
  const std::string uds = box->vsock_socket_path();
  EXPECT_EQ(::access(uds.c_str(), F_OK), 0);
  box->shutdown();
  EXPECT_EQ(box->state(), SandboxState::kShutDown);
  EXPECT_THROW(box->exec({"true"}), InvalidStateError);
  EXPECT_THROW(box->progress_report(), InvalidStateError);
  EXPECT_NE(::access(uds.c_str(), F_OK), 0);  // socket removed
}

TEST(E2eSandboxLifecycle, ShutdownDuringAStreamEndsItAndNoCallbackRunsAfter) {
  std::atomic<int> console_calls{0};
  SandboxConfig config = sandbox_config();
  config.vm.console = [&](std::string_view) { ++console_calls; };
  auto box = Sandbox::create(config);
  std::atomic<int> chunks{0};
  std::promise<void> streaming;
  std::atomic<bool> told{false};
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view) {
    if (chunks.fetch_add(1) == 0) streaming.set_value();
    if (!told) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  auto exec = std::async(std::launch::async, [&] {
    // Also writes to the console, so both kinds of callback are busy when shutdown() comes.
    return box->exec_stream({"sh", "-c", "while :; do echo line; echo c > /dev/console; done"},
                            {}, cb);
  });
  ASSERT_EQ(streaming.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  box->shutdown();
  told = true;
  const int chunks_at_return = chunks.load();
  const int console_at_return = console_calls.load();
  EXPECT_THROW(exec.get(), InvalidStateError);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(chunks.load(), chunks_at_return) << "a stream callback ran after shutdown() returned";
  EXPECT_EQ(console_calls.load(), console_at_return) << "a console callback ran after shutdown()";
  EXPECT_EQ(box->state(), SandboxState::kShutDown);
  box.reset();  // the reaper may still hold the rest; it finishes without this object
  Sandbox::wait_for_teardowns();
}

TEST(E2eSandboxLifecycle, GuestResetFailsLaterRequestsClearly) {
  auto box = Sandbox::create(sandbox_config());
  // reboot -f from inside resets the machine (reboot=k): the VM, and the agent with it, is gone.
  try {
    box->exec({"reboot", "-f"});
  } catch (const Error&) {
    // The exec itself may fail because the VM went away mid-request: that is the point.
  }
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (box->state() == SandboxState::kReady && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(box->state(), SandboxState::kFailed);
  EXPECT_THROW(box->exec({"true"}), Error);
}

}  // namespace
}  // namespace forkvm::e2e
