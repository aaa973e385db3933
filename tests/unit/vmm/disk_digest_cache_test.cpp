// The disk digests kept across processes (vmm/disk_digest_cache.hpp): kept only for settled
// images, found again by stamp, never taken from an entry or a directory others can write, and
// used by disk_sha256() before it hashes.
#include "vmm/disk_digest_cache.hpp"
#include "vmm/stamp_cache.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "devices/virtio/block/disk_image.hpp"
#include "snapshot/sha256.hpp"
#include "tests/support/stamp_cache_for.hpp"
#include "tests/support/temp_dir.hpp"
#include "vmm/snapshot_disks.hpp"

namespace forkvm {
namespace {

const std::string kDigestA(64, 'a');
const std::string kDigestB = std::string(63, 'b') + "0";

/// Points the cache at a fresh directory for one test, and back after it.
class DigestCacheTest : public ::testing::Test {
 protected:
  /// A disk image's stamp whose times are `age_s` seconds before now.
  static FileStamp stamp(uint64_t ino, int64_t age_s) {
    return test::aged_stamp(ino, age_s, 4096);
  }
  static struct timespec now() { return test::realtime_now(); }

  test::TempDir dir_{"fvdc"};
  std::string cache_ = dir_ / "digests";
  test::StampCacheFor cache_env_{cache_};
};

TEST_F(DigestCacheTest, KeepsASettledImagesDigestAndFindsItByStamp) {
  EXPECT_EQ(stamp_cache_dir(), cache_);
  struct stat st {};
  ASSERT_EQ(::stat(cache_.c_str(), &st), 0) << "made when missing";
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const FileStamp s = stamp(10, 60);
  EXPECT_FALSE(cached_disk_digest(s));
  keep_disk_digest(s, kDigestA, now());
  EXPECT_EQ(cached_disk_digest(s), kDigestA);
  // Any difference in the stamp is another image.
  FileStamp other = s;
  other.ctime_ns = 1;
  EXPECT_FALSE(cached_disk_digest(other));
  keep_disk_digest(s, kDigestB, now());  // replaced whole
  EXPECT_EQ(cached_disk_digest(s), kDigestB);
}

TEST_F(DigestCacheTest, AnImageWrittenJustBeforeTheHashIsNotKept) {
  const FileStamp fresh = stamp(11, 0);
  keep_disk_digest(fresh, kDigestA, now());
  EXPECT_FALSE(cached_disk_digest(fresh));
  keep_disk_digest(stamp(12, 60), "not a digest", now());
  EXPECT_FALSE(cached_disk_digest(stamp(12, 60)));
}

TEST_F(DigestCacheTest, AMalformedOrForeignWritableEntryCountsAsNone) {
  const FileStamp s = stamp(13, 60);
  keep_disk_digest(s, kDigestA, now());
  ASSERT_TRUE(cached_disk_digest(s));
  std::string entry;
  for (const auto& e : std::filesystem::directory_iterator(cache_)) entry = e.path();
  ASSERT_FALSE(entry.empty());
  std::ofstream(entry, std::ios::trunc) << "zz" << std::string(62, 'a') << "\n";
  EXPECT_FALSE(cached_disk_digest(s));
  std::ofstream(entry, std::ios::trunc) << kDigestA << "\n";
  ASSERT_TRUE(cached_disk_digest(s));
  // A second name, in a directory someone else may control, could change it.
  const std::string second = dir_ / "second-name";
  ASSERT_EQ(::link(entry.c_str(), second.c_str()), 0);
  EXPECT_FALSE(cached_disk_digest(s));
  ASSERT_EQ(::unlink(second.c_str()), 0);
  ASSERT_TRUE(cached_disk_digest(s));
  ASSERT_EQ(::chmod(entry.c_str(), 0620), 0);  // group-writable: anyone in it could forge it
  EXPECT_FALSE(cached_disk_digest(s));
}

TEST_F(DigestCacheTest, ADirectoryOthersCanWriteOrOffIsNotUsed) {
  ASSERT_EQ(stamp_cache_dir(), cache_);
  ASSERT_EQ(::chmod(cache_.c_str(), 0777), 0);
  EXPECT_EQ(stamp_cache_dir(), "");
  keep_disk_digest(stamp(14, 60), kDigestA, now());
  EXPECT_FALSE(cached_disk_digest(stamp(14, 60)));
  ::setenv("FORKVM_STAMP_CACHE", "off", 1);
  EXPECT_EQ(stamp_cache_dir(), "");
  // A relative one would name another directory in each working directory.
  ::setenv("FORKVM_STAMP_CACHE", "relative/digests", 1);
  EXPECT_EQ(stamp_cache_dir(), "");
  EXPECT_FALSE(std::filesystem::exists("relative"));
}

TEST_F(DigestCacheTest, KeepsAtMostTheNewestEntries) {
  for (uint64_t i = 0; i < kMaxStampEntries + 8; ++i) {
    keep_disk_digest(stamp(100 + i, 60), kDigestA, now());
  }
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(cache_)) ++n;
  EXPECT_EQ(n, kMaxStampEntries);
}

// disk_sha256() asks the cache before hashing: an entry planted for the image's stamp is what
// it returns (which is why entries must be this user's alone).
TEST_F(DigestCacheTest, DiskSha256TakesTheKeptDigest) {
  const std::string path = dir_ / "disk.img";
  std::ofstream(path, std::ios::binary) << std::string(4096, 'x');
  const DiskImage disk = DiskImage::open(path, true);
  const std::optional<FileStamp> s = stamp_fd("", disk.fd());
  ASSERT_TRUE(s);
  // Its times are now, so a real hash would not be kept; plant the entry as if it had been.
  FileStamp settled_view = *s;
  struct timespec later = now();
  later.tv_sec += 10;
  keep_disk_digest(settled_view, kDigestA, later);
  ASSERT_EQ(cached_disk_digest(*s), kDigestA);
  EXPECT_EQ(disk_sha256(disk), kDigestA);
  EXPECT_NE(kDigestA, snapshot::Sha256::of(std::string(4096, 'x')));
}

}  // namespace
}  // namespace forkvm
