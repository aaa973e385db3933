// e2e tier: Sandbox::snapshot and Sandbox::restore on the real guest kernel and agent (directly
// on a VMX/SVM host, otherwise inside kvm-lab). One parent sandbox is booted (the expensive
// part under TCG), given a file and a detached background process, snapshotted while it runs,
// and three children are restored from that one snapshot: each has the parent's state, its
// own identity (RNG, boot UUIDs, the host's clock) and its own copy-on-write memory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/e2e/sandbox_helpers.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::e2e {
namespace {

using test::TempDir;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Progress in the log: under TCG a step can take a while, and an exception says not where.
void step(const char* what) { std::fprintf(stderr, "[e2e_fork] %s\n", what); }

TEST(E2eFork, SnapshotThenRestoreThreeIndependentChildren) {
  TempDir tmp;
  SandboxConfig config;
  config.vm = builtin_config(1, 256, "");
  config.boot_timeout = kBootDeadline;
  config.request_timeout = 120s;  // TCG: a syscall-heavy request can take seconds
  auto parent = Sandbox::create(config);
  ASSERT_EQ(parent->state(), SandboxState::kReady);

  step("write marker");
  sh(*parent, "echo parent-state > /tmp/marker");
  // Detached from the exec (its own session, no inherited pipes): it outlives this exec and
  // the snapshot's connection reset, which kills the execs of the old connection.
  step("start background");
  sh(*parent,
     "setsid sh -c 'echo $$ > /tmp/bg.pid.tmp; mv /tmp/bg.pid.tmp /tmp/bg.pid; exec sleep 1000' "
     "</dev/null >/dev/null 2>&1 &");
  {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!parent->exists("/tmp/bg.pid") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(parent->exists("/tmp/bg.pid"));
  EXPECT_EQ(sh(*parent, kBackgroundAlive), "sleep 1000 ");

  step("snapshot");
  const std::string snap = tmp / "snap";
  const AgentClient* connection = &parent->agent();
  parent->snapshot(snap);
  for (const char* f : {"memory", "state.json", "state.json.sha256"}) {
    EXPECT_TRUE(fs::is_regular_file(fs::path(snap) / f)) << f;
  }
  // The parent keeps running on the agent connection it had before the snapshot.
  step("parent after snapshot");
  ASSERT_EQ(parent->state(), SandboxState::kReady) << parent->console_tail();
  EXPECT_EQ(&parent->agent(), connection) << "the snapshot replaced the parent's connection";
  EXPECT_GT(parent->ping().version, 0u);
  EXPECT_EQ(sh(*parent, "cat /tmp/marker"), "parent-state\n");
  EXPECT_EQ(sh(*parent, kBackgroundAlive), "sleep 1000 ");

  step("restore children");
  std::vector<std::unique_ptr<Sandbox>> children;
  for (int i = 0; i < 3; ++i) {
    SandboxRestoreConfig rc = e2e_restore_config("child-" + std::to_string(i));
    rc.verify_memory = i == 0;  // verified once in this process
    children.push_back(make_child([&] { return Sandbox::restore(snap, rc); }));
    ASSERT_EQ(children.back()->state(), SandboxState::kReady) << children.back()->console_tail();
  }
  // Each child has its own socket.
  std::set<std::string> sockets{parent->vsock_socket_path()};
  for (auto& c : children) sockets.insert(c->vsock_socket_path());
  EXPECT_EQ(sockets.size(), 4u);

  step("check children");
  std::set<std::string> uuids;
  std::set<std::string> randoms;
  for (size_t i = 0; i < children.size(); ++i) {
    SCOPED_TRACE("child " + std::to_string(i));
    Sandbox& c = *children[i];
    EXPECT_GT(c.ping().version, 0u);
    EXPECT_EQ(sh(c, "cat /tmp/marker"), "parent-state\n");
    EXPECT_EQ(sh(c, kBackgroundAlive), "sleep 1000 ");
    EXPECT_EQ(sh(c, "hostname"), "child-" + std::to_string(i) + "\n");
    uuids.insert(sh(c, "cat /proc/sys/kernel/random/uuid"));
    randoms.insert(sh(c, "head -c 16 /dev/urandom | od -An -tx1"));
    const long guest_now = std::stol(sh(c, "date +%s"));
    const long host_now = host_seconds();
    EXPECT_LT(std::abs(guest_now - host_now), 120) << "guest " << guest_now << " host " << host_now;
  }
  EXPECT_EQ(uuids.size(), children.size());
  EXPECT_EQ(randoms.size(), children.size());

  step("isolation");
  // A write in one child is seen by neither the parent nor the other children.
  step("isolation: child 0 writes");
  EXPECT_EQ(sh(*children[0], "echo child-0 > /tmp/marker; echo new > /tmp/only-child-0; "
                             "cat /tmp/marker"),
            "child-0\n");
  step("isolation: parent reads");
  EXPECT_EQ(sh(*parent, "cat /tmp/marker"), "parent-state\n");
  EXPECT_FALSE(parent->exists("/tmp/only-child-0"));
  step("isolation: other children read");
  for (size_t i = 1; i < children.size(); ++i) {
    EXPECT_EQ(sh(*children[i], "cat /tmp/marker"), "parent-state\n") << "child " << i;
    EXPECT_FALSE(children[i]->exists("/tmp/only-child-0")) << "child " << i;
  }

  step("shutdown");
  // A snapshot into an existing directory fails and leaves the sandbox usable.
  step("failed snapshot");
  EXPECT_THROW(parent->snapshot(snap), SnapshotError);
  EXPECT_EQ(parent->state(), SandboxState::kReady);
  EXPECT_GT(parent->ping().version, 0u) << parent->console_tail();
  // The parent still works, its own process is untouched, and children shut down cleanly.
  EXPECT_EQ(sh(*parent, "echo still-here"), "still-here\n");
  for (auto& c : children) {
    c->shutdown();
    EXPECT_EQ(c->state(), SandboxState::kShutDown);
    EXPECT_THROW(c->snapshot(tmp / "after-shutdown"), InvalidStateError);
  }
  EXPECT_FALSE(fs::exists(tmp / "after-shutdown"));
  step("parent background after children shut down");
  EXPECT_EQ(sh(*parent, kBackgroundAlive), "sleep 1000 ");
  parent->shutdown();
  EXPECT_THROW(parent->snapshot(tmp / "after-shutdown"), InvalidStateError);
}

TEST(E2eFork, RestoreOfAMissingSnapshotFailsAndCleansUp) {
  TempDir tmp;
  SandboxRestoreConfig rc;
  rc.runtime_dir = tmp / "";
  EXPECT_THROW(Sandbox::restore(tmp / "no-such-snapshot", rc), SnapshotError);
  // The private temp dir was removed again.
  size_t left = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(tmp / "")) ++left;
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace forkvm::e2e
