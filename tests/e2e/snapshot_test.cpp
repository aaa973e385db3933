// e2e tier: Vm::snapshot and Vm::restore on the real guest kernel and agent (directly on a
// VMX/SVM host, otherwise inside kvm-lab). One parent is booted (booting is the expensive part
// under TCG); it is snapshotted while running, a child is restored from the snapshot in the
// same process with its own vsock CID and socket, and both are then driven through the agent.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "forkvm/agent_client.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "forkvm/vm.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::e2e {
namespace {

using test::TempDir;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint32_t kAgentPort = 1024;

/// Connects to the agent through a Firecracker-style vsock socket. Generous deadlines: under
/// TCG a restored guest first handles the RST of its old connection, then answers.
std::unique_ptr<AgentClient> connect_agent(const std::string& uds_path) {
  AgentClientOptions o;
  o.socket_path = uds_path;
  o.vsock_port = kAgentPort;
  o.connect_timeout = 60s;
  o.request_timeout = 120s;
  return AgentClient::connect(o);
}

std::string sh(AgentClient& agent, const std::string& script) {
  const ExecResult r = agent.exec({"sh", "-c", script});
  EXPECT_EQ(r.exit_code, 0) << script << "\nstderr: " << r.stderr_data;
  return r.stdout_data;
}

TEST(E2eSnapshot, RestoredChildRunsAndParentKeepsRunning) {
  TempDir tmp;
  VmConfig config = builtin_config(1, 256, "forkvm.after_ready=idle");
  config.vsock = VsockConfig{3, tmp / "parent.sock"};
  auto parent = Vm::create(config);

  // A VM that was never started has nothing to snapshot.
  EXPECT_THROW(parent->snapshot(tmp / "never-started"), InvalidStateError);
  EXPECT_FALSE(fs::exists(tmp / "never-started"));

  parent->start();
  ASSERT_TRUE(parent->wait_ready(kBootDeadline)) << parent->console_tail();
  auto before = connect_agent(tmp / "parent.sock");
  sh(*before, "echo parent-state > /tmp/marker");

  const std::string snap = tmp / "snap";
  parent->snapshot(snap);
  for (const char* f : {"memory", "state.json", "state.json.sha256"}) {
    EXPECT_TRUE(fs::is_regular_file(fs::path(snap) / f)) << f;
  }
  // The snapshot left the parent's connections alone: the one made before it still answers
  // (only a restored VM's guest gets an RST for it).
  EXPECT_GT(before->ping(30s).version, 0u);
  EXPECT_EQ(sh(*before, "cat /tmp/marker"), "parent-state\n");
  before.reset();

  // The snapshot's machine has vsock: a restore must say where the child's socket goes.
  EXPECT_THROW(Vm::restore(snap, RestoreOptions{}), ConfigError);
  EXPECT_THROW(Vm::restore(tmp / "no-such-snapshot", RestoreOptions{}), SnapshotError);

  RestoreOptions ro;
  ro.vsock = VsockConfig{4, tmp / "child.sock"};
  auto child = Vm::restore(snap, ro);
  EXPECT_TRUE(child->wait_ready(0ms)) << "the parent was ready when the snapshot was taken";

  // The child runs: it answers on its own socket, with the parent's tmpfs content.
  auto child_agent = connect_agent(tmp / "child.sock");
  EXPECT_GT(child_agent->ping().version, 0u);
  EXPECT_EQ(sh(*child_agent, "cat /tmp/marker"), "parent-state\n");
  EXPECT_EQ(sh(*child_agent, "echo child-state > /tmp/marker; cat /tmp/marker"),
            "child-state\n");

  // The parent keeps running after its snapshot, and the child's writes are not its own.
  auto parent_agent = connect_agent(tmp / "parent.sock");
  EXPECT_GT(parent_agent->ping().version, 0u);
  EXPECT_EQ(sh(*parent_agent, "cat /tmp/marker"), "parent-state\n");

  // A prepared VM's vCPU threads wait, parked, for launch(), which restores the live state
  // first: resume() before it runs nothing and pause() refuses.
  RestoreOptions rp;
  rp.vsock = VsockConfig{6, tmp / "prepared.sock"};
  auto prepared = Vm::prepare(VmImage::open(snap), rp);
  EXPECT_THROW(prepared->pause(), InvalidStateError);
  prepared->resume();
  std::this_thread::sleep_for(300ms);
  const KvmCounters idle = prepared->kvm_counters();
  if (idle.available) {
    EXPECT_EQ(idle.exits, 0u) << "a vCPU ran before launch()";
  }
  EXPECT_FALSE(prepared->wait(0ms).has_value());
  prepared->launch();
  auto prepared_agent = connect_agent(tmp / "prepared.sock");
  EXPECT_EQ(sh(*prepared_agent, "cat /tmp/marker"), "parent-state\n");
  prepared_agent.reset();
  EXPECT_EQ(prepared->stop().reason, StopReason::kHostStop) << prepared->console_tail();

  // A restored VM can be snapshotted and restored in turn.
  child_agent.reset();
  child->snapshot(tmp / "snap2");
  RestoreOptions ro2;
  ro2.vsock = VsockConfig{5, tmp / "grandchild.sock"};
  auto grandchild = Vm::restore(tmp / "snap2", ro2);
  auto grandchild_agent = connect_agent(tmp / "grandchild.sock");
  EXPECT_EQ(sh(*grandchild_agent, "cat /tmp/marker"), "child-state\n");

  grandchild_agent.reset();
  EXPECT_EQ(grandchild->stop().reason, StopReason::kHostStop) << grandchild->console_tail();
  EXPECT_EQ(child->stop().reason, StopReason::kHostStop) << child->console_tail();
  parent_agent.reset();
  EXPECT_EQ(parent->stop().reason, StopReason::kHostStop) << parent->console_tail();

  // A stopped VM cannot be snapshotted.
  EXPECT_THROW(parent->snapshot(tmp / "after-stop"), InvalidStateError);
}

}  // namespace
}  // namespace forkvm::e2e
