// unit tier: VmImage::open's host-side checks, which need no /dev/kvm: a snapshot whose memory
// is larger than this host can give is refused before anything is mapped, with the boot's rule.
#include <gtest/gtest.h>
#include <sys/sysinfo.h>

#include <string>

#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "tests/unit/snapshot/snapshot_fixture.hpp"

namespace forkvm {
namespace {

using namespace snapshot::test;

TEST(VmImageOpen, RefusesMemoryLargerThanTheHostBeforeMapping) {
  struct sysinfo si {};
  ASSERT_EQ(::sysinfo(&si), 0);
  const uint64_t host_mib = uint64_t{si.totalram} * si.mem_unit >> 20;
  const uint64_t mib = host_mib + 1024;  // over physical RAM (RLIMIT_AS can only lower the limit)
  ASSERT_LE(mib, snapshot::kMaxMemoryMib) << "a host with more than 1 TiB: the case cannot be made";
  TempDir tmp;
  const fs::path dir = tmp.path() / "snap";
  write_test_snapshot(dir);
  edit_state(dir, [&](nlohmann::json& j) {
    j["machine"]["memory_mib"] = mib;
    j["memory"]["size"] = mib << 20;
    // Format 1.3: no chunk digests, whose count is for the old size.
    j["format"] = {{"major", 1}, {"minor", 3}};
    j["memory"].erase("chunks");
    j["memory"]["sha256"] = std::string(64, 'a');
  });
  fs::resize_file(dir / snapshot::kMemoryFile, mib << 20);  // sparse: nothing allocated
  try {
    VmImage::open(dir.string(), /*verify_memory=*/false, /*verify_disks=*/false);
    FAIL() << "a snapshot of " << mib << " MiB opened on a host with " << host_mib << " MiB";
  } catch (const SnapshotError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("more than this host can give"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(mib) + " MiB"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace forkvm
