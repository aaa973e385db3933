// e2e tier: snapshots taken again and again from the real guest kernel and agent (directly on a
// VMX/SVM host, otherwise inside kvm-lab, where everything is emulated and slow). One sandbox is
// booted for the whole suite (the expensive part) and reused:
// - right after each Sandbox::snapshot, 50 requests in a row succeed on the agent connection
//   the sandbox had before it (the snapshot no longer resets the captured VM's connections;
//   earlier, when it did, the request after the first ping failed with EPIPE if the guest
//   handled the reset after the new connection was up);
// - 20 generations of snapshot -> restore -> increment a counter in the guest -> shut the
//   parent down, each generation answering ping and exec and seeing the previous one's counter;
// - a snapshot written by this process is restored by another one (this binary re-executed with
//   a gtest filter and an environment variable selecting the child test);
// - a snapshot whose vCPU CPUID claims a feature the host's KVM lacks is refused by
//   Sandbox::restore and Vm::restore with a SnapshotError naming it, and nothing is left behind.
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkvm/agent_client.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/vm.hpp"
#include "snapshot/sha256.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/e2e/sandbox_helpers.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/run_process.hpp"
#include "vmm/kvm/kvm_system.hpp"

namespace forkvm::e2e {
namespace {

using test::TempDir;

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The child mode of SnapshotCycles.SnapshotFromThisProcessRestoresInAnother: the snapshot dir
// to restore and the content the file /tmp/cross-process must have there.
constexpr const char* kChildDirEnv = "FORKVM_E2E_CYCLES_RESTORE_DIR";
constexpr const char* kChildExpectEnv = "FORKVM_E2E_CYCLES_EXPECT";
// What the child prints once it has checked everything; the parent looks for it (a skipped
// child test would exit 0 too).
constexpr const char* kChildMarker = "[child] restored and verified: ";

const Clock::time_point g_start = Clock::now();

// Progress in the log: under TCG a step can take many seconds, and an exception says not where.
void step(const std::string& what) {
  const auto s = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - g_start);
  std::fprintf(stderr, "[e2e_snapshot_cycles %6.1fs] %s\n", static_cast<double>(s.count()) / 1000,
               what.c_str());
}

void remove_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);  // the memory files are large: do not keep them past their use
}

// Small and one vCPU: every snapshot writes (and hashes) the whole memory size under TCG.
SandboxConfig base_config() {
  SandboxConfig c;
  c.vm = builtin_config(1, 128, "");
  c.boot_timeout = kBootDeadline;
  c.request_timeout = 120s;  // TCG: a syscall-heavy request can take seconds
  return c;
}

SandboxRestoreConfig restore_config(const std::string& hostname, bool verify_memory) {
  SandboxRestoreConfig rc = e2e_restore_config(hostname);
  rc.verify_memory = verify_memory;
  return rc;
}

// Entries of a /proc directory (threads of /proc/self/task, descriptors of /proc/self/fd).
size_t count_entries(const char* dir) {
  size_t n = 0;
  DIR* d = ::opendir(dir);
  if (d == nullptr) return 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - (std::string(dir) == "/proc/self/fd" ? 1 : 0);  // opendir's own descriptor
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

/// The suite's one booted sandbox. Booted by the first test that needs it; a failed boot fails
/// every test that needs it, with the reason.
class SnapshotCycles : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (base_) base_->shutdown();
    base_.reset();
    tmp_.reset();
  }

  void SetUp() override {
    if (!tmp_) tmp_ = std::make_unique<TempDir>();
    if (base_ || !boot_error_.empty()) return;
    step("boot the base sandbox");
    try {
      base_ = Sandbox::create(base_config());
      step("base sandbox ready");
    } catch (const std::exception& e) {
      boot_error_ = e.what();
    }
  }

  static Sandbox* base() { return base_.get(); }
  static TempDir& tmp() { return *tmp_; }
  static const std::string& boot_error() { return boot_error_; }

 private:
  static inline std::unique_ptr<Sandbox> base_;
  static inline std::unique_ptr<TempDir> tmp_;
  static inline std::string boot_error_;
};

