// unit tier: `forkvm snapshot inspect` through the real binary on a valid snapshot, damaged ones
// (exit 1), and bad command lines (exit 2), including `create`'s (before anything boots).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/run_process.hpp"
#include "tests/unit/snapshot/snapshot_fixture.hpp"

namespace forkvm::cli {
namespace {

using namespace forkvm::snapshot::test;
namespace snap = forkvm::snapshot;

forkvm::test::ProcessResult run_snapshot_cli(const std::string& args) {
  return forkvm::test::run_process(std::string(FORKVM_CLI) + " snapshot " + args);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class CliSnapshot : public ::testing::Test {
 protected:
  void SetUp() override { written_ = write_test_snapshot(dir()); }
  fs::path dir() const { return tmp_.path() / "snap"; }
  TempDir tmp_;
  snap::WrittenSnapshot written_;
};

TEST_F(CliSnapshot, InspectDescribesAValidSnapshot) {
  const auto r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 0) << r.output;
  for (const std::string& s : std::vector<std::string>{
           "format       2." + std::to_string(snap::kFormatMinor), "2 vCPU(s), 64 MiB, vsock CID 7",
           "console=ttyS0 reboot=k panic=1",
           "sha256 " + written_.state_sha256 + " (verified)",
           "16 chunk digests of 4194304 bytes (verified)", "67108864 bytes", "components   3",
           "  serial  ", "  vcpu.0  ", "result       ok"}) {
    EXPECT_TRUE(contains(r.output, s)) << "missing '" << s << "' in:\n" << r.output;
  }
}

TEST_F(CliSnapshot, InspectJson) {
  const auto r = run_snapshot_cli("inspect --json " + dir().string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["format"]["major"], 2);
  EXPECT_EQ(j["machine"]["vcpus"], 2);
  EXPECT_EQ(j["machine"]["memory_mib"], 64);
  EXPECT_EQ(j["machine"]["guest_cid"], 7);
  EXPECT_EQ(j["state"]["sha256"], written_.state_sha256);
  EXPECT_FALSE(j["memory"].contains("sha256")) << "format 2 has no whole-file digest";
  EXPECT_EQ(j["memory"]["chunks"]["count"], written_.memory.sha256.size());
  EXPECT_EQ(j["memory"]["chunks"]["size"], written_.memory.size);
  EXPECT_EQ(j["memory"]["verified"], true);
  EXPECT_EQ(j["memory"]["size"], 64u << 20);
  EXPECT_LT(j["memory"]["allocated"].get<uint64_t>(), 4u << 20);  // sparse
  EXPECT_EQ(j["components"]["serial"]["bytes"], test_components()["serial"].dump().size());
  EXPECT_EQ(j["components"].size(), 3u);
}

TEST_F(CliSnapshot, MemoryMismatchIsShownAndExitsOne) {
  flip_byte(dir() / snap::kMemoryFile, 0);
  auto r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "(MISMATCH: see below)")) << r.output;
  EXPECT_TRUE(contains(r.output, "SHA-256 mismatch in bytes [0x0, 0x400000) (chunk 0 of 16)"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "result       INVALID")) << r.output;
  r = run_snapshot_cli("inspect --json " + dir().string());
  EXPECT_EQ(r.status, 1) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["memory"]["verified"], false);
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "SHA-256 mismatch"));
  // --no-verify-memory skips the memory hash and says so.
  r = run_snapshot_cli("inspect --no-verify-memory " + dir().string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "(not checked)")) << r.output;

  // A format 1 snapshot (a whole-file digest, no chunks) is checked by that digest.
  flip_byte(dir() / snap::kMemoryFile, 0);  // back as written
  const std::string sha = snap::hash_memory_file(
      snap::open_snapshot(dir(), {.verify_memory = false}).memory_fd.get(), 64u << 20,
      dir() / snap::kMemoryFile);
  snap::test::edit_state(dir(), [&](nlohmann::json& state) {
    state["format"] = {{"major", 1}, {"minor", 3}};
    state["memory"].erase("chunks");
    state["memory"]["sha256"] = sha;
  });
  r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "sha256 " + sha + " (verified)")) << r.output;
  flip_byte(dir() / snap::kMemoryFile, 0);
  r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "(MISMATCH: the file hashes to ")) << r.output;
}

TEST_F(CliSnapshot, InvalidSnapshotsExitOneWithTheReason) {
  flip_byte(dir() / snap::kStateFile, 10);
  auto r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "state.json: SHA-256 mismatch")) << r.output;
  r = run_snapshot_cli("inspect --json " + (tmp_.path() / "absent").string());
  EXPECT_EQ(r.status, 1) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["ok"], false);
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "does not exist")) << r.output;
  fs::resize_file(dir() / snap::kMemoryFile, 4096);
  r = run_snapshot_cli("inspect " + dir().string());
  EXPECT_EQ(r.status, 1) << r.output;
}

TEST(CliSnapshotUsage, BadCommandLinesExitTwo) {
  struct Case {
    std::string args;
    std::string says;
  } cases[] = {
      {"", "missing subcommand"},
      {"frobnicate", "unknown subcommand 'frobnicate'"},
      {"inspect", "needs a snapshot directory"},
      {"inspect a b", "takes one directory, got 2"},
      {"inspect --bogus dir", "unknown option '--bogus'"},
      {"create", "create takes one snapshot directory"},
      {"create a b", "create takes one snapshot directory"},
      {"create --vcpus 0 dir", "--vcpus"},
      {"create --bogus dir", "unknown option '--bogus'"},
  };
  for (const auto& c : cases) {
    const auto r = run_snapshot_cli(c.args);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.says)) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "usage: forkvm snapshot")) << c.args << "\n" << r.output;
  }
  EXPECT_EQ(run_snapshot_cli("--help").status, 0);
  EXPECT_EQ(run_snapshot_cli("inspect --help").status, 0);
  EXPECT_EQ(run_snapshot_cli("create --help").status, 0);
}

}  // namespace
}  // namespace forkvm::cli
