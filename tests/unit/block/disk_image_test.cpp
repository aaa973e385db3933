// unit tier: DiskImage refuses what a user can get wrong, naming the file, and locks images as
// QEMU does (one writer, or any number of readers).
#include "devices/virtio/block/disk_image.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "forkvm/errors.hpp"
#include "tests/unit/block/block_test_util.hpp"

namespace forkvm {
namespace {

using testing::make_image;

std::string open_error(const std::string& path, bool read_only) {
  try {
    DiskImage::open(path, read_only);
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), path);
    return e.what();
  }
  return "";
}

TEST(DiskImage, RefusesBadImagesNamingTheFile) {
  test::TempDir dir("fvblk");
  EXPECT_NE(open_error(dir / "missing.img", true).find("cannot open"), std::string::npos);
  EXPECT_NE(open_error(dir.path().string(), true).find("regular file"), std::string::npos);
  std::ofstream(dir / "empty.img").close();
  EXPECT_NE(open_error(dir / "empty.img", false).find("empty"), std::string::npos);
  std::ofstream(dir / "odd.img") << std::string(1000, 'x');
  EXPECT_NE(open_error(dir / "odd.img", true).find("512-byte sectors"), std::string::npos);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_NE(open_error(dir / "fifo", true).find("regular file"), std::string::npos);
  const std::string ro = make_image(dir, "ro.img", 4096);
  ::chmod(ro.c_str(), 0400);
  if (::geteuid() != 0) {  // root opens a 0400 file read-write anyway
    EXPECT_NE(open_error(ro, false).find("cannot open"), std::string::npos);
  }
}

TEST(DiskImage, OneWriterOrManyReaders) {
  test::TempDir dir("fvblk");
  const std::string img = make_image(dir, "disk.img", 8192);
  {
    DiskImage writer = DiskImage::open(img, false);
    EXPECT_NE(open_error(img, false).find("in use elsewhere"), std::string::npos);
    EXPECT_NE(open_error(img, true).find("open read-write elsewhere"), std::string::npos);
  }
  // The lock goes with the descriptor.
  DiskImage r1 = DiskImage::open(img, true);
  DiskImage r2 = DiskImage::open(img, true);
  EXPECT_NE(open_error(img, false).find("in use elsewhere"), std::string::npos);
  EXPECT_EQ(r1.size(), 8192u);
  EXPECT_TRUE(r1.read_only());
  EXPECT_FALSE(r1.can_punch_holes());
}

TEST(DiskImage, ReadsWritesFlushesAndPunches) {
  test::TempDir dir("fvblk");
  const std::string img = make_image(dir, "disk.img", 64 * 1024);
  DiskImage d = DiskImage::open(img, false);
  std::vector<uint8_t> buf(1024);
  EXPECT_EQ(d.read(512, buf), 0);
  EXPECT_EQ(buf, testing::image_bytes(512, 1024));
  const std::vector<uint8_t> ones(512, 1);
  EXPECT_EQ(d.write(4096, ones), 0);
  EXPECT_EQ(d.flush(), 0);
  EXPECT_EQ(d.read(4096, std::span(buf.data(), 512)), 0);
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 512), ones);
  // A read past the end is a short read: EIO, not garbage.
  EXPECT_EQ(d.read(64 * 1024 - 512, buf), EIO);
  if (d.can_punch_holes()) {
    EXPECT_EQ(d.punch_hole(0, 4096), 0);
    EXPECT_EQ(d.write_zeroes(8192, 4096), 0);
    const auto bytes = testing::file_bytes(img);
    for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(bytes[i], 0) << i;
    for (size_t i = 8192; i < 12288; ++i) ASSERT_EQ(bytes[i], 0) << i;
    EXPECT_EQ(bytes.size(), 64u * 1024);
  }
  DiskImage ro = [&] {
    d = DiskImage::open(make_image(dir, "other.img", 4096), false);  // drop the write lock
    return DiskImage::open(img, true);
  }();
  EXPECT_EQ(ro.write(0, ones), EROFS);
  EXPECT_EQ(ro.punch_hole(0, 512), EROFS);
  EXPECT_EQ(ro.flush(), 0);
}

}  // namespace
}  // namespace forkvm