// One request of many, chosen by `i`; fails the test (with `where`) when it does not succeed.
void varied_request(Sandbox& box, int i, const std::string& where) {
  SCOPED_TRACE(where + " request " + std::to_string(i));
  switch (i % 5) {
    case 0:
      EXPECT_GT(box.ping().version, 0u);
      break;
    case 1: {
      const ExecResult r = box.exec({"echo", "req-" + std::to_string(i)});
      EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
      EXPECT_EQ(r.stdout_data, "req-" + std::to_string(i) + "\n");
      break;
    }
    case 2:
      box.write_file("/tmp/req-file", "content-" + std::to_string(i));
      break;
    case 3:
      EXPECT_EQ(box.read_file("/tmp/req-file"), "content-" + std::to_string(i - 1));
      break;
    default:
      EXPECT_TRUE(box.exists("/tmp/req-file"));
      break;
  }
}

TEST_F(SnapshotCycles, FiftyRequestsRightAfterEachSnapshotSucceed) {
  ASSERT_NE(base(), nullptr) << boot_error();
  Sandbox& box = *base();
  constexpr int kRounds = 3;
  constexpr int kRequests = 50;
  for (int round = 0; round < kRounds; ++round) {
    const std::string where = "round " + std::to_string(round);
    step(where + ": snapshot");
    const std::string dir = tmp() / ("requests-" + std::to_string(round));
    // Every request below must go over the connection the sandbox had before: no reconnect.
    const AgentClient* connection = &box.agent();
    box.snapshot(dir);
    ASSERT_EQ(box.state(), SandboxState::kReady) << box.console_tail();
    step(where + ": " + std::to_string(kRequests) + " requests at once");
    for (int i = 0; i < kRequests; ++i) {
      try {
        varied_request(box, i, where);
      } catch (const std::exception& e) {
        FAIL() << where << " request " << i << " threw: " << e.what()
               << "\n--- guest console (tail) ---\n" << box.console_tail();
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_EQ(&box.agent(), connection);
    remove_dir(dir);
  }
}

TEST_F(SnapshotCycles, TwentySnapshotRestoreGenerationsEachAnswerAndCount) {
  ASSERT_NE(base(), nullptr) << boot_error();
  constexpr int kGenerations = 20;
  sh(*base(), "echo 0 > /tmp/generation");
  // Generation 0 is the suite's base sandbox: it is kept running for the other tests.
  Sandbox* current = base();
  std::unique_ptr<Sandbox> owned;  // generation >= 1
  std::string current_snapshot;    // the snapshot `owned` was restored from
  for (int gen = 1; gen <= kGenerations; ++gen) {
    const std::string g = "generation " + std::to_string(gen);
    SCOPED_TRACE(g);
    const auto t0 = Clock::now();
    const std::string dir = tmp() / ("gen-" + std::to_string(gen));
    current->snapshot(dir);
    // Verified on the first and the last child; in between the directories are fresh from this
    // process and hashing a memory file is slow under TCG.
    const bool verify = gen == 1 || gen == kGenerations;
    std::unique_ptr<Sandbox> child;
    try {
      child = make_child([&] { return Sandbox::restore(dir, restore_config("gen-" + std::to_string(gen), verify)); });
    } catch (const std::exception& e) {
      FAIL() << g << ": restore failed: " << e.what();
    }
    ASSERT_EQ(child->state(), SandboxState::kReady) << child->console_tail();
    // Each generation's parent was idle at its snapshot: its agent connection is carried.
    EXPECT_TRUE(child->fork_timings().agent_carried) << g << ": restored, connected anew";
    EXPECT_GT(child->ping().version, 0u);
    EXPECT_EQ(sh(*child, "cat /tmp/generation"), std::to_string(gen - 1) + "\n");
    EXPECT_EQ(sh(*child, "n=$(cat /tmp/generation); echo $((n + 1)) > /tmp/generation; "
                         "cat /tmp/generation; hostname"),
              std::to_string(gen) + "\ngen-" + std::to_string(gen) + "\n");
    EXPECT_EQ(child->read_file("/tmp/generation"), std::to_string(gen) + "\n");
    // The parent keeps serving after its snapshot, and the child's write is not its.
    EXPECT_EQ(sh(*current, "cat /tmp/generation"), std::to_string(gen - 1) + "\n");
    if (owned) {
      owned->shutdown();
      EXPECT_EQ(owned->state(), SandboxState::kShutDown);
      remove_dir(current_snapshot);  // nothing maps it any more
    }
    owned = std::move(child);
    current = owned.get();
    current_snapshot = dir;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    step(g + " answers (" + std::to_string(ms.count()) + " ms for snapshot + restore + checks)");
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_EQ(sh(*current, "cat /tmp/generation"), std::to_string(kGenerations) + "\n");
  EXPECT_GT(current->ping().version, 0u);
  owned->shutdown();
  remove_dir(current_snapshot);
  // The base never saw any child's increment.
  EXPECT_EQ(sh(*base(), "cat /tmp/generation"), "0\n");
}

TEST_F(SnapshotCycles, SnapshotFromThisProcessRestoresInAnother) {
  ASSERT_NE(base(), nullptr) << boot_error();
  const std::string content = "written-by-pid-" + std::to_string(::getpid());
  sh(*base(), "echo -n " + content + " > /tmp/cross-process");
  const std::string dir = tmp() / "cross-process";
  step("cross-process: snapshot in this process");
  base()->snapshot(dir);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  step("cross-process: restore in a re-executed " + self);
  const auto r = test::run_process(std::string(kChildDirEnv) + "='" + dir + "' " + kChildExpectEnv +
                                   "='" + content + "' '" + self +
                                   "' --gtest_filter=SnapshotCyclesChild.RestoreFromEnvironment");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(kChildMarker + content), std::string::npos) << r.output;
  remove_dir(dir);
}

// The other half of SnapshotFromThisProcessRestoresInAnother: does nothing unless that test
// re-executed this binary (CTest filters it out).
TEST(SnapshotCyclesChild, RestoreFromEnvironment) {
  const char* dir = std::getenv(kChildDirEnv);
  const char* expect = std::getenv(kChildExpectEnv);
  if (dir == nullptr || expect == nullptr) {
    GTEST_SKIP() << "runs only when SnapshotFromThisProcessRestoresInAnother re-executes it";
  }
  step(std::string("[child pid ") + std::to_string(::getpid()) + "] restore " + dir);
  auto box = Sandbox::restore(dir, restore_config("other-process", true));
  ASSERT_EQ(box->state(), SandboxState::kReady) << box->console_tail();
  EXPECT_GT(box->ping().version, 0u);
  const std::string seen = box->read_file("/tmp/cross-process");
  EXPECT_EQ(seen, expect);
  EXPECT_EQ(sh(*box, "cat /tmp/cross-process; echo; hostname"),
            std::string(expect) + "\nother-process\n");
  box->shutdown();
  if (!::testing::Test::HasFailure()) std::printf("%s%s\n", kChildMarker, seen.c_str());
}

// A CPUID feature bit that KVM on this host does not offer, with the name cpu_features.cpp
// gives it (vmm/state/cpu_features.cpp), or nullopt when the host has all the candidates.
struct FeatureBit {
  uint32_t leaf, subleaf;
  char reg;
  unsigned bit;
  const char* name;
};

std::optional<FeatureBit> feature_the_host_lacks() {
  static constexpr FeatureBit kCandidates[] = {
      {0x7, 0, 'b', 16, "avx512f"},    {0x7, 0, 'b', 30, "avx512bw"},
      {0x7, 0, 'd', 24, "amx_tile"},   {0x7, 0, 'd', 23, "avx512_fp16"},
      {0x7, 0, 'c', 14, "avx512_vpopcntdq"}, {0x7, 0, 'b', 2, "leaf 0x7.0 ebx bit 2"},
  };
  const auto host = KvmSystem::open().supported_cpuid();
  for (const auto& c : kCandidates) {
    const kvm_cpuid_entry2* have = nullptr;
    for (const auto& e : host) {
      if (e.function == c.leaf && e.index == c.subleaf) have = &e;
    }
    const uint32_t reg = have == nullptr ? 0
                         : c.reg == 'b'  ? have->ebx
                         : c.reg == 'c'  ? have->ecx
                                         : have->edx;
    if ((reg & (1u << c.bit)) == 0) return c;
  }
  return std::nullopt;
}

// Sets `f` in every vCPU's CPUID in the snapshot's state.json and rewrites state.json.sha256
// (snapshot/README.md) so that the state digest passes and only the CPU check can refuse it.
void claim_feature(const std::string& dir, const FeatureBit& f) {
  const std::string path = dir + "/state.json";
  json state = json::parse(read_text(path));
  json& vcpus = state.at("components").at("machine").at("vcpus");
  ASSERT_FALSE(vcpus.empty());
  for (json& v : vcpus) {
    bool found = false;
    for (json& e : v.at("cpuid")) {
      if (e.at("function") != f.leaf || e.at("index") != f.subleaf) continue;
      const std::string reg = std::string("e") + f.reg + "x";
      e[reg] = e.at(reg).get<uint32_t>() | (1u << f.bit);
      found = true;
    }
    ASSERT_TRUE(found) << "no CPUID leaf " << f.leaf << "." << f.subleaf << " in the snapshot";
  }
  const std::string text = state.dump(2) + "\n";
  write_text(path, text);
  write_text(dir + "/state.json.sha256", snapshot::Sha256::of(text) + "  state.json\n");
}

TEST_F(SnapshotCycles, RestoreRefusesASnapshotClaimingACpuFeatureTheHostLacks) {
  ASSERT_NE(base(), nullptr) << boot_error();
  const auto feature = feature_the_host_lacks();
  if (!feature) GTEST_SKIP() << "this host's KVM offers every candidate feature";
  step(std::string("cpu features: the host lacks ") + feature->name);
  const std::string dir = tmp() / "cpu-features";
  base()->snapshot(dir);
  claim_feature(dir, *feature);
  ASSERT_FALSE(HasFatalFailure());

  const std::string runtime = tmp() / "rt";
  fs::create_directories(runtime);
  // Earlier tests' sandboxes may still be on the reaper: let it finish so the counts hold still.
  Sandbox::wait_for_teardowns();
  const size_t threads = count_entries("/proc/self/task");
  const size_t fds = count_entries("/proc/self/fd");
  auto expect_refusal = [&](const std::string& what, const auto& restore) {
    try {
      restore();
      ADD_FAILURE() << what << " accepted a snapshot that needs " << feature->name;
    } catch (const SnapshotError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(feature->name), std::string::npos) << what << ": " << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << " threw something else than SnapshotError: " << e.what();
    }
    // Nothing is left: no thread, no descriptor (KVM, sockets, memory), no socket file.
    EXPECT_EQ(count_entries("/proc/self/task"), threads) << what;
    EXPECT_EQ(count_entries("/proc/self/fd"), fds) << what;
    EXPECT_TRUE(fs::is_empty(runtime)) << what;
  };
  step("cpu features: Sandbox::restore");
  SandboxRestoreConfig rc = restore_config("refused", false);
  rc.runtime_dir = runtime;
  expect_refusal("Sandbox::restore", [&] { Sandbox::restore(dir, rc); });
  step("cpu features: Vm::restore");
  RestoreOptions ro;
  ro.vsock = VsockConfig{4000, runtime + "/vsock.sock"};
  ro.verify_memory = false;
  expect_refusal("Vm::restore", [&] { Vm::restore(dir, ro); });
  // The base sandbox was not disturbed.
  EXPECT_EQ(sh(*base(), "echo still-here"), "still-here\n");
  remove_dir(dir);
}

}  // namespace
}  // namespace forkvm::e2e
