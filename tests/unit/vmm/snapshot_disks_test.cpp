// unit tier: a snapshot's disk records are checked against the images on restore: a missing
// image, one whose size changed and one whose bytes changed are refused by name; the digest
// cache notices a rewrite of the file.
#include "vmm/snapshot_disks.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "forkvm/errors.hpp"
#include "snapshot/sha256.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm {
namespace {

std::string write_image(const test::TempDir& dir, const std::string& name, char fill) {
  const std::string path = dir / name;
  std::ofstream(path, std::ios::binary) << std::string(4096, fill);
  return path;
}

snapshot::DiskRecord record_of(const std::string& path, const std::string& id) {
  const DiskImage disk = DiskImage::open(path, true);
  return {id, path, disk.size(), disk_sha256(disk), false};
}

std::string open_error(const std::vector<snapshot::DiskRecord>& records, bool verify = true) {
  try {
    open_recorded_disks(records, verify);
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

TEST(SnapshotDisks, DigestIsTheFilesSha256) {
  test::TempDir dir("fvsd");
  const std::string path = write_image(dir, "a.img", 'a');
  const DiskImage disk = DiskImage::open(path, true);
  EXPECT_EQ(disk_sha256(disk), snapshot::Sha256::of(std::string(4096, 'a')));
  EXPECT_EQ(disk_sha256(disk), disk_sha256(disk));  // second call from the cache
}

TEST(SnapshotDisks, OpensUnchangedImagesInOrder) {
  test::TempDir dir("fvsd");
  const auto a = record_of(write_image(dir, "a.img", 'a'), "a");
  const auto b = record_of(write_image(dir, "b.img", 'b'), "b");
  const auto disks = open_recorded_disks({a, b}, true);
  ASSERT_EQ(disks.size(), 2u);
  EXPECT_EQ(disks[0].path(), a.path);
  EXPECT_EQ(disks[1].path(), b.path);
  EXPECT_TRUE(disks[0].read_only());
}

TEST(SnapshotDisks, RefusesMissingResizedAndRewrittenImagesByName) {
  test::TempDir dir("fvsd");
  const std::string path = write_image(dir, "base.img", 'a');
  const auto rec = record_of(path, "rootfs");

  // Same size, other bytes: the cached digest of the old file must not be reused. File times
  // tick with the kernel's coarse clock (a few ms), which is what the cache keys on.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  write_image(dir, "base.img", 'z');
  std::string err = open_error({rec});
  EXPECT_NE(err.find("disk 'rootfs'"), std::string::npos) << err;
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("SHA-256 mismatch"), std::string::npos) << err;
  EXPECT_NE(err.find("changed after the snapshot"), std::string::npos) << err;
  EXPECT_EQ(open_error({rec}, false), "");  // the caller vouched for the image

  std::ofstream(path, std::ios::binary) << std::string(8192, 'a');
  err = open_error({rec}, false);  // the size is checked even without hashing
  EXPECT_NE(err.find("8192 bytes, the snapshot recorded 4096"), std::string::npos) << err;

  err = open_error({snapshot::DiskRecord{"gone", (dir / "gone.img"), 4096, rec.sha256, false}});
  EXPECT_NE(err.find("disk 'gone'"), std::string::npos) << err;
  EXPECT_NE(err.find("gone.img"), std::string::npos) << err;
}

TEST(SnapshotDisks, ARestoredImageKeepsWritersOut) {
  test::TempDir dir("fvsd");
  const auto rec = record_of(write_image(dir, "a.img", 'a'), "a");
  const auto disks = open_recorded_disks({rec}, true);
  EXPECT_THROW(DiskImage::open(rec.path, false), ImageError);
}

}  // namespace
}  // namespace forkvm
