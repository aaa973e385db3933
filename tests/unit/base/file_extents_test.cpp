// file_data_extents(): a sparse file's data extents, clipped to the range asked for.
#include "base/file_extents.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace forkvm {
namespace {

constexpr uint64_t kKiB = 1024;

/// A 1 MiB memfd (holes at page granularity) with 4 KiB of data at 64 KiB and 8 KiB at 512 KiB.
class FileExtentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = ::memfd_create("file_extents_test", MFD_CLOEXEC);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(::ftruncate(fd_, 1024 * kKiB), 0);
    const std::vector<uint8_t> ones(8 * kKiB, 1);
    ASSERT_EQ(::pwrite(fd_, ones.data(), 4 * kKiB, 64 * kKiB), static_cast<ssize_t>(4 * kKiB));
    ASSERT_EQ(::pwrite(fd_, ones.data(), 8 * kKiB, 512 * kKiB), static_cast<ssize_t>(8 * kKiB));
  }
  void TearDown() override { ::close(fd_); }

  std::vector<FileExtent> extents(uint64_t begin, uint64_t end) {
    std::vector<FileExtent> out;
    EXPECT_EQ(file_data_extents(fd_, begin, end, out), 0);
    return out;
  }

  int fd_ = -1;
};

TEST_F(FileExtentsTest, FindsTheDataOfTheWholeFile) {
  const std::vector<FileExtent> want{{64 * kKiB, 4 * kKiB}, {512 * kKiB, 8 * kKiB}};
  EXPECT_EQ(extents(0, 1024 * kKiB), want);
}

TEST_F(FileExtentsTest, ClipsToTheRange) {
  const std::vector<FileExtent> want{{66 * kKiB, 2 * kKiB}, {512 * kKiB, 2 * kKiB}};
  EXPECT_EQ(extents(66 * kKiB, 514 * kKiB), want);
  EXPECT_TRUE(extents(128 * kKiB, 512 * kKiB).empty());  // a hole between the two
  EXPECT_TRUE(extents(100 * kKiB, 100 * kKiB).empty());  // an empty range
}

TEST_F(FileExtentsTest, StopsAtTheEndOfTheFile) {
  const std::vector<uint8_t> ones(4 * kKiB, 1);
  ASSERT_EQ(::pwrite(fd_, ones.data(), ones.size(), 1020 * kKiB), static_cast<ssize_t>(ones.size()));
  // Asked past the end of a 1 MiB file: the last extent ends with the file.
  const std::vector<FileExtent> got = extents(600 * kKiB, 2048 * kKiB);
  const std::vector<FileExtent> want{{1020 * kKiB, 4 * kKiB}};
  EXPECT_EQ(got, want);
}

TEST_F(FileExtentsTest, AppendsToWhatTheCallerHas) {
  std::vector<FileExtent> out{{1, 2}};
  ASSERT_EQ(file_data_extents(fd_, 0, 128 * kKiB, out), 0);
  const std::vector<FileExtent> want{{1, 2}, {64 * kKiB, 4 * kKiB}};
  EXPECT_EQ(out, want);
}

TEST(FileExtents, ABadDescriptorGivesItsErrno) {
  std::vector<FileExtent> out;
  EXPECT_EQ(file_data_extents(-1, 0, 4096, out), EBADF);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace forkvm
