// unit tier: a snapshot's disk records are checked against the images on restore: a missing
// image, one whose size changed and one whose bytes changed are refused by name; the digest
// cache notices a rewrite of the file.
#include "vmm/snapshot_disks.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
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
  snapshot::DiskRecord r;
  r.id = id;
  r.path = path;
  r.size = disk.size();
  r.sha256 = disk_sha256(disk);
  return r;
}

std::string open_error(const std::vector<snapshot::DiskRecord>& records, bool verify = true) {
  try {
    open_recorded_disks(records, "/nonexistent", verify, true);
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
  const auto disks = open_recorded_disks({a, b}, dir.path(), true, true);
  ASSERT_EQ(disks.size(), 2u);
  const auto first = disks[0]->open_child(), second = disks[1]->open_child();
  EXPECT_EQ(first->path(), a.path);
  EXPECT_EQ(second->path(), b.path);
  EXPECT_TRUE(first->read_only());
  std::vector<uint8_t> buf(4);
  ASSERT_EQ(second->read(100, buf), 0);
  EXPECT_EQ(buf, std::vector<uint8_t>(4, 'b'));
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

  snapshot::DiskRecord gone = rec;
  gone.id = "gone";
  gone.path = dir / "gone.img";
  err = open_error({gone});
  EXPECT_NE(err.find("disk 'gone'"), std::string::npos) << err;
  EXPECT_NE(err.find("gone.img"), std::string::npos) << err;
}

TEST(SnapshotDisks, ARestoredImageKeepsWritersOut) {
  test::TempDir dir("fvsd");
  const auto rec = record_of(write_image(dir, "a.img", 'a'), "a");
  const auto disks = open_recorded_disks({rec}, dir.path(), true, true);
  EXPECT_THROW(DiskImage::open(rec.path, false), ImageError);
}

TEST(SnapshotDisks, ACopyOnWriteDiskReadsItsOverlayOverTheBase) {
  test::TempDir dir("fvsd");
  snapshot::DiskRecord rec = record_of(write_image(dir, "base.img", 'a'), "cow");
  rec.size = 4096;
  // The overlay: a file of the disk's size whose first 512 bytes are the written ones.
  const std::string overlay = dir / snapshot::overlay_file_name(0);
  std::string bytes(4096, '\0');
  bytes.replace(0, 512, std::string(512, 'w'));
  std::ofstream(overlay, std::ios::binary) << bytes;
  rec.copy_on_write = true;
  rec.overlay = snapshot::DiskOverlay{snapshot::overlay_file_name(0), {{0, 4096}},
                                      snapshot::Sha256::of(bytes)};
  auto disks = open_recorded_disks({rec}, dir.path(), true, true);
  auto child = disks.at(0)->open_child();
  EXPECT_TRUE(child->copy_on_write());
  std::vector<uint8_t> buf(1024);
  ASSERT_EQ(child->read(0, buf), 0);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 512), std::string(512, 'w'));
  EXPECT_EQ(std::string(buf.begin() + 512, buf.end()), std::string(512, '\0'));  // the overlay's block

  // A changed overlay is refused when overlays are verified, naming the file.
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bytes[1000] = 'x';
  std::ofstream(overlay, std::ios::binary) << bytes;
  try {
    open_recorded_disks({rec}, dir.path(), true, true);
    ADD_FAILURE() << "a modified overlay was accepted";
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find(overlay), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("SHA-256 mismatch"), std::string::npos) << e.what();
  }
  // A short overlay, and one that is a symbolic link, are refused even unverified.
  std::ofstream(overlay, std::ios::binary) << std::string(512, 'w');
  EXPECT_THROW(open_recorded_disks({rec}, dir.path(), true, false), SnapshotError);
  std::filesystem::remove(overlay);
  std::filesystem::create_symlink(rec.path, overlay);
  EXPECT_THROW(open_recorded_disks({rec}, dir.path(), true, false), SnapshotError);
}

}  // namespace
}  // namespace forkvm
